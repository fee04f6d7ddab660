"""Alerts end to end: a REAL Alertmanager (and signed Grafana posts) → web → RabbitMQ → worker → vendor simulator.

Alertmanager runs as a private process whose webhook receiver is the bot's /webhooks/alertmanager with
bearer credentials; alerts are posted to its API (`POST /api/v2/alerts`) and resolved by posting them
again with `endsAt` in the past. Every wait is on a condition (simulator state, worker counters).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.broker.topology import Names
from bot.config import Settings
from bot.service import Services, running
from bot.testing import DEFAULT_KEYS, VendorSimulator
from bot.worker import Worker
from tests.conftest import REPO
from tests.integration.alertmanager import RealAlertmanager, alertmanager_binary
from tests.integration.conftest import delete_prefix
from tests.slack.fake_slack import FakeSlack, command_body, slack_headers

# generous: the first test may apt-get install prometheus-alertmanager; the tests themselves take seconds
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

__all__ = ["alertmanager_binary"]      # the fixture, imported to be found

TOKEN = "it-alertmanager-token"
GRAFANA_SECRET = "it-grafana-hmac-secret"
SIGNING = "it-slack-signing-secret"
RETRY_DELAYS = (0.05, 0.1)
WAIT = 20.0
_triggers = itertools.count(1)
INVENTORY = """
campaigns:
  smartlead:702: [ann@acme-mail.io]
  smartlead:703: [ben@acme-mail.io]
  smartlead:704: [cat@other.io]
""" + "".join(f"  smartlead:{n}: [s{n}@bulk.io]\n" for n in range(710, 716))


@dataclass
class Stack:
    services: Services
    sim: VendorSimulator
    slack: FakeSlack
    web: str
    slack_url: str
    http: aiohttp.ClientSession

    @property
    def worker(self) -> Worker:
        assert self.services.worker is not None
        return self.services.worker

    def writes(self, campaign_id: str | None = None) -> list[tuple[str, str]]:
        return [(c.path, json.dumps(c.body)) for c in self.sim.calls
                if c.method == "POST" and (campaign_id is None or f"/{campaign_id}/" in c.path)]

    async def until_handled(self, outcome: str, count: int) -> None:
        async with asyncio.timeout(WAIT):
            await self.worker.wait_handled(count, outcome=outcome)

    async def holds(self, campaign: str) -> list[str]:
        assert self.services.store is not None
        async with self.services.store.transaction() as tx:
            return sorted(h.owner for h in await tx.holds(campaign) if h.kind != "pending")

    async def slack_pause(self, text: str, user: str = "UOPS") -> str:
        """A person's `/guard pause ...`, signed as Slack signs it; returns the reply's text."""
        rid = f"r{next(_triggers)}"
        body = command_body(f"pause {text}", user=user, response_url=f"{self.slack_url}/response/{rid}",
                            trigger=f"9.{rid}")
        async with self.http.post(f"{self.web}/slack/commands", data=body, headers=slack_headers(body, SIGNING)) as r:
            assert r.status == 200, await r.text()
        async with asyncio.timeout(WAIT):
            await self.slack.wait_for(lambda s: bool(s.replies(rid)))
        return str(self.slack.replies(rid)[0].body["text"])


@pytest.fixture
async def stack(amqp_url: str, prefix: str, aiohttp_server: Any, tmp_path: Path,
                request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    sim = VendorSimulator()
    for n in (701, 702, 703, 704, *range(710, 716)):
        sim.add_campaign(f"smartlead:{n}", "ACTIVE")
    sim_server = await aiohttp_server(sim.app)
    slack = FakeSlack()
    slack_server = await aiohttp_server(slack.app)
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    settings = Settings(
        broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        rules_dir=REPO / "rules", http_port=0, retry_delays=RETRY_DELAYS, prefetch=8,
        smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]),
        smartlead_base_url=sim.base_urls(str(sim_server.make_url("")))["smartlead"],
        alertmanager_token=SecretStr(TOKEN), grafana_webhook_secret=SecretStr(GRAFANA_SECRET),
        slack_signing_secret=SecretStr(SIGNING), slack_pause_users="UOPS", slack_retry_delays=(0.02, 0.05),
        inventory_file=tmp_path / "inventory.yaml", inventory_refresh=0, **getattr(request, "param", {}),
    )
    try:
        async with running(settings, with_web=True, with_worker=True) as services, aiohttp.ClientSession() as http:
            yield Stack(services, sim, slack, f"http://127.0.0.1:{services.port}",
                        str(slack_server.make_url("")).rstrip("/"), http)
    finally:
        await delete_prefix(amqp_url, Names(prefix), set(RETRY_DELAYS))


@pytest.fixture
async def alertmanager(stack: Stack, alertmanager_binary: str, tmp_path: Path) -> AsyncIterator[RealAlertmanager]:
    manager = RealAlertmanager(alertmanager_binary, tmp_path / "alertmanager", f"{stack.web}/webhooks/alertmanager",
                               TOKEN)
    await manager.start()
    try:
        yield manager
    finally:
        manager.stop()


async def test_alerts_pause_their_campaigns_and_resume_only_what_nothing_else_holds(
    stack: Stack, alertmanager: RealAlertmanager
) -> None:
    sim, http = stack.sim, stack.http
    started = datetime.now(UTC) - timedelta(minutes=5)
    domain = {"alertname": "SendingDomainBlacklisted", "sender_domain": "acme-mail.io", "severity": "critical"}
    smtp = {"alertname": "MailboxSmtpFailures", "campaign": "smartlead:701, smartlead:702", "severity": "warning"}

    await alertmanager.fire(http, domain, starts_at=started)               # → 702, 703 (inventory)
    for ref in ("smartlead:702", "smartlead:703"):
        await sim.wait_for_status(ref, "PAUSED", timeout=WAIT)
    await alertmanager.fire(http, smtp, starts_at=started)                 # → 701, 702 (labels)
    await sim.wait_for_status("smartlead:701", "PAUSED", timeout=WAIT)
    both = await stack.holds("smartlead:702")
    assert len(both) == 2 and all(o.startswith("alert:") for o in both)    # one hold per alert fingerprint
    reply = await stack.slack_pause("smartlead:703 list under review")     # a person pauses 703 meanwhile
    assert "hold placed" in reply

    # Alertmanager repeats both notifications (repeat_interval): deduped, no second vendor call
    await stack.until_handled("duplicate", 2)
    assert sorted(stack.writes()) == [(f"/campaigns/{n}/status", '{"status": "PAUSED"}') for n in (701, 702, 703)]

    acks = stack.worker.handled["ack"]
    await alertmanager.resolve(http, domain, starts_at=started)            # 702 still has smtp, 703 a person
    await stack.until_handled("ack", acks + 1)
    assert await stack.holds("smartlead:703") == ["user:UOPS"]              # the domain alert's hold is gone
    [smtp_hold] = await stack.holds("smartlead:702")
    assert smtp_hold in both and await stack.holds("smartlead:701") == [smtp_hold]
    assert [w for w in stack.writes() if "START" in w[1]] == []

    await alertmanager.resolve(http, smtp, starts_at=started)              # the last alert on 701 and 702
    for ref in ("smartlead:701", "smartlead:702"):
        await sim.wait_for_status(ref, "ACTIVE", timeout=WAIT)
    await stack.until_handled("ack", acks + 2)
    assert sim.status_of("smartlead:703") == "PAUSED" and stack.writes("703") == [
        ("/campaigns/703/status", '{"status": "PAUSED"}')]
    assert sim.status_of("smartlead:704") == "ACTIVE" and stack.writes("704") == []
    assert len(stack.writes()) == 5                                        # 3 pauses, 2 resumes, nothing else
    audit = await stack.services.store.audit(campaign="smartlead:702")     # type: ignore[union-attr]
    assert {r.rule for r in audit if r.kind == "decision" and r.action == "pause"} == {"alert-pause"}


@pytest.mark.parametrize("stack", [{"breaker_limit": 3}], indirect=True)
async def test_a_vendor_wide_alert_pauses_only_n_and_parks_the_rest(
    stack: Stack, alertmanager: RealAlertmanager
) -> None:
    labels = {"alertname": "WorkspaceSpamRate", "vendor": "smartlead", "severity": "critical"}
    await alertmanager.fire(stack.http, labels, starts_at=datetime.now(UTC) - timedelta(minutes=1))
    await stack.until_handled("ack", 1)
    assert len(stack.writes()) == 3                                        # 9 smartlead campaigns in the inventory
    assert stack.services.store is not None
    async with stack.services.store.transaction() as tx:
        parked = await tx.pending()
    assert len(parked) == 6 and {p.hold.kind for p in parked} == {"alert"}
    assert sum(stack.sim.status_of(f"smartlead:{n}") == "PAUSED" for n in (702, 703, 704, *range(710, 716))) == 3


async def test_signed_grafana_alert_pauses_and_its_resolution_resumes(stack: Stack) -> None:
    fixture = json.loads((REPO / "tests" / "payloads" / "grafana_firing.json").read_text())
    for status in ("firing", "resolved"):
        fixture["alerts"][0]["status"] = fixture["status"] = status
        body = json.dumps(fixture).encode()
        ts = str(int(datetime.now(UTC).timestamp()))
        signature = hmac.new(GRAFANA_SECRET.encode(), f"{ts}:".encode() + body, hashlib.sha256).hexdigest()
        async with stack.http.post(f"{stack.web}/webhooks/grafana", data=body, headers={
                "X-Grafana-Alerting-Signature": signature, "X-Grafana-Alerting-Signature-Timestamp": ts}) as resp:
            assert resp.status == 202, await resp.text()
        for ref in ("smartlead:702", "smartlead:703"):                      # sender_domain acme-mail.io
            await stack.sim.wait_for_status(ref, "PAUSED" if status == "firing" else "ACTIVE", timeout=WAIT)
    assert len(stack.writes()) == 4 and stack.writes("704") == []
