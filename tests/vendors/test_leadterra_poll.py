"""Leadterra polls: the stats parser on realistic answers, and `campaign_metrics` of the campaigns the client
is told to watch, against the simulator (no campaign list: nothing polled unless told; retries; priority)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.errors import VendorAuthError
from bot.testing import VendorSimulator
from bot.vendors import LeadterraClient, SlidingWindowLimiter
from bot.vendors.base import CampaignMetrics, HealthSource, MetricsSource
from bot.vendors.leadterra import SPEC
from bot.vendors.leadterra.client import make_client
from bot.vendors.leadterra.sim import set_stats
from bot.vendors.leadterra.stats import count, fraction, parse_stats
from bot.vendors.spec import VendorConfig
from tests.vendors.conftest import FAST_RETRY, Recording, Ticking, assert_secret_absent, until

#: docs.leadterra.co "Campaign stats" fields, realistic numbers
DOCUMENTED = {"campaignId": "camp_123", "totalEnrolled": 500, "sent": 420, "delivered": 400, "bounced": 20,
              "replied": 32, "queued": 80, "openRate": 0.42, "replyRate": 0.08}


def stats_gets(sim: VendorSimulator) -> list[tuple[str, int | None]]:
    return [(c.path, c.status) for c in sim.calls_for("leadterra", "GET")]


# ------------------------------------------------------------------ pure parser

def test_the_documented_answer() -> None:
    assert parse_stats(DOCUMENTED, "camp_123") == CampaignMetrics("camp_123", sent=420, bounced=20, replied=32,
                                                                  reply_rate=0.08)


def test_nothing_is_derived_from_a_rate() -> None:
    """`openRate` has no count behind it, and no bounce rate is given: both stay None (not 0)."""
    item = parse_stats(DOCUMENTED, "camp_123")
    assert item is not None and item.opened is None and item.bounce_rate is None and item.unsubscribed is None
    assert item.started_at is None


def test_strings_nulls_and_missing_fields() -> None:
    body = {"campaignId": "camp_123", "sent": "420", "bounced": None, "replyRate": "0.08"}
    assert parse_stats(body, "camp_123") == CampaignMetrics("camp_123", sent=420, reply_rate=0.08)
    assert parse_stats({"data": {"sent": 3}}, "camp_123") == CampaignMetrics("camp_123", sent=3)
    assert parse_stats({}, "camp_123") == CampaignMetrics("camp_123")


def test_another_campaigns_numbers_are_refused() -> None:
    assert parse_stats({**DOCUMENTED, "campaignId": "camp_999"}, "camp_123") is None
    assert parse_stats([DOCUMENTED], "camp_123") is None
    assert parse_stats("oops", "camp_123") is None


@pytest.mark.parametrize(("raw", "expected"), [
    (0.08, 0.08), ("0.08", 0.08), ("8%", 0.08), (0, 0.0), (1, 1.0), (1.2, None), (-0.1, None), (True, None),
    (None, None), ("high", None), (float("inf"), None),
])
def test_fraction(raw: Any, expected: float | None) -> None:
    assert fraction(raw) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(("raw", "expected"), [(3, 3), ("3", 3), (3.0, 3), (3.5, None), (-1, None), (False, None)])
def test_count(raw: Any, expected: int | None) -> None:
    assert count(raw) == expected


# ------------------------------------------------------------------ against the simulator

def test_the_client_is_a_metrics_source_not_a_health_source(leadterra: LeadterraClient) -> None:
    assert isinstance(leadterra, MetricsSource) and not isinstance(leadterra, HealthSource)


async def test_nothing_is_polled_unless_told(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    assert await leadterra.campaign_metrics() == []
    assert sim.calls == []


async def test_the_watched_campaigns_are_polled(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running", leads=50)
    sim.add_campaign("leadterra:camp_2", "paused")
    set_stats(sim, "leadterra:camp_1", sent=120, delivered=100, bounced=20, replied=5, opened=40)
    leadterra.watch(["camp_2", "camp_1"])
    assert await leadterra.campaign_metrics() == [
        CampaignMetrics("camp_1", sent=120, bounced=20, replied=5, reply_rate=0.05),
        CampaignMetrics("camp_2", sent=0, bounced=0, replied=0, reply_rate=0.0),
    ]
    assert stats_gets(sim) == [("/campaigns/camp_1/stats", 200), ("/campaigns/camp_2/stats", 200)]
    leadterra.watch(["camp_2"])                                         # replaces the watched set
    assert [m.campaign_id for m in await leadterra.campaign_metrics()] == ["camp_2"]
    assert leadterra.watched == frozenset({"camp_2"})


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_known_campaigns_are_asked_at_every_poll(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                       base: Any, asynchronous: bool) -> None:
    for n in (1, 2, 3):
        sim.add_campaign(f"leadterra:camp_{n}", "running")
    known = ["camp_1"]

    def sync_known() -> Iterable[str]:
        return list(known)

    async def async_known() -> Iterable[str]:
        return list(known)

    client = LeadterraClient(session, api_key="sk_live_sim_leadterra", base_url=base("leadterra"),
                             retry=FAST_RETRY, timeout=5, known=async_known if asynchronous else sync_known)
    client.watch(["camp_3"])
    assert [m.campaign_id for m in await client.campaign_metrics()] == ["camp_1", "camp_3"]
    known.append("camp_2")                                              # campaign-guard learnt of another one
    assert [m.campaign_id for m in await client.campaign_metrics()] == ["camp_1", "camp_2", "camp_3"]
    client.follow(None)
    assert [m.campaign_id for m in await client.campaign_metrics()] == ["camp_3"]


async def test_an_id_that_is_not_leadterras_never_reaches_a_path(sim: VendorSimulator,
                                                                 leadterra: LeadterraClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    leadterra.watch(["camp_1", "../admin", "123", "camp_1/pause"])
    assert [m.campaign_id for m in await leadterra.campaign_metrics()] == ["camp_1"]
    assert stats_gets(sim) == [("/campaigns/camp_1/stats", 200)]
    assert sim.calls_for(method="POST") == []


async def test_a_deleted_campaign_is_left_out(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    leadterra.watch(["camp_1", "camp_gone"])
    assert [m.campaign_id for m in await leadterra.campaign_metrics()] == ["camp_1"]
    assert stats_gets(sim) == [("/campaigns/camp_1/stats", 200), ("/campaigns/camp_gone/stats", 404)]


async def test_429_and_5xx_are_retried(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    set_stats(sim, "leadterra:camp_1", sent=10, delivered=10, replied=1)
    sim.inject("leadterra", "rate_limit", path="/campaigns/*/stats", retry_after=0.01)
    sim.inject("leadterra", "error", status=503, path="/campaigns/*/stats")
    leadterra.watch(["camp_1"])
    assert await leadterra.campaign_metrics() == [CampaignMetrics("camp_1", sent=10, bounced=0, replied=1,
                                                                  reply_rate=0.1)]
    assert [status for _, status in stats_gets(sim)] == [429, 503, 200]


async def test_a_bad_key_fails_without_showing_it(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                  base: Any) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    secret = "sk_live_wrong_0123456789"
    client = LeadterraClient(session, api_key=secret, base_url=base("leadterra"), retry=FAST_RETRY, timeout=5)
    client.watch(["camp_1"])
    with pytest.raises(VendorAuthError) as caught:
        await client.campaign_metrics()
    assert_secret_absent(secret, caught.value)


async def test_stats_reads_are_background(sim: VendorSimulator, session: aiohttp.ClientSession, base: Any) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    sim.add_campaign("leadterra:camp_2", "running")
    limiter = Recording()
    client = LeadterraClient(session, api_key="sk_live_sim_leadterra", base_url=base("leadterra"),
                             retry=FAST_RETRY, timeout=5, limiter=limiter)
    client.watch(["camp_1", "camp_2"])
    await client.campaign_metrics()
    assert limiter.asked == [True, True]
    await client.pause("camp_1")
    assert limiter.asked[-1] is False


async def test_a_pause_arriving_while_the_poll_waits_goes_first(sim: VendorSimulator,
                                                                session: aiohttp.ClientSession, base: Any) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    limiter = SlidingWindowLimiter(1, 60, clock=Ticking())
    client = LeadterraClient(session, api_key="sk_live_sim_leadterra", base_url=base("leadterra"),
                             retry=FAST_RETRY, timeout=5, limiter=limiter)
    client.watch(["camp_1"])
    await limiter.acquire()
    poll = asyncio.create_task(client.campaign_metrics())
    await until(lambda: limiter.waiting == (0, 1))
    pause = asyncio.create_task(client.pause("camp_1"))
    await until(lambda: limiter.waiting == (1, 1))
    limiter.release()
    await asyncio.gather(poll, pause)
    assert [(c.method, c.path) for c in sim.calls] == [("POST", "/campaigns/camp_1/pause"),
                                                       ("GET", "/campaigns/camp_1/stats")]


def test_the_stats_path_comes_from_the_settings(session: aiohttp.ClientSession) -> None:
    defaults = {key: setting.default for key, setting in SPEC.settings.items() if setting.kind != "secret"}
    config = VendorConfig("leadterra", {**defaults, "api_key": SecretStr("sk_live_x"),
                                        "stats_path": "/campaigns/{id}/metrics"})
    assert make_client(session, config, FAST_RETRY, 5)._stats_path == "/campaigns/{id}/metrics"
    with pytest.raises(ValueError, match="stats path"):
        LeadterraClient(session, api_key="sk_live_x", stats_path="/campaigns/stats")
