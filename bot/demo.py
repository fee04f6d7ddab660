"""`campaign-guard demo`: simulator + bot in one process, a bounce spike played through signed webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.config import Settings
from bot.log import configure_logging
from bot.service import Services, running
from bot.testing import DEFAULT_KEYS, VendorSimulator

__all__ = ["run_demo"]

_SECRET = "demo-smartlead-webhook-secret"
#: (campaign, status in Smartlead's vocabulary, sends, bounces, what the reader should expect)
_STORY = [
    ("smartlead:1001", "ACTIVE", 100, 4, "bounce spike: 3 bounces in 100 sends crosses 3% -> paused once"),
    ("smartlead:1002", "ACTIVE", 100, 1, "healthy: 1% bounces -> left alone"),
    ("smartlead:1003", "PAUSED", 100, 5, "paused by a person earlier -> hold recorded, never claimed"),
]


def _webhook(event_type: str, campaign_id: int, n: int) -> dict[str, Any]:
    """A Smartlead webhook (format A, flat, `event_type`)."""
    return {
        "event_type": event_type, "campaign_id": campaign_id, "campaign_name": f"Demo {campaign_id}",
        "from_email": "sender@outreach-demo.example", "to_email": f"lead{n}@prospect-demo.example",
        "sequence_number": 1, "message_id": f"<demo-{campaign_id}-{n}@outreach-demo.example>",
        "time_sent": "2026-11-23T09:00:00Z",
    }


async def _post_all(url: str, bodies: list[bytes]) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as session:
        for body in bodies:
            signature = "sha256=" + hmac.new(_SECRET.encode(), body, hashlib.sha256).hexdigest()
            async with session.post(url, data=body, headers={
                "Content-Type": "application/json", "X-Smartlead-Signature": signature,
            }) as resp:
                statuses.append(resp.status)
    return statuses


async def _wait_recorded(services: Services, expected: int) -> int:
    """Poll the state store until `expected` distinct events are recorded (demo only; tests use events)."""
    assert services.store is not None
    deadline = time.monotonic() + 60.0
    while True:
        count = len([line async for line in services.store.events()])
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.05)


def _print_story(echo: Callable[[str], None], sim: VendorSimulator, services: Services) -> None:
    echo("\nVendor calls the bot made (the simulator's log):")
    for call in sim.calls:
        body = f" {json.dumps(call.body)}" if call.body else ""
        echo(f"  {call.vendor:<9} {call.method:<4} {call.path}{body} -> {call.status}")
    echo("\nFinal campaign statuses at the vendor:")
    for ref, _, _, _, story in _STORY:
        echo(f"  {ref:<16} {sim.status_of(ref):<8} ({story})")


async def run_demo(settings: Settings, *, echo: Callable[[str], None] = print) -> int:
    """Play the story; return 0 when the bot did exactly what the story expects."""
    configure_logging(json=False, level="warning")
    sim = VendorSimulator()
    for ref, status, *_ in _STORY:
        sim.add_campaign(ref, status)
    sim_runner = web.AppRunner(sim.app, access_log=None)
    await sim_runner.setup()
    await web.TCPSite(sim_runner, "127.0.0.1", 0).start()
    sim_root = f"http://127.0.0.1:{sim_runner.addresses[0][1]}"
    try:
        with tempfile.TemporaryDirectory(prefix="campaign-guard-demo-") as tmp:
            demo = settings.model_copy(update={
                "state_url": f"sqlite:///{Path(tmp) / 'state.db'}", "http_host": "127.0.0.1", "http_port": 0,
                "dry_run": False, "smartlead_api_key": SecretStr(DEFAULT_KEYS["smartlead"]),
                "smartlead_base_url": sim.base_urls(sim_root)["smartlead"],
                "smartlead_webhook_secret": SecretStr(_SECRET),
                "broker_prefix": f"campaign-guard-demo-{int(time.time())}",
                "inventory_refresh": 0,         # the story is about webhooks: no inventory reads
            })
            async with running(demo, with_web=True, with_worker=True) as services:
                url = f"http://127.0.0.1:{services.port}/webhooks/smartlead"
                echo(f"campaign-guard demo\n  simulator  {sim_root}\n  bot        http://127.0.0.1:{services.port}"
                     f"  (broker {'memory://' if demo.uses_memory_broker else 'RabbitMQ'}, rules {demo.rules_dir})")
                bodies: list[bytes] = []
                for ref, _, sends, bounces, _ in _STORY:
                    campaign_id = int(ref.split(":")[1])
                    bodies += [json.dumps(_webhook("EMAIL_SENT", campaign_id, n)).encode() for n in range(sends)]
                    bodies += [json.dumps(_webhook("EMAIL_BOUNCE", campaign_id, n)).encode() for n in range(bounces)]
                echo(f"\nPlaying {len(bodies)} signed Smartlead webhooks, each delivered twice (vendors retry)...")
                statuses = await _post_all(url, bodies + bodies)
                echo(f"  answers: {dict(sorted({s: statuses.count(s) for s in statuses}.items()))}")
                recorded = await _wait_recorded(services, len(bodies))
                echo(f"  distinct events recorded: {recorded} (duplicates dropped: {len(statuses) - recorded})")
                _print_story(echo, sim, services)
                assert services.store is not None
                echo("\nWhat campaign-guard decided and did, and why (campaign-guard audit):")
                for row in await services.store.audit(limit=50):
                    numbers = (f" [{row.inputs['numerator']}/{row.inputs['denominator']}"
                               f" {row.inputs['threshold']}]" if "numerator" in row.inputs else "")
                    echo(f"  {row.campaign:<16} {row.kind:<8} {row.action:<6} {row.outcome:<12} {row.detail}{numbers}")
        pauses = [c for c in sim.calls if c.method == "POST"]
        ok = (len(pauses) == 1 and sim.status_of("smartlead:1001") == "PAUSED"
              and sim.status_of("smartlead:1002") == "ACTIVE" and sim.status_of("smartlead:1003") == "PAUSED")
        echo("\nresult: " + ("as expected: one PAUSED call, for smartlead:1001 only" if ok else "UNEXPECTED"))
        return 0 if ok else 1
    finally:
        await sim_runner.cleanup()
