"""Decisions under concurrency and drift on a real RabbitMQ, with the vendor simulator holding calls in flight:

- a firing alert that arrives while a resume is in flight pauses the campaign again right after it;
- a resolution that arrives while a pause is in flight resumes it right after (no paused-for-good);
- a resume waiting out a 429 is withdrawn unsent when an alert fires meanwhile (the write's guard);
- a Leadterra campaign a person had paused before an alert is never claimed, so never resumed;
- a Smartlead resume-then-pause in the UI between two reads makes the pause a person's: never resumed.
"""

from __future__ import annotations

import asyncio
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
from bot.state.base import active
from bot.testing import DEFAULT_KEYS, VendorSimulator
from tests.conftest import REPO
from tests.integration.conftest import delete_prefix

pytestmark = pytest.mark.integration

TOKEN = "it-alert-token"
RETRY_DELAYS = (0.05, 0.1)


def _notification(status: str, fingerprint: str, campaign: str) -> bytes:
    alert = {"status": status, "labels": {"alertname": "DomainBlacklisted", "campaign": campaign},
             "annotations": {"summary": "listed on a blocklist"}, "startsAt": "2026-11-30T10:00:00Z",
             "endsAt": "2026-11-30T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint}
    return json.dumps({"version": "4", "groupKey": f"{{}}:{{fp=\"{fingerprint}\"}}", "truncatedAlerts": 0,
                       "status": status, "receiver": "campaign-guard", "groupLabels": {}, "commonLabels": {},
                       "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": [alert]}).encode()


class Bot:
    def __init__(self, services: Services, url: str, sim: VendorSimulator) -> None:
        self.services, self.url, self.sim = services, url, sim
        self.posted = 0

    async def alert(self, status: str, fingerprint: str, campaign: str) -> None:
        async with aiohttp.ClientSession() as session, session.post(
                self.url, data=_notification(status, fingerprint, campaign),
                headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 202, await resp.text()
        self.posted += 1

    async def settled(self) -> None:
        assert self.services.worker is not None
        async with asyncio.timeout(30):
            await self.services.worker.wait_handled(self.posted)

    async def holds(self, campaign: str) -> list[str]:
        assert self.services.store is not None
        async with self.services.store.transaction() as tx:
            return [h.owner for h in active(await tx.holds(campaign))]

    async def until_held(self, campaign: str, owner: str, *, held: bool = True) -> None:
        """Wait (bounded) until the worker committed `owner`'s hold (or its removal); its handler then waits
        for the campaign's lock, held by the call in flight. The store has no change feed to await, so this
        looks at it again every 10 ms: a wait for the condition itself, never a guess at a duration."""
        async with asyncio.timeout(30):
            while (owner in await self.holds(campaign)) is not held:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    def writes(self, campaign_id: str) -> list[Any]:
        return [c.body or c.path.rpartition("/")[2] for c in self.sim.calls
                if c.method == "POST" and f"/{campaign_id}/" in c.path]

    async def outcomes(self, campaign: str) -> list[tuple[str, str]]:
        assert self.services.store is not None
        return [(r.action, r.outcome) for r in await self.services.store.audit(campaign=campaign) if r.kind == "action"]


@pytest.fixture
def sim() -> VendorSimulator:
    simulator = VendorSimulator()
    simulator.add_campaign("smartlead:601", "ACTIVE")
    simulator.add_campaign("leadterra:camp_61", "paused")          # a person paused it long ago
    return simulator


@pytest.fixture
async def bot(amqp_url: str, prefix: str, sim: VendorSimulator, aiohttp_server: Any,
              tmp_path: Path) -> AsyncIterator[Bot]:
    server = await aiohttp_server(sim.app)
    urls = sim.base_urls(str(server.make_url("")))
    settings = Settings(
        broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        rules_dir=REPO / "rules", http_port=0, retry_delays=RETRY_DELAYS, prefetch=8, inventory_refresh=0,
        alertmanager_token=SecretStr(TOKEN), reconcile_seconds=0,
        smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]), smartlead_base_url=urls["smartlead"],
        leadterra_api_key=SecretStr(DEFAULT_KEYS["leadterra"]), leadterra_base_url=urls["leadterra"],
    )
    try:
        async with running(settings, with_web=True, with_worker=True) as services:
            yield Bot(services, f"http://127.0.0.1:{services.port}/webhooks/alertmanager", sim)
    finally:
        await delete_prefix(amqp_url, Names(prefix), set(RETRY_DELAYS))


async def test_a_firing_alert_during_an_inflight_resume_pauses_the_campaign_again(bot: Bot, sim) -> None:
    await bot.alert("firing", "fa", "smartlead:601")
    await bot.settled()
    assert sim.status_of("smartlead:601") == "PAUSED"

    sim.inject("smartlead", "hold", method="POST")                  # the resume waits in flight
    await bot.alert("resolved", "fa", "smartlead:601")
    async with asyncio.timeout(30):
        await sim.wait_until(lambda: sim.held)
    await bot.alert("firing", "fb", "smartlead:601")                 # another alert, while the resume flies
    await bot.until_held("smartlead:601", "alert:fb")
    sim.release_hangs()
    await bot.settled()

    assert bot.writes("601") == [{"status": "PAUSED"}, {"status": "START"}, {"status": "PAUSED"}]
    assert sim.status_of("smartlead:601") == "PAUSED"
    assert await bot.holds("smartlead:601") == ["alert:fb"]
    assert await bot.outcomes("smartlead:601") == [("pause", "paused"), ("resume", "resumed"), ("pause", "paused")]


async def test_a_resume_waiting_out_a_429_is_withdrawn_when_an_alert_fires_meanwhile(bot: Bot, sim) -> None:
    await bot.alert("firing", "fa", "smartlead:601")
    await bot.settled()
    # the resume's POST is answered 429 with Retry-After 5 s: the client waits, then asks its guard
    sim.inject("smartlead", "rate_limit", method="POST", retry_after=5)
    await bot.alert("resolved", "fa", "smartlead:601")
    async with asyncio.timeout(30):
        await sim.wait_until(lambda: any(c.status == 429 for c in sim.calls))
    await bot.alert("firing", "fb", "smartlead:601")
    await bot.until_held("smartlead:601", "alert:fb")
    await bot.settled()

    assert bot.writes("601") == [{"status": "PAUSED"}, {"status": "START"}]      # the 429'd one, not resent
    assert sim.status_of("smartlead:601") == "PAUSED"
    assert await bot.holds("smartlead:601") == ["alert:fb"]
    assert ("resume", "withdrawn") in await bot.outcomes("smartlead:601")
    assert bot.services.store is not None
    async with bot.services.store.transaction() as tx:
        record = await tx.campaign("smartlead:601")
    assert record.bot_paused and record.pending is None         # still campaign-guard's own pause


async def test_a_resolution_during_an_inflight_pause_resumes_the_campaign(bot: Bot, sim) -> None:
    sim.inject("smartlead", "hold", method="POST")                  # the pause waits in flight
    await bot.alert("firing", "fa", "smartlead:601")
    async with asyncio.timeout(30):
        await sim.wait_until(lambda: sim.held)
    await bot.alert("resolved", "fa", "smartlead:601")
    await bot.until_held("smartlead:601", "alert:fa", held=False)
    sim.release_hangs()
    await bot.settled()

    assert bot.writes("601") == [{"status": "PAUSED"}, {"status": "START"}]
    assert sim.status_of("smartlead:601") == "ACTIVE"
    assert await bot.holds("smartlead:601") == []
    assert bot.services.store is not None
    async with bot.services.store.transaction() as tx:
        record = await tx.campaign("smartlead:601")
    assert not record.bot_paused and record.pending is None


async def test_a_leadterra_campaign_a_person_paused_is_never_claimed_nor_resumed(bot: Bot, sim) -> None:
    await bot.alert("firing", "fa", "leadterra:camp_61")
    await bot.settled()
    # the pause is sent (Leadterra cannot be read first); its answer keeps the person's old pausedAt
    assert bot.writes("camp_61") == ["pause"]
    assert await bot.holds("leadterra:camp_61") == ["alert:fa"]
    assert await bot.outcomes("leadterra:camp_61") == [("pause", "unproven")]
    assert bot.services.store is not None
    row = next(r for r in await bot.services.store.audit(campaign="leadterra:camp_61") if r.kind == "action")
    assert "never resume it automatically" in row.detail and "pausedAt" in row.detail

    await bot.alert("resolved", "fa", "leadterra:camp_61")
    await bot.settled()
    assert bot.writes("camp_61") == ["pause"]                        # no start, ever
    assert sim.status_of("leadterra:camp_61") == "paused"


async def test_a_resume_then_pause_in_the_smartlead_ui_makes_the_pause_a_persons(bot: Bot, sim) -> None:
    await bot.alert("firing", "fa", "smartlead:601")
    await bot.settled()
    assert sim.status_of("smartlead:601") == "PAUSED"
    sim.ui("smartlead:601", "resume")                                # no webhook for either step
    sim.ui("smartlead:601", "pause")

    assert bot.services.worker is not None
    assert await bot.services.worker.watch() == 1                    # the drift watch's read
    assert ("pause", "drift") in await bot.outcomes("smartlead:601")

    await bot.alert("resolved", "fa", "smartlead:601")
    await bot.settled()
    assert bot.writes("601") == [{"status": "PAUSED"}]               # never resumed
    assert sim.status_of("smartlead:601") == "PAUSED"
