"""No secret leaks: the main scenarios run with distinctive fake credentials (`LEAKCANARY`, tests/hostile/canary.py),
and none of them may appear in a log line (structlog after redaction, stdout/stderr, stdlib logging), the
state database (audit, events, holds, Slack outbox), a dead-lettered message (body, headers, id), an HTTP
answer of the app, or a message posted to Slack.

Scenarios, on a real RabbitMQ with web and worker running and the vendor simulator: a signed Smartlead
bounce spike paused end to end; pauses on Leadterra and Inbox; vendor errors (401, 404, 429, 503 until
the retries are exhausted, timeouts); Leadterra/Inbox/Alertmanager/Grafana/legacy-Smartlead webhooks;
webhook rejections (wrong token or signature, bad JSON, oversized); a poison message; Slack commands and
a button click. The broker password is a canary too when a RabbitMQ user can be made with rabbitmqctl.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from yarl import URL

from bot.broker import make_broker
from bot.broker.topology import Names
from bot.config import Settings
from bot.errors import BrokerUnavailable
from bot.service import Services, running
from bot.testing import VendorSimulator
from tests.conftest import REPO
from tests.hostile.canary import SECRETS, db_dump, dead_letter_texts, find_leaks, recording
from tests.hostile.canary import amqp_user as make_amqp_user
from tests.integration.conftest import delete_prefix
from tests.slack.fake_slack import FakeSlack, click_body, command_body, slack_headers

pytestmark = pytest.mark.integration

PAYLOADS = REPO / "tests" / "payloads"
VENDORS = ("smartlead", "leadterra", "inbox", "instantly", "lemlist")
INSTANTLY = "instantly:0c0ffee0-0000-4000-8000-000000000001"
INSTANTLY_401 = "instantly:0c0ffee0-0000-4000-8000-000000000002"
RETRY_DELAYS = (0.05, 0.1)
T0 = "2026-11-23T09:00:00Z"
ADMIN = "UADMIN"


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Run:
    services: Services
    sim: VendorSimulator
    slack: FakeSlack
    web: str
    slack_url: str
    http: aiohttp.ClientSession
    answers: list[str] = field(default_factory=list)

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None,
                   params: dict[str, str] | None = None) -> int:
        data = io.BytesIO(body) if len(body) > 1024 * 1024 else body   # aiohttp warns about large raw bytes
        async with self.http.post(f"{self.web}{path}", data=data, headers=headers or {}, params=params) as resp:
            self.answers.append(f"{path} {resp.status} {dict(resp.headers)!r} {await resp.text()}")
            return resp.status

    async def token(self, path: str, body: bytes, token: str = SECRETS["webhook_token"]) -> int:
        return await self.post(path, body, {"Authorization": f"Bearer {token}"})

    async def metrics(self, campaign: str) -> int:
        event = {"id": f"floor-{campaign}", "type": "campaign.metrics", "campaign": campaign, "occurred_at": T0,
                 "data": {"reply_rate": 0.001, "sent": 500}}
        return await self.token("/webhooks/events", json.dumps(event).encode())


@pytest.fixture
async def run(amqp_url: str, prefix: str, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Run]:
    sim = VendorSimulator(keys={v: SECRETS[f"{v}_api_key"] for v in VENDORS})
    for ref in ("smartlead:3001", "smartlead:3002", "smartlead:3004", "smartlead:3005", "smartlead:3006",
                "smartlead:3007", "leadterra:camp_leak1", "leadterra:camp_leak2", "inbox:leakinbox1",
                INSTANTLY, INSTANTLY_401, "lemlist:cam_leak1", "lemlist:cam_leak2"):
        sim.add_campaign(ref, "active")
    sim_root = str((await aiohttp_server(sim.app)).make_url(""))
    slack = FakeSlack()
    slack_url = str((await aiohttp_server(slack.app)).make_url("")).rstrip("/")
    bases = sim.base_urls(sim_root)
    with make_amqp_user(amqp_url) as (broker_url, _):
        settings = Settings(
            broker_url=SecretStr(broker_url), broker_prefix=prefix, state_url=f"sqlite:///{tmp_path / 'state.db'}",
            rules_dir=REPO / "rules", http_port=0, retry_delays=RETRY_DELAYS, prefetch=8, vendor_max_attempts=2,
            vendor_timeout=0.5, breaker_limit=1000, inventory_refresh=0, slack_channel="C-GUARD",
            slack_api_url=f"{slack_url}/api/", slack_pause_users=ADMIN, slack_resume_users=ADMIN,
            slack_approve_users=ADMIN, slack_retry_delays=(0.02, 0.05), log_level="debug",
            smartlead_base_url=bases["smartlead"], leadterra_base_url=bases["leadterra"],
            inbox_base_url=bases["inbox"], instantly_base_url=bases["instantly"], lemlist_base_url=bases["lemlist"],
            **{name: SecretStr(value) for name, value in SECRETS.items()},
        )
        try:
            async with running(settings, with_web=True, with_worker=True) as services, \
                    aiohttp.ClientSession() as http:
                yield Run(services, sim, slack, f"http://127.0.0.1:{services.port}", slack_url, http)
                sim.release_hangs()
        finally:
            await delete_prefix(amqp_url, Names(prefix), set(RETRY_DELAYS))


async def _smartlead_spike(run: Run, campaign_id: int) -> None:
    secret = SECRETS["smartlead_webhook_secret"]
    for n in range(52):
        body = json.dumps({"event_type": "EMAIL_BOUNCE" if n < 2 else "EMAIL_SENT", "campaign_id": campaign_id,
                           "to_email": f"lead{n}@example.org", "message_id": f"<canary-{n}@example.com>",
                           "time_sent": T0}).encode()
        signature = {"X-Smartlead-Signature": f"sha256={_hex(secret, body)}"}
        assert await run.post("/webhooks/smartlead", body, signature) == 202


async def _webhooks(run: Run) -> None:
    lt = (PAYLOADS / "leadterra_message_sent.json").read_bytes()
    assert await run.post("/webhooks/leadterra", lt,
                          {"X-Leadterra-Signature": _hex(SECRETS["leadterra_webhook_secret"], lt)}) == 202
    assert await run.token("/webhooks/inbox", (PAYLOADS / "inbox_campaign_started.json").read_bytes()) == 202
    am = (PAYLOADS / "alertmanager_firing.json").read_bytes()
    assert await run.token("/webhooks/alertmanager", am, SECRETS["alertmanager_token"]) == 202
    gf = (PAYLOADS / "grafana_firing.json").read_bytes()
    assert await run.post("/webhooks/grafana", gf,
                          {"X-Grafana-Alerting-Signature": _hex(SECRETS["grafana_webhook_secret"], gf)}) == 202
    legacy = json.loads((PAYLOADS / "smartlead_legacy_reply.json").read_bytes())
    legacy["secret_key"] = SECRETS["smartlead_webhook_secret"]         # the legacy body carries the secret
    assert await run.post("/webhooks/smartlead", json.dumps(legacy).encode()) == 202


async def _rejections(run: Run) -> None:
    sent = (PAYLOADS / "smartlead_a_email_sent.json").read_bytes()
    token = SECRETS["webhook_token"]
    refused = [
        await run.post("/webhooks/smartlead", sent, {"X-Smartlead-Signature": "sha256=" + "0" * 64}),
        await run.post("/webhooks/smartlead", sent, {"Authorization": "Bearer wrong-token"}),
        await run.post("/webhooks/leadterra", sent, {"X-Leadterra-Signature": "nope"}),
        await run.post("/webhooks/grafana", sent, {"X-Grafana-Alerting-Signature": "00"}),
        await run.post("/webhooks/alertmanager", sent, {"Authorization": f"Bearer {token}x"}),
        await run.post("/slack/commands", b"text=pause+smartlead%3A1", slack_headers(b"other", "x")),
        await run.token("/webhooks/events", b"{not json"),
        await run.token("/webhooks/events", json.dumps({"type": "email.sent", "source": "smartlead"}).encode()),
        await run.post("/webhooks/inbox", b'{"id": 1}', params={"token": token}),
        await run.token("/webhooks/events", b"[" + b" " * 1_100_000 + b"]"),
        await run.post("/webhooks/smartlead", json.dumps({"event_type": "EMAIL_SENT", "campaign_id": "x/../1",
                                                          "secret_key": SECRETS["smartlead_webhook_secret"]}).encode()),
        await run.post("/webhooks/smartlead", json.dumps({"event_type": "EMAIL_SENT", "campaign_id": 1,
                                                          "secret_key": "wrong-secret"}).encode()),
    ]
    assert all(400 <= status < 500 for status in refused), refused


async def _slack(run: Run) -> None:
    signing = SECRETS["slack_signing_secret"]
    for n, text in enumerate(["pause smartlead:3006 canary check", "status smartlead:3002", "history smartlead:3005",
                              "list held", "resume smartlead:3003"]):
        body = command_body(text, user=ADMIN, response_url=f"{run.slack_url}/response/r{n}", trigger=f"9.{n}")
        assert await run.post("/slack/commands", body, slack_headers(body, signing)) == 200
    click = click_body("resume", {"campaign": "smartlead:3006"}, user=ADMIN,
                       response_url=f"{run.slack_url}/response/c1", trigger="9.c1")
    assert await run.post("/slack/interactions", click, slack_headers(click, signing)) == 200


async def _unreachable_broker(url: str) -> list[str]:
    """What a broker that cannot be reached says (its URL holds the password): error, repr, traceback."""
    broken = str(URL(url).with_port(1))
    try:
        await make_broker(Settings(broker_url=SecretStr(broken), broker_prefix="canary")).start()
    except BrokerUnavailable as exc:
        return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    raise AssertionError("a broker on port 1 answered")


async def _settled(run: Run, *, dead: int) -> None:
    """Until at least `dead` messages were dead-lettered and the worker has been idle for a second."""
    worker = run.services.worker
    assert worker is not None
    async with asyncio.timeout(60):
        await worker.wait_handled(dead, outcome="dead")
        last = -1
        while worker.handled.total() != last:
            last = worker.handled.total()
            await asyncio.sleep(1.0)


async def test_no_secret_leaks_anywhere(run: Run, amqp_url: str, prefix: str, tmp_path: Path,
                                        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    sim = run.sim
    sim.inject("smartlead", "error", status=401, forever=True, path="/campaigns/3002*")
    sim.inject("smartlead", "rate_limit", times=1, retry_after=0.1, path="/campaigns/3004*")
    sim.inject("smartlead", "error", status=503, forever=True, path="/campaigns/3005*")
    sim.inject("leadterra", "timeout", forever=True, delay=3.0, path="/campaigns/camp_leak2*")
    sim.inject("smartlead", "timeout", forever=True, delay=3.0, path="/campaigns/3007*")
    sim.inject("instantly", "error", status=401, forever=True, path=f"/campaigns/{INSTANTLY_401.partition(':')[2]}*")
    sim.inject("lemlist", "rate_limit", times=1, retry_after=0.1, path="/campaigns/cam_leak2*")
    run.slack.fail_api.extend([500, "invalid_auth"])               # Slack refuses the bot token, then recovers
    with recording() as recorder:
        await _smartlead_spike(run, 3001)
        for campaign in ("smartlead:3002", "smartlead:3003", "smartlead:3004", "smartlead:3005", "smartlead:3007",
                         "leadterra:camp_leak1", "leadterra:camp_leak2", "inbox:leakinbox1", INSTANTLY, INSTANTLY_401,
                         "lemlist:cam_leak1", "lemlist:cam_leak2"):
            assert await run.metrics(campaign) == 202
        await _webhooks(run)
        await _rejections(run)
        await run.services.broker.publish(b'{"poison": true', message_id="canary-poison", routing_key="events.x")
        await _slack(run)
        await sim.wait_until(lambda: all(sim.status_of(ref) in ("PAUSED", "paused") for ref in (
            "smartlead:3001", "smartlead:3004", "leadterra:camp_leak1", "inbox:leakinbox1", "lemlist:cam_leak1",
            "lemlist:cam_leak2")) and sim.status_of(INSTANTLY) == "2", timeout=30,
            what="the pauses")
        await _settled(run, dead=4)                   # poison, 503 until exhausted, timeouts until exhausted
        unreachable = await _unreachable_broker(run.services.settings.broker_url.get_secret_value())
        async with asyncio.timeout(20):
            await run.slack.wait_for(lambda s: len(s.replies()) >= 6)
        logged = list(recorder.lines)
    captured = capfd.readouterr()
    slack_texts = [json.dumps(r.body) for r in run.slack.received]
    assert all(r.authorization in ("", f"Bearer {SECRETS['slack_bot_token']}") for r in run.slack.received)
    places = {
        "structlog": logged, "stdout": [captured.out], "stderr": [captured.err], "stdlib logging": [caplog.text],
        "HTTP answers": run.answers, "posted to Slack": slack_texts, "broker errors": unreachable,
        "dead letters": await dead_letter_texts(amqp_url, Names(prefix).dead_queue),
        "state database": [db_dump(tmp_path / "state.db")],
    }
    assert len(places["dead letters"]) >= 4 and logged and places["state database"][0]
    assert find_leaks(places) == []
