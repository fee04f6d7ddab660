"""lemlist polls: the campaign-list and stats parsers on realistic answers, and `campaign_metrics` against the
simulator (offset pagination with version=v2, statuses not polled, retries, background priority, settings)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.errors import VendorAuthError
from bot.testing import DEFAULT_KEYS, VendorSimulator
from bot.vendors import SlidingWindowLimiter
from bot.vendors.base import CampaignMetrics, HealthSource, MetricsSource
from bot.vendors.http import basic_credentials
from bot.vendors.lemlist import SPEC
from bot.vendors.lemlist.client import LemlistClient, make_client
from bot.vendors.lemlist.sim import set_stats
from bot.vendors.lemlist.stats import count, parse_campaign_page, parse_stats
from bot.vendors.spec import VendorConfig
from tests.vendors.conftest import FAST_RETRY, Recording, Ticking, assert_secret_absent, until

#: the v2 stats object as public lemlist clients read it
V2_STATS: dict[str, Any] = {
    "nbLeads": 32, "nbLeadsLaunched": 32, "nbLeadsReached": 32, "nbLeadsOpened": 31, "nbLeadsInteracted": 4,
    "nbLeadsAnswered": 16, "nbLeadsInterested": 1, "nbLeadsNotInterested": 0, "nbLeadsUnsubscribed": 1,
    "nbLeadsInterrupted": 1, "messagesSent": 72, "messagesNotSent": 0, "messagesBounced": 3, "delivered": 69,
    "opened": 47, "clicked": 4, "replied": 16, "invitationAccepted": 0, "meetingBooked": 0,
    "steps": [{"index": 1, "sequenceId": "seq_abc", "sent": 32, "bounced": 0}],
}


def cid(n: int) -> str:
    return f"cam_sim{n:04d}"


@pytest.fixture
def lemlist(session: aiohttp.ClientSession, base: Callable[[str], str]) -> LemlistClient:
    return LemlistClient(session, api_key=DEFAULT_KEYS["lemlist"], base_url=base("lemlist"), retry=FAST_RETRY,
                         timeout=5)


def gets(sim: VendorSimulator) -> list[tuple[str, int | None]]:
    return [(c.path, c.status) for c in sim.calls_for("lemlist", "GET")]


# ------------------------------------------------------------------ pure parsers

def test_the_v2_stats_object() -> None:
    assert parse_stats(V2_STATS, "cam_1") == CampaignMetrics("cam_1", sent=72, bounced=3, replied=16, opened=47,
                                                             unsubscribed=1)


def test_the_legacy_v1_stats_object() -> None:
    legacy = {"leadTotal": 10, "sentCount": 8, "deliveredCount": 8, "openedCount": 5, "clickedCount": 0,
              "repliedCount": 2, "interestedCount": 1}
    assert parse_stats(legacy, "cam_1") == CampaignMetrics("cam_1", sent=8, replied=2, opened=5)   # no bounces said


def test_stats_wrappers_strings_and_nulls() -> None:
    assert parse_stats({"results": [{"campaignId": "cam_2", "messagesSent": 1},
                                    {"campaignId": "cam_1", "messagesSent": "9", "messagesBounced": None}]},
                       "cam_1") == CampaignMetrics("cam_1", sent=9)
    assert parse_stats({"data": {"messagesSent": 4.0}}, "cam_1") == CampaignMetrics("cam_1", sent=4)
    assert parse_stats({"results": [{"campaignId": "cam_2"}, {"campaignId": "cam_3"}]}, "cam_1") is None
    assert parse_stats({"campaignId": "cam_9", "messagesSent": 1}, "cam_1") is None       # another campaign's
    assert parse_stats([V2_STATS], "cam_1") is None
    assert parse_stats({}, "cam_1") == CampaignMetrics("cam_1")


@pytest.mark.parametrize(("raw", "expected"), [(3, 3), ("3", 3), (3.0, 3), (3.5, None), (-1, None), (True, None)])
def test_count(raw: Any, expected: int | None) -> None:
    assert count(raw) == expected


def test_a_v2_page_and_its_pagination() -> None:
    page = parse_campaign_page({"campaigns": [{"_id": "cam_1", "status": "Running"}, {"_id": "bad id"},
                                              {"_id": "cam_2"}],
                                "pagination": {"totalRecords": 3, "currentPage": 1, "nextPage": None, "totalPage": 1}})
    assert (page.campaigns, page.size, page.has_more) == ([("cam_1", "running"), ("cam_2", None)], 3, False)
    assert parse_campaign_page({"campaigns": [], "pagination": {"nextPage": 2}}).has_more is True
    assert parse_campaign_page({"campaigns": [], "pagination": {"currentPage": 2, "totalPage": 3}}).has_more is True
    assert parse_campaign_page({"campaigns": [], "pagination": {"currentPage": 3, "totalPage": 3}}).has_more is False
    assert parse_campaign_page({"campaigns": []}).has_more is None


def test_a_legacy_page_and_junk() -> None:
    page = parse_campaign_page([{"_id": "cam_1", "name": "A", "labels": []}])
    assert (page.campaigns, page.size, page.has_more) == ([("cam_1", None)], 1, None)
    assert parse_campaign_page({"error": "x"}).size == 0 and parse_campaign_page("x").campaigns == []


# ------------------------------------------------------------------ against the simulator

def test_the_client_is_a_metrics_source(lemlist: LemlistClient) -> None:
    assert isinstance(lemlist, MetricsSource) and not isinstance(lemlist, HealthSource)


async def test_stats_of_every_campaign_that_may_still_send(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    for n, status in enumerate(("running", "paused", "errors", "draft", "ended", "archived")):
        sim.add_campaign(f"lemlist:{cid(n)}", status)
    set_stats(sim, f"lemlist:{cid(0)}", sent=120, bounced=6, delivered=114, opened=50, replied=9, unsubscribed=2)
    set_stats(sim, f"lemlist:{cid(3)}", sent=1)                       # a draft: never polled
    assert await lemlist.campaign_metrics() == [
        CampaignMetrics(cid(0), sent=120, bounced=6, replied=9, opened=50, unsubscribed=2),
        CampaignMetrics(cid(1), sent=0, bounced=0, replied=0, opened=0, unsubscribed=0),
        CampaignMetrics(cid(2), sent=0, bounced=0, replied=0, opened=0, unsubscribed=0),
    ]
    assert gets(sim) == [("/campaigns", 200), *[(f"/v2/campaigns/{cid(n)}/stats", 200) for n in range(3)]]


@pytest.mark.parametrize(("campaigns", "pages"), [(0, 1), (99, 1), (100, 1), (101, 2), (250, 3)])
async def test_every_page_is_read(sim: VendorSimulator, session: aiohttp.ClientSession,
                                  base: Callable[[str], str], campaigns: int, pages: int) -> None:
    sim.set_limit("lemlist", None)
    for n in range(campaigns):
        sim.add_campaign(f"lemlist:{cid(n)}", "draft")                  # drafts: the list alone is read
    client = LemlistClient(session, api_key=DEFAULT_KEYS["lemlist"], base_url=base("lemlist"), retry=FAST_RETRY,
                           timeout=5, rate_limit=(1000, 1.0))
    assert await client.campaign_metrics() == []
    assert gets(sim) == [("/campaigns", 200)] * pages                  # a full last page: its pagination says so
    assert [c for c, _ in await client._campaigns()] == [cid(n) for n in range(campaigns)]


async def test_version_v2_is_asked(sim: VendorSimulator, lemlist: LemlistClient,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `version=v2` lemlist answers its legacy list, which has no status: drafts would be polled."""
    sim.add_campaign(f"lemlist:{cid(1)}", "draft")
    asked: list[str] = []
    request = lemlist._http.request

    async def spy(method: str, path: str, **kwargs: Any) -> Any:
        asked.append(path)
        return await request(method, path, **kwargs)

    monkeypatch.setattr(lemlist._http, "request", spy)
    assert await lemlist.campaign_metrics() == []
    assert asked == ["/campaigns?version=v2&limit=100&offset=0"]


async def test_a_server_ignoring_the_offset_does_not_loop(lemlist: LemlistClient,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.vendors.http import Reply

    calls: list[str] = []
    full_page = [{"_id": cid(n), "status": "draft"} for n in range(100)]

    async def same_page(method: str, path: str, **kwargs: Any) -> Reply:
        calls.append(path)
        return Reply(200, full_page)

    monkeypatch.setattr(lemlist._http, "request", same_page)
    assert await lemlist.campaign_metrics() == []
    assert len(calls) == 2


async def test_a_campaign_gone_before_its_stats_is_left_out(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(f"lemlist:{cid(1)}", "running")
    sim.add_campaign(f"lemlist:{cid(2)}", "running")
    sim.inject("lemlist", "error", status=404, path=f"/v2/campaigns/{cid(1)}/stats")
    assert [m.campaign_id for m in await lemlist.campaign_metrics()] == [cid(2)]


async def test_429_and_5xx_are_retried(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(f"lemlist:{cid(1)}", "running")
    set_stats(sim, f"lemlist:{cid(1)}", sent=5)
    sim.inject("lemlist", "rate_limit", path="/campaigns", retry_after=0.01)
    sim.inject("lemlist", "error", status=500, path="/v2/campaigns/*/stats")
    [item] = await lemlist.campaign_metrics()
    assert item.sent == 5
    assert [status for _, status in gets(sim)] == [429, 200, 500, 200]


async def test_only_the_keys_campaigns(sim: VendorSimulator, lemlist: LemlistClient) -> None:
    sim.add_campaign(f"lemlist:{cid(1)}", "running")
    sim.add_campaign(f"lemlist:{cid(2)}", "running", key="another-client-key")
    assert [m.campaign_id for m in await lemlist.campaign_metrics()] == [cid(1)]


async def test_a_bad_key_fails_without_showing_it(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                  base: Callable[[str], str]) -> None:
    secret = "wrong-lemlist-key-0123456789"
    client = LemlistClient(session, api_key=secret, base_url=base("lemlist"), retry=FAST_RETRY, timeout=5)
    with pytest.raises(VendorAuthError) as caught:
        await client.campaign_metrics()
    assert_secret_absent(secret, caught.value)
    assert_secret_absent(basic_credentials(secret), caught.value)


async def test_every_poll_request_is_background(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                base: Callable[[str], str]) -> None:
    sim.add_campaign(f"lemlist:{cid(1)}", "running")
    limiter = Recording()
    client = LemlistClient(session, api_key=DEFAULT_KEYS["lemlist"], base_url=base("lemlist"), retry=FAST_RETRY,
                           timeout=5, limiter=limiter)
    await client.campaign_metrics()
    assert limiter.asked == [True, True]
    await client.observe(cid(1))
    assert limiter.asked[-1] is False


async def test_a_pause_arriving_while_the_poll_waits_goes_first(sim: VendorSimulator,
                                                                session: aiohttp.ClientSession,
                                                                base: Callable[[str], str]) -> None:
    sim.add_campaign(f"lemlist:{cid(1)}", "running")
    limiter = SlidingWindowLimiter(1, 60, clock=Ticking())
    client = LemlistClient(session, api_key=DEFAULT_KEYS["lemlist"], base_url=base("lemlist"), retry=FAST_RETRY,
                           timeout=5, limiter=limiter)
    await limiter.acquire()
    poll = asyncio.create_task(client.campaign_metrics())
    await until(lambda: limiter.waiting == (0, 1))
    pause = asyncio.create_task(client.pause(cid(1)))
    await until(lambda: limiter.waiting == (1, 1))
    limiter.release()
    _, result = await asyncio.gather(poll, pause)
    assert result.proven
    assert (sim.calls[0].method, sim.calls[0].path) == ("GET", f"/campaigns/{cid(1)}")   # the pause's read first
    assert sim.calls_for(path="/campaigns")[0].at >= sim.calls[0].at


def test_the_paths_come_from_the_settings(session: aiohttp.ClientSession) -> None:
    defaults = {key: setting.default for key, setting in SPEC.settings.items() if setting.kind != "secret"}
    config = VendorConfig("lemlist", {**defaults, "api_key": SecretStr("k"), "stats_path": "/campaigns/{id}/stats"})
    client = make_client(session, config, FAST_RETRY, 5)
    assert (client._stats_path, client._campaigns_path) == ("/campaigns/{id}/stats", "/campaigns")
    with pytest.raises(ValueError, match="stats path"):
        LemlistClient(session, api_key="k", stats_path="/v2/campaigns/stats")
    with pytest.raises(ValueError, match="campaigns path"):
        LemlistClient(session, api_key="k", campaigns_path="/campaigns?version=v2")
