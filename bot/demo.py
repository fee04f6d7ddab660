"""`campaign-guard demo`: simulator + bot in one process, bounce spikes played through the vendors' webhooks
(signed Smartlead ones, token-authenticated Instantly ones)."""

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
_INSTANTLY_TOKEN = "demo-instantly-webhook-token"
_INSTANTLY = "instantly:6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
#: (campaign, status, sends, bounces, what the reader should expect)
_STORY = [
    ("smartlead:1001", "ACTIVE", 100, 4, "bounce spike: 3 bounces in 100 sends crosses 3% -> paused once"),
    ("smartlead:1002", "ACTIVE", 100, 1, "healthy: 1% bounces -> left alone"),
    ("smartlead:1003", "PAUSED", 100, 5, "paused by a person earlier -> hold recorded, never claimed"),
    (_INSTANTLY, "active", 100, 4, "Instantly bounce spike -> paused once, proven by a read"),
]
_WIDTH = max(len(ref) for ref, *_ in _STORY)


def _webhook(event_type: str, campaign_id: int, n: int) -> dict[str, Any]:
    """A Smartlead webhook (format A, flat, `event_type`)."""
    return {
        "event_type": event_type, "campaign_id": campaign_id, "campaign_name": f"Demo {campaign_id}",
        "from_email": "sender@outreach-demo.example", "to_email": f"lead{n}@prospect-demo.example",
        "sequence_number": 1, "message_id": f"<demo-{campaign_id}-{n}@outreach-demo.example>",
        "time_sent": "2026-11-23T09:00:00Z",
    }


def _instantly_webhook(event_type: str, campaign_id: str, n: int) -> dict[str, Any]:
    """An Instantly webhook: one flat object, no event id (docs/vendors.md §4)."""
    return {
        "timestamp": f"2026-11-23T09:{n // 60:02d}:{n % 60:02d}.000Z", "event_type": event_type,
        "workspace": "8c1d2e3f-4a5b-4c6d-9e7f-0a1b2c3d4e5f", "campaign_id": campaign_id,
        "campaign_name": "Demo Instantly", "lead_email": f"lead{n}@prospect-demo.example",
        "email_account": "sender@outreach-demo.example", "email_id": f"demo-{event_type}-{n}",
    }


async def _post_all(base: str, bodies: list[tuple[str, bytes]]) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as session:
        for vendor, body in bodies:
            if vendor == "smartlead":
                headers = {"X-Smartlead-Signature": "sha256=" + hmac.new(_SECRET.encode(), body,
                                                                            hashlib.sha256).hexdigest()}
            else:
                headers = {"X-Campaign-Guard-Token": _INSTANTLY_TOKEN}
            async with session.post(f"{base}/webhooks/{vendor}", data=body,
                                    headers={"Content-Type": "application/json", **headers}) as resp:
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
        echo(f"  {ref:<{_WIDTH}} {sim.status_of(ref):<8} ({story})")


async def run_demo(settings: Settings, *, echo: Callable[[str], None] = print) -> int:
    """Play the story; return 0 when the bot did exactly what the story expects."""
    configure_logging(json=False, level="warning", cache=False)   # tests capture logs after it
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
                "instantly_api_key": SecretStr(DEFAULT_KEYS["instantly"]),
                "instantly_base_url": sim.base_urls(sim_root)["instantly"],
                "instantly_webhook_secret": SecretStr(_INSTANTLY_TOKEN),
                "broker_prefix": f"campaign-guard-demo-{int(time.time())}",
                "inventory_refresh": 0,         # the story is about webhooks: no inventory reads
            })
            async with running(demo, with_web=True, with_worker=True) as services:
                base = f"http://127.0.0.1:{services.port}"
                echo(f"campaign-guard demo\n  simulator  {sim_root}\n  bot        http://127.0.0.1:{services.port}"
                     f"  (broker {'memory://' if demo.uses_memory_broker else 'RabbitMQ'}, rules {demo.rules_dir})")
                bodies: list[tuple[str, bytes]] = []
                for ref, _, sends, bounces, _ in _STORY:
                    vendor, _, campaign_id = ref.partition(":")
                    for kind, count in (("sent", sends), ("bounced", bounces)):
                        for n in range(count):
                            body = (_webhook("EMAIL_SENT" if kind == "sent" else "EMAIL_BOUNCE", int(campaign_id), n)
                                    if vendor == "smartlead" else _instantly_webhook(f"email_{kind}", campaign_id, n))
                            bodies.append((vendor, json.dumps(body).encode()))
                echo(f"\nPlaying {len(bodies)} Smartlead (signed) and Instantly (token) webhooks, each delivered "
                     "twice (vendors retry)...")
                statuses = await _post_all(base, bodies + bodies)
                echo(f"  answers: {dict(sorted({s: statuses.count(s) for s in statuses}.items()))}")
                recorded = await _wait_recorded(services, len(bodies))
                echo(f"  distinct events recorded: {recorded} (duplicates dropped: {len(statuses) - recorded})")
                _print_story(echo, sim, services)
                assert services.store is not None
                echo("\nWhat campaign-guard decided and did, and why (campaign-guard audit):")
                for row in await services.store.audit(limit=50):
                    numbers = (f" [{row.inputs['numerator']}/{row.inputs['denominator']}"
                               f" {row.inputs['threshold']}]" if "numerator" in row.inputs else "")
                    echo(f"  {row.campaign:<{_WIDTH}} {row.kind:<8} {row.action:<6} {row.outcome:<12} {row.detail}{numbers}")
        pauses = [(c.vendor, c.path) for c in sim.calls if c.method == "POST"]
        ok = (sorted(pauses) == [("instantly", f"/campaigns/{_INSTANTLY.partition(':')[2]}/pause"),
                                 ("smartlead", "/campaigns/1001/status")]
              and sim.status_of("smartlead:1001") == "PAUSED" and sim.status_of("smartlead:1002") == "ACTIVE"
              and sim.status_of("smartlead:1003") == "PAUSED" and sim.status_of(_INSTANTLY) == "2")
        echo("\nresult: " + ("as expected: one pause each for smartlead:1001 and the Instantly campaign, nothing else"
                             if ok else "UNEXPECTED"))
        return 0 if ok else 1
    finally:
        await sim_runner.cleanup()
