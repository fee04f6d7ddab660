"""SmartleadClient as a MetricsSource and a HealthSource, against the simulator: overall-stats and
email-accounts read page by page at background priority, retried on 429/5xx/timeouts, only the key's own
campaigns, and no password ever in a result, a log line or an error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.errors import VendorAuthError, VendorRejected, VendorUnavailable
from bot.testing import ACCOUNT_SECRET, DEFAULT_KEYS, VendorSimulator
from bot.vendors import SlidingWindowLimiter, SmartleadClient
from bot.vendors.base import CampaignMetrics, HealthSource, MailboxHealth, MetricsSource
from bot.vendors.smartlead.analytics import MAX_PAGES
from bot.vendors.smartlead.sim_data import account_id, add_mailbox, set_campaign_stats
from tests.vendors.conftest import FAST_RETRY, Ticking, assert_secret_absent, until

OVERALL = "/analytics/campaign/overall-stats"
ACCOUNTS = "/email-accounts/"
Poll = Callable[[SmartleadClient], Awaitable[list[Any]]]
POLLS: dict[str, tuple[Poll, str]] = {
    "metrics": (lambda client: client.campaign_metrics(), OVERALL),
    "health": (lambda client: client.mailbox_health(), ACCOUNTS),
}


def client_of(session: aiohttp.ClientSession, base_url: str, **options: Any) -> SmartleadClient:
    options.setdefault("api_key", DEFAULT_KEYS["smartlead"])
    return SmartleadClient(session, base_url=base_url, retry=FAST_RETRY, timeout=5, **options)


def test_it_is_a_metrics_and_a_health_source(smartlead: SmartleadClient) -> None:
    assert isinstance(smartlead, MetricsSource) and isinstance(smartlead, HealthSource)


async def test_lifetime_metrics_with_fractions_for_the_percent_rates(
    sim: VendorSimulator, smartlead: SmartleadClient
) -> None:
    sim.add_campaign("smartlead:11", "ACTIVE")
    sim.add_campaign("smartlead:12", "DRAFTED")
    long_ago = datetime.now(UTC) - timedelta(days=3 * 365)            # a long life: the lookback covers it
    set_campaign_stats(sim, "smartlead:11", sent=400, opened=150, replied=36, bounced=6, first_sent_at=long_ago)
    set_campaign_stats(sim, "smartlead:11", sequence=2, sent=100, opened=50, replied=9, bounced=2)
    assert await smartlead.campaign_metrics() == [
        CampaignMetrics("11", sent=500, bounced=8, replied=45, opened=200, bounce_rate=0.016, reply_rate=0.09),
        CampaignMetrics("12", sent=0, bounced=0, replied=0, opened=0, bounce_rate=0.0, reply_rate=0.0),
    ]
    assert [(c.method, c.path, c.status) for c in sim.calls] == [("GET", OVERALL, 200)] * 2    # 2nd: empty


async def test_metrics_read_every_page(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str]
) -> None:
    sim.set_limit("smartlead", None)
    for n in range(1, 231):
        sim.add_campaign(f"smartlead:{n}", "ACTIVE")
        set_campaign_stats(sim, f"smartlead:{n}", sent=n)
    metrics = await client_of(session, base("smartlead"), rate_limit=(100, 1.0)).campaign_metrics()
    assert [(m.campaign_id, m.sent) for m in metrics] == [(str(n), n) for n in range(1, 231)]
    assert len(sim.calls_for(path=OVERALL)) == 4                      # 100 + 100 + 30, then an empty page


async def test_only_the_keys_own_campaigns_and_mailboxes(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str]
) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE", key="key-acme", accounts=["ana@acme.example"])
    sim.add_campaign("smartlead:2", "ACTIVE", key="key-globex", accounts=["bo@globex.example"])
    acme = client_of(session, base("smartlead"), api_key="key-acme")
    assert [m.campaign_id for m in await acme.campaign_metrics()] == ["1"]
    assert [h.email for h in await acme.mailbox_health()] == ["ana@acme.example"]


async def test_mailbox_health_with_the_list_endpoints_forms(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE", accounts=["Plain@Sales.Example"])
    add_mailbox(sim, "smtp@sales.example", campaigns=["smartlead:1"], smtp_ok=False, reputation=95,
                smtp_failure_error="535 authentication failed")
    add_mailbox(sim, "warm@sales.example", warmup_status="BLOCKED", blocked_reason="spam trap", reputation=40,
                imap_ok=False)
    def expected(email: str, *health: Any) -> MailboxHealth:
        return MailboxHealth(email, str(account_id(email)), *health)

    assert sorted(await smartlead.mailbox_health(), key=lambda h: h.email) == [
        expected("plain@sales.example", True, True, 100.0, False),
        expected("smtp@sales.example", False, True, 95.0, False),
        expected("warm@sales.example", True, False, 40.0, True),
    ]
    assert [(c.method, c.path) for c in sim.calls] == [("GET", ACCOUNTS)]          # a short page ends it


async def test_mailbox_health_reads_every_page(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str]
) -> None:
    sim.set_limit("smartlead", None)
    emails = {f"sender{n}@sales.example" for n in range(150)}
    for email in emails:
        add_mailbox(sim, email)
    health = await client_of(session, base("smartlead"), rate_limit=(100, 1.0)).mailbox_health()
    assert {h.email for h in health} == emails and len(health) == 150
    assert len(sim.calls_for(path=ACCOUNTS)) == 2                     # 100, then 50: shorter, the last


@pytest.mark.parametrize("kind", sorted(POLLS))
async def test_429_5xx_and_timeouts_are_retried(sim: VendorSimulator, smartlead: SmartleadClient, kind: str) -> None:
    poll, path = POLLS[kind]
    sim.add_campaign("smartlead:1", "ACTIVE", accounts=["ana@sales.example"])
    sim.inject("smartlead", "rate_limit", path=path, retry_after=0.01)
    sim.inject("smartlead", "error", status=503, path=path)
    sim.inject("smartlead", "timeout", path=path, delay=0.01)
    assert len(await poll(smartlead)) == 1
    assert [c.status for c in sim.calls_for(path=path)][:4] == [429, 503, 504, 200]


@pytest.mark.parametrize("kind", sorted(POLLS))
async def test_a_lasting_outage_raises_unavailable(sim: VendorSimulator, smartlead: SmartleadClient, kind: str) -> None:
    poll, path = POLLS[kind]
    sim.inject("smartlead", "error", status=500, path=path, forever=True)
    with pytest.raises(VendorUnavailable) as caught:
        await poll(smartlead)
    assert caught.value.status == 500 and caught.value.where.startswith(f"GET {path}?")
    assert len(sim.calls) == FAST_RETRY.max_attempts


@pytest.mark.parametrize("kind", sorted(POLLS))
async def test_a_bad_key_is_an_auth_error_without_the_key(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str], kind: str
) -> None:
    secret = "wrong-key-0123456789"
    with pytest.raises(VendorAuthError) as caught:
        await POLLS[kind][0](client_of(session, base("smartlead"), api_key=secret))
    assert_secret_absent(secret, caught.value)


@pytest.mark.parametrize("kind", sorted(POLLS))
async def test_a_poll_waiting_when_a_pause_arrives_goes_after_it(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str], kind: str
) -> None:
    poll, path = POLLS[kind]
    sim.add_campaign("smartlead:2", "ACTIVE", accounts=["ana@sales.example"])
    limiter = SlidingWindowLimiter(1, 60, clock=Ticking())
    client = client_of(session, base("smartlead"), limiter=limiter)
    await limiter.acquire()                                          # a request in flight
    polling = asyncio.create_task(poll(client))
    await until(lambda: limiter.waiting == (0, 1))                   # the poll waits as a background read
    pause = asyncio.create_task(client.pause("2"))
    await until(lambda: limiter.waiting == (1, 1))
    limiter.release()
    polled, paused = await asyncio.gather(polling, pause)
    assert len(polled) == 1 and paused.proven
    assert (sim.calls[0].method, sim.calls[0].path) == ("GET", "/campaigns/2")    # the pause's read went first
    first_poll = next(n for n, c in enumerate(sim.calls) if c.path == path)
    assert first_poll > 0


async def test_passwords_never_reach_the_result_or_the_logs(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str], smartlead: SmartleadClient,
    logs: list[dict[str, Any]],
) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE", accounts=["ana@sales.example"])
    add_mailbox(sim, "bo@sales.example", smtp_ok=False, smtp_failure_error="auth failed")
    # the simulator really serves credentials, so the assertions below mean something
    async with session.get(f"{base('smartlead')}{ACCOUNTS}", params={"api_key": DEFAULT_KEYS["smartlead"]}) as resp:
        raw = await resp.json()
    assert all(ACCOUNT_SECRET in a["password"] and ACCOUNT_SECRET in a["imap_password"] for a in raw)
    sim.inject("smartlead", "rate_limit", path=ACCOUNTS, retry_after=0.01)          # a retry: more log lines
    result = await smartlead.mailbox_health()
    assert len(result) == 2
    assert_secret_absent(ACCOUNT_SECRET, result, *result)
    assert any(line["event"] == "vendor.retrying" for line in logs)
    assert any(line["event"] == "vendor.polled" and line["items"] == 2 for line in logs)
    assert ACCOUNT_SECRET not in json.dumps(logs, default=str)


# ------------------------------------------------------------------ vendors that misbehave

async def serve(aiohttp_server: Callable[..., Awaitable[TestServer]], answer: Callable[[int], Any]) -> str:
    """A base URL whose overall-stats and email-accounts answer `answer(offset)`."""
    async def handle(request: web.Request) -> web.Response:
        return web.json_response(answer(int(request.query.get("offset", "0"))))

    app = web.Application()
    app.router.add_get(f"/api/v1{OVERALL}", handle)
    app.router.add_get(f"/api/v1{ACCOUNTS}", handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/api/v1"))


@pytest.mark.parametrize("kind", sorted(POLLS))
async def test_an_unknown_answer_shape_fails_without_showing_the_answer(
    aiohttp_server: Callable[..., Awaitable[TestServer]], session: aiohttp.ClientSession,
    logs: list[dict[str, Any]], kind: str,
) -> None:
    base_url = await serve(aiohttp_server, lambda _: {"success": True, "data": {"password": ACCOUNT_SECRET}})
    with pytest.raises(VendorRejected) as caught:
        await POLLS[kind][0](client_of(session, base_url))
    assert caught.value.where == f"GET {POLLS[kind][1]}" and "unexpected answer shape" in str(caught.value)
    assert_secret_absent(ACCOUNT_SECRET, caught.value)
    assert ACCOUNT_SECRET not in json.dumps(logs, default=str)


async def test_a_vendor_ignoring_offset_does_not_loop(
    aiohttp_server: Callable[..., Awaitable[TestServer]], session: aiohttp.ClientSession,
) -> None:
    page = {"ok": True, "data": {"campaign_wise_performance": [{"id": n, "sent": n} for n in range(1, 101)]}}
    offsets: list[int] = []
    base_url = await serve(aiohttp_server, lambda offset: offsets.append(offset) or page)
    metrics = await client_of(session, base_url, rate_limit=(100, 1.0)).campaign_metrics()
    assert len(metrics) == 100 and offsets == [0, 100]               # the repeated page ended the read


async def test_unreadable_entries_are_skipped_but_counted_for_paging(
    aiohttp_server: Callable[..., Awaitable[TestServer]], session: aiohttp.ClientSession,
    logs: list[dict[str, Any]],
) -> None:
    def accounts(offset: int) -> list[dict[str, Any]]:
        if offset == 0:                                              # a full page, half of it unusable
            return [{"from_email": f"s{n}@x.example" if n % 2 else None, "password": ACCOUNT_SECRET}
                    for n in range(100)]
        return [{"from_email": "last@x.example", "password": ACCOUNT_SECRET}] if offset == 100 else []

    base_url = await serve(aiohttp_server, accounts)
    health = await client_of(session, base_url, rate_limit=(100, 1.0)).mailbox_health()
    assert len(health) == 51 and health[-1].email == "last@x.example"
    [polled] = [line for line in logs if line["event"] == "vendor.polled"]
    assert (polled["pages"], polled["items"], polled["skipped"]) == (2, 51, 50)
    assert ACCOUNT_SECRET not in json.dumps(logs, default=str)


async def test_a_listing_that_never_ends_is_cut_at_max_pages(
    aiohttp_server: Callable[..., Awaitable[TestServer]], session: aiohttp.ClientSession,
    logs: list[dict[str, Any]],
) -> None:
    base_url = await serve(aiohttp_server, lambda offset: [{"from_email": f"s{offset + n}@x.example"}
                                                           for n in range(100)])
    health = await client_of(session, base_url, rate_limit=(1000, 1.0)).mailbox_health()
    assert len(health) == MAX_PAGES * 100
    assert [line["pages"] for line in logs if line["event"] == "vendor.poll_truncated"] == [MAX_PAGES]
