"""End to end on a real RabbitMQ: signed Smartlead webhooks → web → RabbitMQ → worker → vendor simulator."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.broker.topology import Names
from bot.config import Settings
from bot.service import Services, running
from bot.testing import DEFAULT_KEYS, VendorSimulator
from tests.conftest import REPO
from tests.integration.conftest import delete_prefix

pytestmark = pytest.mark.integration

SECRET = "it-smartlead-webhook-secret"
RETRY_DELAYS = (0.05, 0.1)


def _webhook(event_type: str, campaign_id: int, n: int) -> bytes:
    return json.dumps({
        "event_type": event_type, "campaign_id": campaign_id, "to_email": f"lead{n}@example.org",
        "from_email": "sender@example.com", "message_id": f"<it-{campaign_id}-{n}@example.com>",
        "time_sent": "2026-11-23T09:00:00Z",
    }).encode()


def _spike(campaign_id: int, sends: int, bounces: int) -> list[bytes]:
    return ([_webhook("EMAIL_SENT", campaign_id, n) for n in range(sends)]
            + [_webhook("EMAIL_BOUNCE", campaign_id, n) for n in range(bounces)])


async def _post(session: aiohttp.ClientSession, url: str, bodies: list[bytes]) -> list[int]:
    statuses = []
    for body in bodies:
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        async with session.post(url, data=body, headers={"X-Smartlead-Signature": signature}) as resp:
            statuses.append(resp.status)
    return statuses


@pytest.fixture
def sim() -> VendorSimulator:
    simulator = VendorSimulator()
    simulator.add_campaign("smartlead:501", "ACTIVE")
    simulator.add_campaign("smartlead:502", "ACTIVE")
    return simulator


@pytest.fixture
async def bot(amqp_url: str, prefix: str, sim: VendorSimulator, aiohttp_server: Any,
              tmp_path: Path) -> AsyncIterator[tuple[Services, str]]:
    server = await aiohttp_server(sim.app)
    settings = Settings(
        broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        rules_dir=REPO / "rules", http_port=0, retry_delays=RETRY_DELAYS, prefetch=8,
        smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]),
        smartlead_base_url=sim.base_urls(str(server.make_url("")))["smartlead"],
        smartlead_webhook_secret=SecretStr(SECRET), inventory_refresh=0,   # exact vendor-call log
    )
    try:
        async with running(settings, with_web=True, with_worker=True) as services:
            yield services, f"http://127.0.0.1:{services.port}/webhooks/smartlead"
    finally:
        await delete_prefix(amqp_url, Names(prefix), set(RETRY_DELAYS))


async def test_bounce_spike_pauses_exactly_once_and_redelivery_changes_nothing(bot, sim) -> None:
    services, url = bot
    assert services.worker is not None and services.store is not None
    bodies = _spike(501, sends=100, bounces=4) + _spike(502, sends=100, bounces=2)
    async with aiohttp.ClientSession() as session:
        assert set(await _post(session, url, bodies)) == {202}
        async with asyncio.timeout(30):
            await services.worker.wait_handled(len(bodies))
        pauses = [c for c in sim.calls if c.method == "POST"]
        assert [(c.path, c.body) for c in pauses] == [("/campaigns/501/status", {"status": "PAUSED"})]
        assert sim.status_of("smartlead:501") == "PAUSED" and sim.status_of("smartlead:502") == "ACTIVE"

        calls_before, audit_before = list(sim.calls), await services.store.audit()
        assert set(await _post(session, url, bodies)) == {202}           # the vendor retries everything
        async with asyncio.timeout(30):
            await services.worker.wait_handled(len(bodies), outcome="duplicate")
    assert sim.calls == calls_before
    assert await services.store.audit() == audit_before

    decision = next(r for r in audit_before if r.kind == "decision" and r.action == "pause")
    assert decision.campaign == "smartlead:501" and decision.rule == "bounce-guard"
    assert (decision.inputs["numerator"], decision.inputs["denominator"]) == (3, 100)
    assert decision.inputs["threshold"] == {"gte": 0.03}
    action = next(r for r in audit_before if r.kind == "action")
    assert (action.action, action.outcome) == ("pause", "paused")


async def test_below_threshold_nothing_is_paused(bot, sim) -> None:
    services, url = bot
    assert services.worker is not None and services.store is not None
    bodies = _spike(501, sends=200, bounces=5)                         # 2.5 % < 3 %
    async with aiohttp.ClientSession() as session:
        assert set(await _post(session, url, bodies)) == {202}
    async with asyncio.timeout(30):
        await services.worker.wait_handled(len(bodies))
    assert [c for c in sim.calls if c.method == "POST"] == []
    # over the bounce guard's warning (2%), under its pause: one warning, nothing else
    assert [(r.campaign, r.action, r.outcome) for r in await services.store.audit()] == [
        ("smartlead:501", "notify", "warned")]


async def test_forged_webhook_is_refused_and_nothing_reaches_the_worker(bot, sim) -> None:
    services, url = bot
    assert services.worker is not None
    forged = _webhook("EMAIL_BOUNCE", 501, 1)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=forged, headers={"X-Smartlead-Signature": "sha256=" + "0" * 64}) as resp:
            assert resp.status == 401
            assert "signature" in (await resp.json())["error"].lower()
        async with session.post(url, data=forged) as resp:
            assert resp.status == 401
        # a valid event afterwards is the first and only thing the worker sees
        assert await _post(session, url, [_webhook("EMAIL_SENT", 501, 1)]) == [202]
    async with asyncio.timeout(30):
        await services.worker.wait_handled(1)
    assert services.worker.handled.total() == 1


async def test_poison_message_on_the_queue_is_dead_lettered_and_the_worker_keeps_going(bot, sim) -> None:
    services, url = bot
    assert services.worker is not None
    await services.broker.publish(b"{not json", message_id="poison-1", routing_key="smartlead.email.sent")
    async with aiohttp.ClientSession() as session:
        assert await _post(session, url, [_webhook("EMAIL_SENT", 501, 7)]) == [202]
    async with asyncio.timeout(30):
        await services.worker.wait_handled(2)
    assert services.worker.handled["dead"] == 1 and services.worker.handled["ack"] == 1
    dead = await services.broker.dead_letters(10)
    assert len(dead) == 1
    delivery, reason = dead[0]
    assert delivery.message_id == "poison-1" and reason.startswith("invalid event:")
