"""End to end: a campaign known only from Smartlead's API is paused when one of its senders disconnects.

The bot starts with an empty state, reads `GET /campaigns/` and each campaign's email accounts from the
vendor simulator in the background, then receives one signed `email.account.disconnected` webhook (no
campaign in it) and the `sender-disconnected` rule (scope: sender_account) pauses every campaign that
rotates that account. Runs on the embedded memory broker, and on RabbitMQ when one is available.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
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

SECRET = "inventory-smartlead-webhook-secret"
RETRY_DELAYS = (0.05, 0.1)
DISCONNECTED = (REPO / "tests" / "payloads" / "smartlead_c_account_disconnected.json").read_bytes()  # alex@…


@pytest.fixture
def sim() -> VendorSimulator:
    simulator = VendorSimulator()
    simulator.add_campaign("smartlead:801", "ACTIVE", accounts=["Alex@Outreach-Example.com", "kim@outreach-example.com"])
    simulator.add_campaign("smartlead:802", "ACTIVE", accounts=["kim@outreach-example.com"])
    simulator.add_campaign("smartlead:803", "ARCHIVED", accounts=["alex@outreach-example.com"])
    simulator.add_campaign("smartlead:804", "ACTIVE", accounts=["alex@outreach-example.com"])
    return simulator


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.integration)])
async def bot(request: pytest.FixtureRequest, sim: VendorSimulator, aiohttp_server: Any,
              tmp_path: Path) -> AsyncIterator[tuple[Services, str]]:
    server = await aiohttp_server(sim.app)
    broker: dict[str, Any] = {}
    if request.param == "amqp":
        amqp_url, prefix = request.getfixturevalue("amqp_url"), request.getfixturevalue("prefix")
        broker = {"broker_url": SecretStr(amqp_url), "broker_prefix": prefix}
    settings = Settings(
        state_url=f"sqlite:///{tmp_path / 'state.db'}", rules_dir=REPO / "rules", http_port=0,
        retry_delays=RETRY_DELAYS, smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]),
        smartlead_base_url=sim.base_urls(str(server.make_url("")))["smartlead"],
        smartlead_webhook_secret=SecretStr(SECRET), **broker,
    )
    try:
        async with running(settings, with_web=True, with_worker=True) as services:
            yield services, f"http://127.0.0.1:{services.port}/webhooks/smartlead"
    finally:
        if broker:
            await delete_prefix(broker["broker_url"].get_secret_value(), Names(broker["broker_prefix"]),
                                set(RETRY_DELAYS))


async def test_a_sender_scoped_rule_pauses_campaigns_learned_only_from_the_api(bot, sim) -> None:
    services, url = bot
    assert services.worker is not None and services.store is not None and services.inventory_refresher is not None
    async with asyncio.timeout(20):
        await services.inventory_refresher.wait_rounds(1)
    assert services.worker.handled.total() == 0                       # no event taught it anything
    assert sorted(await services.store.inventory()) == [
        ("smartlead:801", "alex@outreach-example.com"), ("smartlead:801", "kim@outreach-example.com"),
        ("smartlead:802", "kim@outreach-example.com"), ("smartlead:804", "alex@outreach-example.com"),
    ]

    signature = "sha256=" + hmac.new(SECRET.encode(), DISCONNECTED, hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession() as session, session.post(
        url, data=DISCONNECTED, headers={"X-Smartlead-Signature": signature}
    ) as resp:
        assert resp.status == 202
    async with asyncio.timeout(20):
        await services.worker.wait_handled(1)
        await sim.wait_for_status("smartlead:801", "PAUSED")
        await sim.wait_for_status("smartlead:804", "PAUSED")

    posts = sorted(c.path for c in sim.calls if c.method == "POST")
    assert posts == ["/campaigns/801/status", "/campaigns/804/status"]
    assert sim.status_of("smartlead:802") == "ACTIVE" and sim.status_of("smartlead:803") == "ARCHIVED"
    decisions = [r for r in await services.store.audit() if r.kind == "decision"]
    assert {(r.campaign, r.rule) for r in decisions} == {("smartlead:801", "sender-disconnected"),
                                                         ("smartlead:804", "sender-disconnected")}
    assert all("alex@outreach-example.com disconnected" in r.detail for r in decisions)


async def test_zero_disables_the_refresh(sim: VendorSimulator, tmp_path: Path) -> None:
    settings = Settings(state_url=f"sqlite:///{tmp_path / 'state.db'}", rules_dir=REPO / "rules",
                        smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]), inventory_refresh=0)
    async with running(settings, with_web=False, with_worker=True) as services:
        assert services.inventory_refresher is None
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "inventory"]
