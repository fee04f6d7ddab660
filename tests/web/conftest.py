"""Web fixtures: a recording fake Broker, settings with known secrets, a client factory, signers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.broker.base import Delivery, Handler
from bot.config import Settings
from bot.web import create_app

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"
TOKEN = "test-webhook-token-7f3a"
SMARTLEAD_SECRET = "fake-smartlead-secret-0001"  # also the `secret_key` in smartlead_legacy_*.json
LEADTERRA_SECRET = "fake-leadterra-secret-0002"


@dataclass(frozen=True)
class Published:
    body: bytes
    message_id: str
    routing_key: str


class FakeBroker:
    """Implements the Broker protocol in memory: records publishes, fails or blocks on demand."""

    def __init__(self) -> None:
        self.published: list[Published] = []
        self.is_ready = True
        self.ready_error: Exception | None = None
        #: raise this from publish once `fail_after` messages went through
        self.error: Exception | None = None
        self.fail_after = 0
        #: when set, publish waits for it (after setting `entered`): lets a test see the answer wait
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ready(self) -> bool:
        if self.ready_error is not None:
            raise self.ready_error
        return self.is_ready

    async def publish(self, body: bytes, *, message_id: str, routing_key: str) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None and len(self.published) >= self.fail_after:
            raise self.error
        self.published.append(Published(body, message_id, routing_key))

    async def consume(self, handler: Handler) -> None:
        return None

    async def stop_consuming(self, drain: float) -> None:
        return None

    async def dead_letters(self, limit: int) -> list[tuple[Delivery, str]]:
        return []


@pytest.fixture(autouse=True)
def _no_bot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, never from the developer's BOT_* variables."""
    for name in list(os.environ):
        if name.startswith("BOT_"):
            monkeypatch.delenv(name)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_token": TOKEN,
        "smartlead_webhook_secret": SMARTLEAD_SECRET,
        "leadterra_webhook_secret": LEADTERRA_SECRET,
        "max_body_bytes": 8192,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_client(aiohttp_client: Any, broker: FakeBroker, clock: Any) -> MakeClient:
    """`await make_client(publish_timeout=..., **settings overrides)` → a test client for a fresh app."""

    async def build(*, publish_timeout: float = 5.0, **overrides: Any) -> Client:
        app = create_app(make_settings(**overrides), broker, clock=clock, publish_timeout=publish_timeout)
        client: Client = await aiohttp_client(app)
        return client

    return build


@pytest.fixture
def payload() -> Callable[[str], bytes]:
    return lambda name: (PAYLOADS / name).read_bytes()


def hex_hmac(body: bytes, secret: str) -> str:
    """What Smartlead and Leadterra compute: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def smartlead_headers(body: bytes, secret: str = SMARTLEAD_SECRET) -> dict[str, str]:
    return {"X-Smartlead-Signature": f"sha256={hex_hmac(body, secret)}", "Content-Type": "application/json"}


def leadterra_headers(body: bytes, secret: str = LEADTERRA_SECRET) -> dict[str, str]:
    return {"X-Leadterra-Signature": hex_hmac(body, secret), "Content-Type": "application/json"}


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
