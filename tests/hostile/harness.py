"""Send one request to a fresh app over real HTTP and check the contract every answer must keep.

The contract: never 5xx; a 4xx is JSON `{"error": "<reason>"}`; nothing is published for a refused
request; something published only with a 2xx (and for webhooks 202 `{"accepted": n, "ids": [...]}`
matching exactly what was published); no configured secret is echoed in the answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from aiohttp.test_utils import TestClient, TestServer

from bot.web import create_app
from tests.conftest import FrozenClock
from tests.hostile.endpoints import (
    GRAFANA_SECRET,
    LEADTERRA_SECRET,
    NOW,
    SLACK_SECRET,
    SMARTLEAD_SECRET,
    TOKEN,
    hostile_settings,
)
from tests.web.conftest import FakeBroker, Published

__all__ = ["Answer", "Request", "assert_contract", "exchange"]

SECRETS = (TOKEN, SMARTLEAD_SECRET, LEADTERRA_SECRET, SLACK_SECRET, GRAFANA_SECRET)


@dataclass
class Request:
    method: str
    path: str
    body: bytes | IO[bytes] | AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    published: list[Published]

    def json(self) -> Any:
        return json.loads(self.body)


async def exchange(request: Request, **settings: Any) -> Answer:
    """`request` against a fresh app (FakeBroker, frozen clock at NOW) over a real socket."""
    broker = FakeBroker()
    clock = FrozenClock()
    clock.current = NOW
    app = create_app(hostile_settings(**settings), broker, clock=clock, publish_timeout=2.0)
    async with TestClient(TestServer(app)) as client:
        resp = await client.request(request.method, request.path, data=request.body,
                                    headers=request.headers, params=request.params, skip_auto_headers={"Content-Type"})
        body = await resp.read()
        return Answer(resp.status, dict(resp.headers), body, list(broker.published))


def assert_contract(request: Request, answer: Answer) -> None:
    """The invariants of every answer (see the module docstring)."""
    what = f"{request.method} {request.path} → {answer.status} {answer.body[:300]!r}"
    assert answer.status < 500, f"server error: {what}"
    text = answer.body.decode("utf-8", "replace")
    for secret in SECRETS:
        assert secret not in text, f"a secret is echoed: {what}"
    if answer.status >= 400:
        assert answer.published == [], f"refused but published: {what}"
        if request.method != "HEAD":
            assert answer.headers.get("Content-Type", "").startswith("application/json"), what
            error = answer.json()
            assert isinstance(error, dict) and set(error) == {"error"}, what
            assert isinstance(error["error"], str) and 0 < len(error["error"]) <= 1000, what
        return
    assert 200 <= answer.status < 300, what
    if answer.published and request.path.startswith("/webhooks/"):
        accepted = answer.json()
        assert answer.status == 202, what
        assert accepted["accepted"] == len(answer.published), what
        assert accepted["ids"] == [p.message_id for p in answer.published], what
    if answer.published:
        assert request.method == "POST", what
