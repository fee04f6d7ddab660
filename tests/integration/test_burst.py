"""Bursts through the real pipeline: one vendor write for a thousand bounces, and a rate limit that
holds for ten thousand events across a thousand campaigns."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.broker.topology import Names
from bot.config import Settings
from bot.events import Event
from bot.service import Services, running
from bot.testing import DEFAULT_KEYS, VendorSimulator, max_in_window
from tests.conftest import REPO
from tests.integration.conftest import delete_prefix

pytestmark = pytest.mark.integration

RETRY_DELAYS = (0.05, 0.1)
#: the simulator enforces the same limit the client is given; scaled up from Smartlead's 10 per 2 s so
#: a thousand pauses take seconds, not minutes (the guarantee does not depend on the numbers)
LIMIT = (100, 1.0)

QUICK_RULE = """\
description: test rule, pauses early
on: [email.sent, email.bounced]
window: {last: 10, of: email.sent}
measure: {ratio: [email.bounced, email.sent], min_sample: 5}
pause: {when: {gte: 0.3}}
"""


async def _start(amqp_url: str, prefix: str, sim: VendorSimulator, server: Any, tmp_path: Path,
                 rules: Path, **overrides: Any) -> Any:
    settings = Settings(
        broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        rules_dir=rules, http_port=0, retry_delays=RETRY_DELAYS, prefetch=32, inventory_refresh=0,
        smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]), smartlead_rate_limit=f"{LIMIT[0]}/{LIMIT[1]}",
        smartlead_base_url=sim.base_urls(str(server.make_url("")))["smartlead"], **overrides,
    )
    return running(settings, with_web=False, with_worker=True)


def _events(campaign: str, sends: int, bounces: int, tag: str) -> list[Event]:
    kinds = ["email.sent"] * sends + ["email.bounced"] * bounces
    return [Event(id=f"{tag}:{campaign}:{n}", type=kind, source="smartlead", campaign=campaign,
                  occurred_at="2026-11-23T09:00:00Z") for n, kind in enumerate(kinds)]


async def _publish(services: Services, events: list[Event]) -> None:
    for start in range(0, len(events), 500):
        await asyncio.gather(*(services.broker.publish(e.model_dump_json().encode(), message_id=e.id,
                                                       routing_key=e.routing_key) for e in events[start:start + 500]))


@pytest.fixture
async def cleanup(amqp_url: str, prefix: str) -> AsyncIterator[None]:
    yield
    await delete_prefix(amqp_url, Names(prefix), set(RETRY_DELAYS))


async def test_a_thousand_bounces_for_one_campaign_make_one_vendor_write(
        amqp_url, prefix, aiohttp_server, tmp_path, cleanup) -> None:
    sim = VendorSimulator(limits={"smartlead": LIMIT})
    sim.add_campaign("smartlead:77", "ACTIVE")
    server = await aiohttp_server(sim.app)
    async with await _start(amqp_url, prefix, sim, server, tmp_path, REPO / "rules") as services:
        burst = _events("smartlead:77", sends=60, bounces=1000, tag="burst")
        await _publish(services, burst)
        async with asyncio.timeout(120):
            await services.worker.wait_handled(len(burst))
    writes = [c for c in sim.calls if c.method == "POST"]
    print(f"\nburst: {len(burst)} events for one campaign -> {len(sim.calls)} vendor calls, {len(writes)} write")
    assert [(c.path, c.body) for c in writes] == [("/campaigns/77/status", {"status": "PAUSED"})]
    assert len(sim.calls) == 3          # a status read, the write, the read that proves it


async def test_ten_thousand_events_across_a_thousand_campaigns_never_exceed_the_rate_limit(
        amqp_url, prefix, aiohttp_server, tmp_path, cleanup) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "quick.yaml").write_text(QUICK_RULE)
    sim = VendorSimulator(limits={"smartlead": LIMIT})
    campaigns = [f"smartlead:{1000 + n}" for n in range(1000)]
    for ref in campaigns:
        sim.add_campaign(ref, "ACTIVE")
    server = await aiohttp_server(sim.app)
    started = time.monotonic()
    async with await _start(amqp_url, prefix, sim, server, tmp_path, rules, breaker_limit=100_000) as services:
        stream = [e for ref in campaigns for e in _events(ref, sends=7, bounces=3, tag="load")]
        await _publish(services, stream)
        async with asyncio.timeout(240):
            await services.worker.wait_handled(len(stream))
            await sim.wait_for_calls(lambda c: c.method == "POST", count=len(campaigns), timeout=200)
    elapsed = time.monotonic() - started
    statuses = {c.status for c in sim.calls}
    peak = max_in_window(sim.calls, LIMIT[1])
    print(f"\nload: {len(stream)} events, {len(campaigns)} campaigns, {len(sim.calls)} vendor calls in {elapsed:.1f} s;"
          f" busiest {LIMIT[1]:g} s window: {peak} calls (limit {LIMIT[0]}); statuses {sorted(statuses)}")
    assert peak <= LIMIT[0]
    assert 429 not in statuses
    assert sorted(sim.status_of(ref) for ref in campaigns) == ["PAUSED"] * len(campaigns)
    assert len([c for c in sim.calls if c.method == "POST"]) == len(campaigns)
    assert json.dumps(sorted(statuses)) == "[200]", "only successful calls: no 429, no 5xx"
