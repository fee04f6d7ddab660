"""Mailbox health by polling, end to end on RabbitMQ and the vendor simulator (1 s poll interval): a Smartlead
mailbox whose SMTP fails pauses the campaigns it sends for (the shipped `mailbox-health` rule, its hold time
cut to 3 s), leaves the other campaigns alone, and once it has been healthy past the hold time the sweep
releases them and campaign-guard resumes them. No webhook at all."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.testing import VendorSimulator
from bot.vendors.smartlead.sim_data import add_mailbox
from tests.conftest import REPO
from tests.integration.test_polling import bot

pytestmark = pytest.mark.integration

HOLD_SECONDS = 3


def _mailbox_rule() -> str:
    text = (REPO / "rules" / "mailbox-health.yaml").read_text()
    assert "after: 6h" in text
    return text.replace("after: 6h", f"after: {HOLD_SECONDS}s")


async def test_a_failing_mailbox_pauses_its_campaigns_and_they_resume_once_it_is_healthy_past_the_hold(
        amqp_url: str, prefix: str, aiohttp_server: Any, tmp_path: Path) -> None:
    sim = VendorSimulator()
    for ref in ("smartlead:701", "smartlead:702", "smartlead:703"):
        sim.add_campaign(ref, "ACTIVE", leads=100)
    add_mailbox(sim, "ana@sales.example", campaigns=["smartlead:701", "smartlead:702"], smtp_ok=False)
    add_mailbox(sim, "bo@sales.example", campaigns=["smartlead:703"])
    async with bot(amqp_url, prefix, sim, aiohttp_server, tmp_path, _mailbox_rule(),
                   inventory_refresh=30, sweep_seconds=0.5) as services:
        # the inventory learns who sends for what at start (GET /campaigns/{id}/email-accounts); the next poll's
        # account.health for ana pauses both of her campaigns
        await sim.wait_for_status("smartlead:701", "PAUSED", timeout=20)
        await sim.wait_for_status("smartlead:702", "PAUSED", timeout=20)
        assert sim.status_of("smartlead:703") == "ACTIVE"
        assert services.store is not None
        async with services.store.transaction() as tx:
            owners = {h.owner for h in await tx.holds("smartlead:701")}
        assert owners == {"rule:test-rule@ana@sales.example"}       # one hold, per mailbox

        loop = asyncio.get_running_loop()
        healthy_at = loop.time()
        add_mailbox(sim, "ana@sales.example", campaigns=["smartlead:701", "smartlead:702"], smtp_ok=True)
        await sim.wait_for_status("smartlead:701", "ACTIVE", timeout=30)
        await sim.wait_for_status("smartlead:702", "ACTIVE", timeout=30)
        took = loop.time() - healthy_at
    assert took >= HOLD_SECONDS                         # not before the mailbox was healthy for the hold time
    writes = sorted((c.path, c.body["status"]) for c in sim.calls if c.method == "POST")
    assert writes == sorted((f"/campaigns/{n}/status", status) for n in (701, 702) for status in ("PAUSED", "START"))
    print(f"\nresumed {took:.1f} s after the mailbox was healthy again (hold {HOLD_SECONDS} s, polls every 1 s)")
