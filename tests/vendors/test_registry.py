"""The vendor registry: a toy vendor defined here, and nowhere else, goes from a signed webhook through the
web intake, the broker and the worker to a pause at its (fake) API, and from a release to a resume.

Nothing outside this file knows the toy vendor: it is one `VendorSpec` registered for the test only
(`registry.registered`). Its settings block (`BOT_TOY_*`) comes from the spec (`settings_class`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from bot.config import Settings, settings_class
from bot.errors import PayloadError
from bot.events import VENDORS, CampaignRef, Event
from bot.service import running
from bot.sources.auth import AuthResult, WebhookRequest, equal, hmac_hex
from bot.sources.payload import campaign_ref, make_event, require_object, vendor_id
from bot.vendors import registry
from bot.vendors.base import CampaignStatus, Guard, Observation, WriteResult
from bot.vendors.http import RetryPolicy
from bot.vendors.spec import Setting, VendorConfig, VendorSpec

# ------------------------------------------------------------------ the toy vendor, whole

_STATUSES = {"on": CampaignStatus.ACTIVE, "off": CampaignStatus.PAUSED, "new": CampaignStatus.DRAFT}
_TYPES = {"breach": "campaign.bounce_threshold", "recovered": "campaign.metrics"}


def _normalize(payload: Any, received_at: datetime) -> list[Event]:
    """`{"id", "kind": breach|recovered, "campaign"}` → one event."""
    body = require_object(payload)
    kind, event_id = body.get("kind"), body.get("id")
    if kind not in _TYPES or not isinstance(event_id, str):
        raise PayloadError("expected {id, kind: breach|recovered, campaign}")
    return [make_event(event_id=vendor_id("toy", event_id), event_type=_TYPES[kind], source="toy",
                       occurred_at=received_at, campaign=campaign_ref("toy", body.get("campaign"), field="campaign"),
                       data={})]


def _authenticate(request: WebhookRequest, config: VendorConfig) -> AuthResult:
    """`X-Toy-Signature: <hex HMAC of the body>` keyed with BOT_TOY_WEBHOOK_SECRET; fails closed."""
    secret = config.secret("webhook_secret")
    if secret is None:
        return AuthResult.refused("no secret configured for toy (set BOT_TOY_WEBHOOK_SECRET)")
    given = request.headers.get("X-Toy-Signature", "")
    return AuthResult.passed("signature") if equal(given, hmac_hex(request.body, secret)) else (
        AuthResult.refused("invalid X-Toy-Signature"))


class _ToyClient:
    """`GET /campaigns/{id}` → `{"status"}`; `POST /campaigns/{id}/off|on`. Bearer key."""

    name = "toy"
    can_read_state = True

    def __init__(self, session: aiohttp.ClientSession, config: VendorConfig) -> None:
        assert config.api_key is not None
        self._session, self._base = session, config.base_url
        self._headers = {"Authorization": f"Bearer {config.api_key.get_secret_value()}"}

    async def _call(self, method: str, path: str) -> CampaignStatus:
        async with self._session.request(method, self._base + path, headers=self._headers) as reply:
            reply.raise_for_status()
            return _STATUSES.get((await reply.json())["status"], CampaignStatus.UNKNOWN)

    async def observe(self, campaign_id: str, *, background: bool = False) -> Observation:
        return Observation(await self._call("GET", f"/campaigns/{campaign_id}"))

    async def state(self, campaign_id: str) -> CampaignStatus:
        return (await self.observe(campaign_id)).status

    async def _write(self, campaign_id: str, verb: str, before: CampaignStatus, after: CampaignStatus,
                     current: Observation | None, guard: Guard | None) -> WriteResult:
        seen = current or await self.observe(campaign_id)
        if seen.status is not before or (guard is not None and not await guard()):
            return WriteResult(seen.status, sent=False, proven=False, detail=f"it was {seen.status}")
        status = await self._call("POST", f"/campaigns/{campaign_id}/{verb}")
        return WriteResult(status, sent=True, proven=status is after)

    async def pause(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                    sent_at: datetime | None = None) -> WriteResult:
        return await self._write(campaign_id, "off", CampaignStatus.ACTIVE, CampaignStatus.PAUSED, current, guard)

    async def resume(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                     sent_at: datetime | None = None) -> WriteResult:
        return await self._write(campaign_id, "on", CampaignStatus.PAUSED, CampaignStatus.ACTIVE, current, guard)


def _make_client(session: aiohttp.ClientSession, config: VendorConfig, retry: RetryPolicy,
                 timeout: float) -> _ToyClient:
    return _ToyClient(session, config)


TOY = VendorSpec(
    name="toy", display_name="Toy", campaign_id=re.compile(r"T-[0-9]{1,6}"), statuses=_STATUSES,
    base_url="https://api.toy.example/v1", rate_limits={"rate_limit": (5, 1.0)},
    normalize=_normalize, authenticate=_authenticate, client=_make_client,
    webhook_token=False, webhook_secrets=("webhook_secret",),
    extra_settings={"webhook_secret": Setting("secret")},
)

# ------------------------------------------------------------------ its fake API and the rules

_PAUSE_RULE = """description: Pause a toy campaign whose threshold the toy vendor reports breached.
on: campaign.bounce_threshold
scope: campaign
action:
  do: pause
  reason: "toy threshold breached"
"""
_RELEASE_RULE = """description: Release the toy hold once the toy vendor reports the campaign recovered.
on: campaign.metrics
scope: campaign
action:
  do: release
  holds: [rule:toy-pause]
  reason: "toy campaign recovered"
"""
API_KEY, SECRET = "toy-api-key-0001", "toy-webhook-secret-0002"


class _FakeToy:
    """The toy vendor's API: campaign statuses and the writes it received."""

    def __init__(self) -> None:
        self.status = {"T-1": "on"}
        self.writes: list[str] = []
        self.changed = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/v1/campaigns/{id}", self._read)
        self.app.router.add_post("/v1/campaigns/{id}/{verb}", self._write)

    def _authorized(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            raise web.HTTPUnauthorized()

    async def _read(self, request: web.Request) -> web.Response:
        self._authorized(request)
        return web.json_response({"status": self.status[request.match_info["id"]]})

    async def _write(self, request: web.Request) -> web.Response:
        self._authorized(request)
        campaign, verb = request.match_info["id"], request.match_info["verb"]
        self.status[campaign] = verb
        self.writes.append(f"{verb} {campaign}")
        self.changed.set()
        return web.json_response({"status": verb})

    async def wait_for(self, writes: list[str]) -> None:
        async with asyncio.timeout(10):
            while self.writes != writes:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def toy() -> Any:
    with registry.registered(TOY):
        yield TOY


@pytest.fixture
async def toy_api() -> AsyncIterator[tuple[_FakeToy, str]]:
    fake = _FakeToy()
    server = TestServer(fake.app)
    await server.start_server()
    try:
        yield fake, str(server.make_url("/v1"))
    finally:
        await server.close()


def _settings(tmp_path: Path, base_url: str) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "toy-pause.yaml").write_text(_PAUSE_RULE)
    (rules / "toy-release.yaml").write_text(_RELEASE_RULE)
    with_toy = settings_class(registry.specs())     # every registered vendor's block, the toy's included
    return with_toy.model_validate({
        "broker_url": SecretStr("memory://"), "state_url": f"sqlite:///{tmp_path / 'state.db'}",
        "rules_dir": rules, "http_port": 0, "inventory_refresh": 0, "reconcile_seconds": 0,
        "toy_api_key": SecretStr(API_KEY), "toy_base_url": base_url, "toy_webhook_secret": SecretStr(SECRET),
    })


async def _post(session: aiohttp.ClientSession, port: int, body: dict[str, str], secret: str = SECRET) -> int:
    raw = json.dumps(body).encode()
    async with session.post(f"http://127.0.0.1:{port}/webhooks/toy", data=raw,
                            headers={"Content-Type": "application/json",
                                     "X-Toy-Signature": hmac_hex(raw, secret)}) as reply:
        return reply.status


# ------------------------------------------------------------------ the proof

async def test_a_toy_vendor_goes_from_a_signed_webhook_to_a_pause_and_a_resume(
        toy: VendorSpec, toy_api: tuple[_FakeToy, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("BOT_")]:
        monkeypatch.delenv(name)
    fake, base_url = toy_api
    settings = _settings(tmp_path, base_url)
    assert "toy" in VENDORS and str(CampaignRef.parse("toy:T-1")) == "toy:T-1"
    async with running(settings, with_web=True, with_worker=True) as services, aiohttp.ClientSession() as http:
        assert services.port is not None
        assert await _post(http, services.port, {"id": "e1", "kind": "breach", "campaign": "T-1"},
                           secret="forged") == 401                          # its own authentication, closed
        assert await _post(http, services.port, {"id": "e1", "kind": "breach", "campaign": "T-1"}) == 202
        await fake.wait_for(["off T-1"])
        assert fake.status["T-1"] == "off"
        assert await _post(http, services.port, {"id": "e2", "kind": "recovered", "campaign": "T-1"}) == 202
        await fake.wait_for(["off T-1", "on T-1"])
    assert fake.status["T-1"] == "on"


def test_the_registry_forgets_a_vendor_registered_for_a_test() -> None:
    with registry.registered(TOY):
        assert registry.get("toy") is TOY and "toy" in VENDORS
        with pytest.raises(ValueError, match="already registered"), registry.registered(TOY):
            pass
    assert registry.get("toy") is None and "toy" not in VENDORS
    with pytest.raises(ValueError, match="unknown vendor 'toy'"):
        CampaignRef.parse("toy:T-1")


def test_each_vendor_package_names_its_secrets_and_settings() -> None:
    assert {spec.name: spec.secrets for spec in registry.specs()} == {
        "smartlead": ("api_key", "webhook_secret"), "leadterra": ("api_key", "webhook_secret"),
        "lemlist": ("api_key", "webhook_secret"), "inbox": ("api_key",), "instantly": ("api_key", "webhook_secret")}
    settings = Settings.model_validate({"smartlead_api_key": "zz-key-1", "leadterra_webhook_secret": "zz-sec-2",
                                        "inbox_api_key": "zz-key-3", "webhook_token": "zz-tok-4"})
    assert {"zz-key-1", "zz-sec-2", "zz-key-3", "zz-tok-4"} <= set(settings.secrets())
    assert TOY.env("webhook_secret") == "BOT_TOY_WEBHOOK_SECRET"
