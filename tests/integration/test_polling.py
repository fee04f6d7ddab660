"""Polling end to end, on RabbitMQ and the vendor simulator, with a one-second poll interval: no webhook at all,
and a campaign whose Smartlead analytics reach 5% bounces is paused by the first poll; polls go on during a
burst of pauses (behind them: background) and the credential never sees more than its limit (10 requests per
2 s) nor a 429."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.broker.topology import Names
from bot.config import Settings
from bot.events import Event
from bot.service import Services, running
from bot.testing import DEFAULT_KEYS, CallRecord, VendorSimulator, max_in_window
from bot.vendors.leadterra.sim import set_stats
from bot.vendors.smartlead.sim_data import set_campaign_stats
from tests.integration.conftest import delete_prefix

pytestmark = pytest.mark.integration

RETRY_DELAYS = (0.05, 0.1)
POLLED = ("/analytics/campaign/overall-stats", "/email-accounts/")

#: a rule on the vendor's own analytics (polled `campaign.metrics`), 5% bounces from 50 sends
ANALYTICS_RULE = """\
description: test rule, pauses on the vendor's analytics
on: campaign.metrics
when:
  data.polled: {eq: true}
measure: {value: data.bounce_rate, sample: data.sent, min_sample: 50}
pause:
  when: {gte: 0.05}
  reason: "bounce rate {value:.1%} by the vendor's analytics"
"""
#: a rule on events sent straight to the broker (the burst of pauses)
EVENT_RULE = """\
description: test rule, pauses early
on: [email.sent, email.bounced]
window: {last: 10, of: email.sent}
measure: {ratio: [email.bounced, email.sent], min_sample: 5}
pause: {when: {gte: 0.3}}
"""


@asynccontextmanager
async def bot(amqp_url: str, prefix: str, sim: VendorSimulator, aiohttp_server: Any, tmp_path: Path,
              rule: str, **overrides: Any) -> AsyncIterator[Services]:
    server = await aiohttp_server(sim.app)
    urls = sim.base_urls(str(server.make_url("")))
    rules = tmp_path / "rules"
    rules.mkdir(parents=True)
    (rules / "test-rule.yaml").write_text(rule)
    settings = Settings(
        broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        rules_dir=rules, retry_delays=RETRY_DELAYS, reconcile_seconds=0,
        smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]),
        **{"poll_seconds": 1, "inventory_refresh": 0, **overrides},
        smartlead_base_url=urls["smartlead"], leadterra_base_url=urls["leadterra"],
    )
    try:
        async with running(settings, with_web=False, with_worker=True) as services:
            yield services
    finally:
        await delete_prefix(amqp_url, Names(prefix), set(RETRY_DELAYS))


def polled(call: CallRecord) -> bool:
    return call.method == "GET" and call.path in POLLED


async def test_without_any_webhook_analytics_at_5_percent_bounces_pause_the_campaign_within_one_poll(
        amqp_url: str, prefix: str, aiohttp_server: Any, tmp_path: Path) -> None:
    sim = VendorSimulator()
    sim.add_campaign("smartlead:501", "ACTIVE", leads=400)
    sim.add_campaign("smartlead:502", "ACTIVE", leads=400)
    set_campaign_stats(sim, "smartlead:501", sent=200, bounced=10)          # 5.0%
    set_campaign_stats(sim, "smartlead:502", sent=200, bounced=9)           # 4.5%
    loop = asyncio.get_running_loop()
    async with bot(amqp_url, prefix, sim, aiohttp_server, tmp_path, ANALYTICS_RULE) as services:
        started = loop.time()
        await sim.wait_for_status("smartlead:501", "PAUSED", timeout=20)
        took = loop.time() - started
        assert services.store is not None and services.worker is not None
        recorded = [json.loads(line) async for line in services.store.events(campaign="smartlead:501")]
        [decision] = [r for r in await services.store.audit(campaign="smartlead:501") if r.kind == "decision"]
    assert sim.status_of("smartlead:502") == "ACTIVE"
    assert [(c.method, c.path) for c in sim.calls if c.method == "POST"] == [("POST", "/campaigns/501/status")]
    # the first poll's event paused it: nothing but polls ever reached the worker
    assert all(event["id"].startswith("poll:smartlead:") for event in recorded)
    assert list(decision.event_ids) == [recorded[0]["id"]] and recorded[0]["type"] == "campaign.metrics"
    assert "5.0%" in decision.detail
    first_post = next(c.at for c in sim.calls if c.method == "POST")
    rounds_before = {c.at for c in sim.calls if polled(c) and c.path == POLLED[0] and c.at < first_post}
    assert 1 <= len(rounds_before) <= 2             # one round: its page of campaigns and the empty page after
    print(f"\npaused {took:.2f} s after the worker started (poll interval 1 s)")


def sends_and_bounces(campaign: str) -> list[Event]:
    kinds = ["email.sent"] * 5 + ["email.bounced"] * 2
    return [Event(id=f"burst:{campaign}:{n}", type=kind, source="smartlead", campaign=campaign,
                  occurred_at="2026-11-23T09:00:00Z") for n, kind in enumerate(kinds)]


async def test_polls_during_a_burst_of_pauses_never_push_the_credential_past_its_limit(
        amqp_url: str, prefix: str, aiohttp_server: Any, tmp_path: Path) -> None:
    sim = VendorSimulator()                         # Smartlead's own limit: 10 per 2 s, 429 above it
    campaigns = [f"smartlead:{600 + n}" for n in range(20)]
    for campaign in campaigns:
        sim.add_campaign(campaign, "ACTIVE", leads=400, accounts=[f"s{campaign[-2:]}@acme.io"])
        set_campaign_stats(sim, campaign, sent=100, bounced=1)              # healthy by the analytics
    loop = asyncio.get_running_loop()
    async with bot(amqp_url, prefix, sim, aiohttp_server, tmp_path, EVENT_RULE, breaker_limit=1000,
                   smartlead_rate_limit="10/2") as services:
        await sim.wait_for_calls(polled, count=3, timeout=10)               # polling runs
        events = [event for campaign in campaigns for event in sends_and_bounces(campaign)]
        started = loop.time()
        await asyncio.gather(*(services.broker.publish(e.model_dump_json().encode(), message_id=e.id,
                                                       routing_key=e.routing_key) for e in events))
        for campaign in campaigns:
            await sim.wait_for_status(campaign, "PAUSED", timeout=60)
        took = loop.time() - started
        last_post = max(c.at for c in sim.calls if c.method == "POST")
        await sim.wait_for_calls(lambda c: polled(c) and c.at > last_post, timeout=10)  # and polling goes on
    calls = sim.calls_for("smartlead")
    posts = [c for c in calls if c.method == "POST"]
    assert len(posts) == len(campaigns)
    # polls wait behind every pause: they take a slot only when no pause, resume or their reads wait
    during = [c for c in calls if polled(c) and posts[0].at <= c.at <= posts[-1].at]
    assert [c for c in calls if c.status == 429 or c.decided == 429] == []
    busiest = max_in_window(calls, 2.0)
    assert busiest <= 10
    background = max_in_window([c for c in calls if polled(c)], 2.0)
    print(f"\n{len(campaigns)} pauses ({len(calls)} Smartlead calls) in {took:.1f} s with {len(during)} poll "
          f"requests among them; busiest 2 s window {busiest} calls, of which polls at most {background}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_worker_serves_its_poll_metrics_and_zero_turns_polling_off(
        amqp_url: str, prefix: str, aiohttp_server: Any, tmp_path: Path) -> None:
    sim = VendorSimulator()
    sim.add_campaign("smartlead:701", "ACTIVE", leads=400)
    set_campaign_stats(sim, "smartlead:701", sent=100, bounced=1)
    port = free_port()
    async with bot(amqp_url, prefix, sim, aiohttp_server, tmp_path / "on", ANALYTICS_RULE,
                   metrics_port=port) as services:
        assert services.poller is not None
        await services.poller.wait_rounds(1)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(lines['campaign_guard_polls_total{kind="metrics",result="ok",route="smartlead"}']) >= 1
    assert float(lines['campaign_guard_poll_last_success_timestamp_seconds{kind="metrics",route="smartlead"}']) > 0
    assert float(lines["campaign_guard_poll_interval_seconds"]) == 1
    assert float(lines["campaign_guard_worker_heartbeat_timestamp_seconds"]) > 0
    assert DEFAULT_KEYS["smartlead"] not in text

    quiet = VendorSimulator()
    quiet.add_campaign("smartlead:702", "ACTIVE", leads=400)
    set_campaign_stats(quiet, "smartlead:702", sent=100, bounced=50)
    async with bot(amqp_url, f"{prefix}.off", quiet, aiohttp_server, tmp_path / "off", ANALYTICS_RULE,
                   poll_seconds=0) as services:
        assert services.poller is not None and not services.poller.enabled
        assert not [task for task in asyncio.all_tasks() if task.get_name() == "poll"]
    assert not [c for c in quiet.calls if polled(c)]


#: on the vendor's counts when it gives no rate (Leadterra's stats: sent and bounced, no bounce rate)
COUNTS_RULE = """\
description: test rule on polled counts
on: campaign.metrics
when:
  data.polled: {eq: true}
measure:
  value: [data.bounce_rate, {ratio: [data.bounced, data.sent]}]
  sample: data.sent
  min_sample: 50
pause:
  when: {gte: 0.05}
  reason: "bounce rate {value:.1%} by the vendor's counts"
"""


async def test_leadterra_polls_the_campaigns_the_bot_knows_and_pauses_one_at_5_percent(
        amqp_url: str, prefix: str, aiohttp_server: Any, tmp_path: Path) -> None:
    """Leadterra lists no campaigns: the campaign the inventory file names is polled (and paused at 5%), one the
    bot has never heard of is never asked for, however bad its numbers."""
    sim = VendorSimulator()
    sim.add_campaign("leadterra:camp_known", "ACTIVE")
    sim.add_campaign("leadterra:camp_unknown", "ACTIVE")
    set_stats(sim, "leadterra:camp_known", sent=400, delivered=380, bounced=20)       # 5%
    set_stats(sim, "leadterra:camp_unknown", sent=400, delivered=300, bounced=100)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("campaigns:\n  leadterra:camp_known: [ana@acme.io]\n")
    async with bot(amqp_url, prefix, sim, aiohttp_server, tmp_path, COUNTS_RULE, inventory_file=inventory,
                   leadterra_api_key=SecretStr(DEFAULT_KEYS["leadterra"])) as services:
        await sim.wait_for_status("leadterra:camp_known", "PAUSED", timeout=20)
        assert services.poller is not None and "leadterra" in services.poller.kinds
        await services.poller.wait_rounds(services.poller.rounds + 1)
    stats_reads = {c.path for c in sim.calls_for("leadterra", "GET")}
    assert stats_reads == {"/campaigns/camp_known/stats"}
    assert sim.status_of("leadterra:camp_unknown") == "running"
