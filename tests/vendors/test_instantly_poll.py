"""Instantly polls: the analytics and account parsers on realistic answers, and `campaign_metrics` /
`mailbox_health` against the simulator (pagination, retries, background priority, workspaces, settings)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.errors import VendorAuthError, VendorRejected
from bot.testing import VendorSimulator
from bot.vendors import SlidingWindowLimiter
from bot.vendors.base import CampaignMetrics, HealthSource, MailboxHealth, MetricsSource
from bot.vendors.instantly import SPEC
from bot.vendors.instantly.analytics import (
    DailyTotals,
    account_health,
    campaign_totals,
    count,
    daily_totals,
    merge_daily,
    parse_accounts,
    score,
)
from bot.vendors.instantly.client import InstantlyClient, make_client
from bot.vendors.instantly.sim_analytics import add_account, set_daily
from bot.vendors.spec import VendorConfig
from tests.vendors.conftest import FAST_RETRY, Recording, Ticking, assert_secret_absent, until

KEY = "sim-instantly-key"
C1 = "019a17f3-6af5-795b-aacb-069a2e0d5e1d"
C2 = "019a17f3-6af5-795b-aacb-069a2e0d5e2e"
C3 = "019a17f3-6af5-795b-aacb-069a2e0d5e3f"

#: developer.instantly.ai "Get campaign analytics" example, one row
OVERVIEW_ROW: dict[str, Any] = {
    "campaign_name": "My Test Campaign", "campaign_id": C1, "campaign_status": 1, "campaign_is_evergreen": True,
    "leads_count": 1500, "contacted_count": 1200, "open_count": 800, "reply_count": 300, "link_click_count": 800,
    "bounced_count": 50, "unsubscribed_count": 20, "completed_count": 1100, "emails_sent_count": 5000,
    "new_leads_contacted_count": 200, "total_opportunities": 10, "total_opportunity_value": 1000,
}
#: the documented Account object (list example), with a credential a future answer might carry
ACCOUNT: dict[str, Any] = {
    "email": "John@Example.com", "timestamp_created": "2026-04-17T16:56:43.383Z", "first_name": "John",
    "organization": "019d9c5f-9677-78ed-b2c4-298f5dc7fad3", "warmup_status": 1, "provider_code": 2,
    "warmup": {"limit": 100, "reply_rate": 0.1}, "daily_limit": 100, "status": 1,
    "status_message": {"code": "EENVELOPE", "command": "DATA", "responseCode": 550,
                       "response": "550-5.4.5 Daily user sending limit exceeded."},
    "stat_warmup_score": 85, "sending_gap": 10, "signature": "Best regards, John Doe",
    "smtp_password": "SECRET-SMTP-PASSWORD",
}


def ref(cid: str) -> str:
    return f"instantly:{cid}"


@pytest.fixture
def sim() -> VendorSimulator:
    """The simulator with its wall clock on 2026-11-30 (the daily analytics' default window ends that day)."""
    return VendorSimulator(wall=lambda: datetime(2026, 11, 30, 12, tzinfo=UTC))


@pytest.fixture
def instantly(session: aiohttp.ClientSession, base: Any) -> InstantlyClient:
    return InstantlyClient(session, api_key=KEY, base_url=base("instantly"), retry=FAST_RETRY, timeout=5)


def gets(sim: VendorSimulator) -> list[tuple[str, int | None]]:
    return [(c.path, c.status) for c in sim.calls_for("instantly", "GET")]


# ------------------------------------------------------------------ pure parsers

@pytest.mark.parametrize(("raw", "expected"), [
    (12, 12), ("12", 12), (" 12 ", 12), (12.0, 12), ("12.0", 12), (0, 0), (None, None), ("", None), ("n/a", None),
    (True, None), (-1, None), ("-3", None), (12.5, None), (float("nan"), None), ([12], None),
])
def test_count_reads_numbers_and_numeric_strings_only(raw: Any, expected: int | None) -> None:
    assert count(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (85, 85.0), ("85", 85.0), ("85%", 85.0), (0, 0.0), (100, 100.0), (101, None), (-1, None), (True, None),
    (None, None), ("high", None),
])
def test_score_is_zero_to_a_hundred(raw: Any, expected: float | None) -> None:
    assert score(raw) == expected


def test_the_documented_overview_row() -> None:
    assert campaign_totals([OVERVIEW_ROW]) == [CampaignMetrics(C1, sent=5000, bounced=50, replied=300, opened=800,
                                                               unsubscribed=20)]


def test_overview_counts_are_never_invented() -> None:
    rows = [
        {"campaign_id": C1, "emails_sent_count": "5000", "bounced_count": None, "reply_count": "3.5"},
        {"campaign_id": C2, "emails_sent_count": -4, "open_count": True, "unsubscribed_count": 0},
        {"campaign_id": "not-a-uuid", "emails_sent_count": 9},
        {"emails_sent_count": 9},
        {"campaign_id": C1, "emails_sent_count": 1},                    # repeated: the first row counts
        "junk",
    ]
    assert campaign_totals({"items": rows}) == [
        CampaignMetrics(C1, sent=5000),
        CampaignMetrics(C2, unsubscribed=0),
    ]
    assert campaign_totals({"error": "x"}) == [] and campaign_totals(None) == []


def test_daily_rows_are_summed_and_the_first_day_with_sends_is_the_start() -> None:
    rows = [  # the documented row shape: no campaign id, no bounces; out of order on purpose
        {"date": "2025-03-03", "sent": 60, "opened": 9, "replies": 2, "clicks": 1},
        {"date": "2025-03-01", "sent": 0, "opened": 0, "replies": 1, "clicks": 0},     # a reply, no send
        {"date": "2025-03-02T00:00:00.000Z", "sent": "40", "opened": 5, "replies": 0},
        {"date": "not a date", "sent": 1000},
    ]
    totals = daily_totals(rows)
    assert totals == DailyTotals(sent=100, replied=3, opened=14, started_at=datetime(2025, 3, 2, tzinfo=UTC),
                                 days=3)
    assert totals.bounced is None and totals.unsubscribed is None          # not in the rows: not said


def test_a_count_missing_from_one_row_is_not_summed() -> None:
    totals = daily_totals([{"date": "2025-03-01", "sent": 5, "replies": 1}, {"date": "2025-03-02", "sent": 5}])
    assert (totals.sent, totals.replied) == (10, None)


def test_no_rows_say_nothing() -> None:
    assert daily_totals([]) == DailyTotals()
    assert daily_totals({"items": []}) == DailyTotals()
    assert daily_totals([{"date": "2025-03-01", "sent": 0}]).started_at is None


def test_merge_fills_only_what_the_overview_left_out() -> None:
    item = CampaignMetrics(C1, sent=100, bounced=4, replied=None, opened=7)
    daily = DailyTotals(sent=90, replied=3, opened=9, started_at=datetime(2025, 3, 2, tzinfo=UTC), days=2)
    assert merge_daily(item, daily) == CampaignMetrics(C1, sent=100, bounced=4, replied=3, opened=7,
                                                       started_at=datetime(2025, 3, 2, tzinfo=UTC))
    assert merge_daily(item, None) is item


def test_the_documented_account_and_nothing_else_of_it() -> None:
    health = account_health(ACCOUNT)
    assert health == MailboxHealth(email="john@example.com", account_id="John@Example.com", smtp_ok=True,
                                   imap_ok=True, reputation=85.0, warmup_blocked=False)
    assert_secret_absent("SECRET-SMTP-PASSWORD", health)
    assert_secret_absent("Daily user sending limit", health)


@pytest.mark.parametrize(("status", "smtp", "imap"), [
    (1, True, True), (2, None, None), (-1, False, False), (-2, False, None), (-3, False, None), ("-1", False, False),
    (7, None, None), (None, None, None), (True, None, None),
])
def test_account_status(status: Any, smtp: bool | None, imap: bool | None) -> None:
    health = account_health({"email": "a@x.example", "status": status})
    assert health is not None and (health.smtp_ok, health.imap_ok) == (smtp, imap)


@pytest.mark.parametrize(("warmup", "blocked"), [
    (1, False), (0, False), (-1, True), (-2, True), (-3, True), ("-3", True), (5, None), (None, None),
])
def test_warmup_status(warmup: Any, blocked: bool | None) -> None:
    health = account_health({"email": "a@x.example", "warmup_status": warmup, "stat_warmup_score": None})
    assert health is not None and health.warmup_blocked is blocked and health.reputation is None


def test_an_account_without_an_email_is_left_out() -> None:
    assert account_health({"status": 1}) is None
    assert account_health({"email": "nobody", "status": 1}) is None
    assert account_health("a@x.example") is None


def test_a_page_of_accounts_and_its_cursor() -> None:
    healths, size, cursor = parse_accounts({"items": [ACCOUNT, {"status": 1}], "next_starting_after": "c-1"})
    assert [h.email for h in healths] == ["john@example.com"] and size == 2 and cursor == "c-1"
    assert parse_accounts({"items": [], "next_starting_after": ""}) == ([], 0, None)
    assert parse_accounts([ACCOUNT])[1:] == (1, None)


# ------------------------------------------------------------------ campaign_metrics against the simulator

def test_the_client_is_a_metrics_and_a_health_source(instantly: InstantlyClient) -> None:
    assert isinstance(instantly, MetricsSource) and isinstance(instantly, HealthSource)


async def test_campaign_metrics_from_the_overview_and_the_first_day_with_sends(
        sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(ref(C1), "1")
    sim.add_campaign(ref(C2), "2")
    sim.add_campaign(ref(C3), "0")                                     # a draft that never sent
    set_daily(sim, ref(C1), {
        "2025-01-10": {"sent": 0, "replies": 1},                      # activity before the first send
        "2025-01-11": {"sent": 50, "opened": 20, "replies": 2, "bounced": 3, "unsubscribed": 1},
        "2026-11-01": {"sent": 30, "opened": 5, "replies": 1, "bounced": 1},   # long after: the 30-day default
    })
    set_daily(sim, ref(C2), {"2026-10-30": {"sent": 10}})
    found = {m.campaign_id: m for m in await instantly.campaign_metrics()}
    assert found == {
        C1: CampaignMetrics(C1, sent=80, bounced=4, replied=4, opened=25, unsubscribed=1,
                            started_at=datetime(2025, 1, 11, tzinfo=UTC)),
        C2: CampaignMetrics(C2, sent=10, bounced=0, replied=0, opened=0, unsubscribed=0,
                            started_at=datetime(2026, 10, 30, tzinfo=UTC)),
        C3: CampaignMetrics(C3, sent=0, bounced=0, replied=0, opened=0, unsubscribed=0),
    }
    assert gets(sim) == [("/campaigns/analytics", 200), ("/campaigns/analytics/daily", 200),
                         ("/campaigns/analytics/daily", 200)]            # none for the draft that never sent


async def test_the_start_is_asked_once_per_campaign(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(ref(C1), "1")
    set_daily(sim, ref(C1), {"2026-11-01": {"sent": 5}})
    first = await instantly.campaign_metrics()
    set_daily(sim, ref(C1), {"2026-11-01": {"sent": 5}, "2026-11-02": {"sent": 7, "replies": 1}})
    second = await instantly.campaign_metrics()
    assert first[0].started_at == second[0].started_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert (second[0].sent, second[0].replied) == (12, 1)             # the totals are read again every poll
    assert [path for path, _ in gets(sim)] == ["/campaigns/analytics", "/campaigns/analytics/daily",
                                               "/campaigns/analytics"]


async def test_a_campaign_gone_before_its_daily_read_keeps_its_totals(
        sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(ref(C1), "1")
    set_daily(sim, ref(C1), {"2026-11-01": {"sent": 5, "bounced": 1}})
    sim.inject("instantly", "error", status=404, path="/campaigns/analytics/daily")
    [item] = await instantly.campaign_metrics()
    assert item == CampaignMetrics(C1, sent=5, bounced=1, replied=0, opened=0, unsubscribed=0)
    [again] = await instantly.campaign_metrics()                      # asked again next time
    assert again.started_at == datetime(2026, 11, 1, tzinfo=UTC)


async def test_429_and_5xx_are_retried(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(ref(C1), "1")
    set_daily(sim, ref(C1), {"2026-11-01": {"sent": 5}})
    sim.inject("instantly", "rate_limit", path="/campaigns/analytics", retry_after=0.01)
    sim.inject("instantly", "error", status=503, path="/campaigns/analytics/daily", times=2)
    [item] = await instantly.campaign_metrics()
    assert item.sent == 5 and item.started_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert [status for _, status in gets(sim)] == [429, 200, 503, 503, 200]


async def test_an_error_that_is_not_retried_ends_the_poll(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(ref(C1), "1")
    sim.inject("instantly", "error", status=400, path="/campaigns/analytics")
    with pytest.raises(VendorRejected):
        await instantly.campaign_metrics()
    assert len(sim.calls) == 1


async def test_only_the_keys_workspace_is_polled(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                  base: Any) -> None:
    sim.workspaces["other-key"] = "ws-2"
    sim.add_campaign(ref(C1), "1")
    sim.add_campaign(ref(C2), "1", key="other-key")
    add_account(sim, "mine@x.example")
    add_account(sim, "theirs@x.example", key="other-key")
    client = InstantlyClient(session, api_key=KEY, base_url=base("instantly"), retry=FAST_RETRY, timeout=5)
    assert [m.campaign_id for m in await client.campaign_metrics()] == [C1]
    assert [h.email for h in await client.mailbox_health()] == ["mine@x.example"]


async def test_a_bad_key_fails_without_showing_it(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                  base: Any) -> None:
    secret = "wrong-instantly-key-0123456789"
    client = InstantlyClient(session, api_key=secret, base_url=base("instantly"), retry=FAST_RETRY, timeout=5)
    for poll in (client.campaign_metrics, client.mailbox_health):
        with pytest.raises(VendorAuthError) as caught:
            await poll()
        assert_secret_absent(secret, caught.value)


# ------------------------------------------------------------------ mailbox_health against the simulator

@pytest.mark.parametrize(("accounts", "pages"), [(0, 1), (99, 1), (100, 2), (205, 3)])
async def test_every_page_of_accounts_is_read(sim: VendorSimulator, instantly: InstantlyClient, accounts: int,
                                              pages: int) -> None:
    for n in range(accounts):
        add_account(sim, f"sender+{n}@sales.example")                 # a "+" in the cursor must survive the query
    found = await instantly.mailbox_health()
    assert [h.email for h in found] == [f"sender+{n}@sales.example" for n in range(accounts)]
    assert gets(sim) == [("/accounts", 200)] * pages


async def test_account_health_as_instantly_says_it(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    add_account(sim, "ok@x.example", warmup_score=92)
    add_account(sim, "Broken@X.example", status=-1, warmup_score=40)
    add_account(sim, "banned@x.example", warmup_status=-1, warmup_score=None)
    add_account(sim, "paused@x.example", status=2, warmup_status=0)
    found = {h.email: h for h in await instantly.mailbox_health()}
    assert found == {
        "ok@x.example": MailboxHealth("ok@x.example", "ok@x.example", True, True, 92.0, False),
        "broken@x.example": MailboxHealth("broken@x.example", "Broken@X.example", False, False, 40.0, False),
        "banned@x.example": MailboxHealth("banned@x.example", "banned@x.example", True, True, None, True),
        "paused@x.example": MailboxHealth("paused@x.example", "paused@x.example", None, None, 100.0, False),
    }


async def test_a_rate_limited_page_is_retried_and_the_walk_goes_on(sim: VendorSimulator,
                                                                   instantly: InstantlyClient) -> None:
    for n in range(150):
        add_account(sim, f"s{n:03d}@x.example")
    sim.inject("instantly", "rate_limit", path="/accounts", retry_after=0.01, times=1)
    first = await instantly.mailbox_health()
    sim.clear_calls()
    sim.inject("instantly", "error", status=502, path="/accounts", times=1)
    assert await instantly.mailbox_health() == first and len(first) == 150
    assert [status for _, status in gets(sim)] == [502, 200, 200]


async def test_a_cursor_that_comes_back_ends_the_walk(instantly: InstantlyClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pages: list[dict[str, Any]] = []

    async def looping(path: str, query: dict[str, Any], operation: str) -> Any:
        pages.append(dict(query))
        return {"items": [{"email": f"a{len(pages)}@x.example", "status": 1}], "next_starting_after": "same"}

    monkeypatch.setattr(instantly, "_get", looping)
    assert len(await instantly.mailbox_health()) == 2
    assert pages == [{"limit": 100}, {"limit": 100, "starting_after": "same"}]


# ------------------------------------------------------------------ background priority

async def test_every_poll_request_is_background(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                base: Any) -> None:
    sim.add_campaign(ref(C1), "1")
    set_daily(sim, ref(C1), {"2026-11-01": {"sent": 5}})
    for n in range(120):
        add_account(sim, f"s{n}@x.example")
    limiter = Recording()
    client = InstantlyClient(session, api_key=KEY, base_url=base("instantly"), retry=FAST_RETRY, timeout=5,
                             limiter=limiter)
    await client.campaign_metrics()
    await client.mailbox_health()
    assert limiter.asked == [True] * 4 and len(sim.calls) == 4
    await client.observe(C1)
    assert limiter.asked[-1] is False                                  # a foreground read is not


async def test_a_pause_arriving_while_a_poll_waits_goes_first(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                              base: Any) -> None:
    sim.add_campaign(ref(C1), "1")
    limiter = SlidingWindowLimiter(1, 60, clock=Ticking())
    client = InstantlyClient(session, api_key=KEY, base_url=base("instantly"), retry=FAST_RETRY, timeout=5,
                             limiter=limiter)
    await limiter.acquire()                                             # a request in flight
    poll = asyncio.create_task(client.campaign_metrics())
    await until(lambda: limiter.waiting == (0, 1))
    pause = asyncio.create_task(client.pause(C1))
    await until(lambda: limiter.waiting == (1, 1))
    limiter.release()
    found, result = await asyncio.gather(poll, pause)
    assert result.proven and [m.campaign_id for m in found] == [C1]
    assert (sim.calls[0].method, sim.calls[0].path) == ("GET", f"/campaigns/{C1}")   # the pause's read went first
    assert sim.calls_for(path="/campaigns/analytics")[0].at >= sim.calls[0].at


# ------------------------------------------------------------------ settings

def test_the_paths_come_from_the_settings(session: aiohttp.ClientSession) -> None:
    defaults = {key: setting.default for key, setting in SPEC.settings.items() if setting.kind != "secret"}
    config = VendorConfig("instantly", {**defaults, "api_key": SecretStr(KEY), "analytics_path": "/v3/analytics",
                                        "analytics_since": "2020-05-01"})
    client = make_client(session, config, FAST_RETRY, 5)
    assert client._paths["analytics"] == "/v3/analytics" and client._since == "2020-05-01"
    assert client._paths["accounts"] == "/accounts"


@pytest.mark.parametrize("paths", [{"analytics": "campaigns/analytics"}, {"daily": "/daily?x=1"},
                                   {"accounts": "/accounts/{id}"}, {"unknown": "/x"}])
def test_a_bad_path_is_refused(session: aiohttp.ClientSession, paths: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="path"):
        InstantlyClient(session, api_key=KEY, paths=paths)


def test_a_bad_since_is_refused(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError):
        InstantlyClient(session, api_key=KEY, analytics_since="last year")
