"""Fixtures for simulator tests: a hand-moved monotonic clock, a test client on the simulator, and `get`, a
GET on the simulated Smartlead with its key as the `api_key` query parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.testing import DEFAULT_KEYS, VendorSimulator

Get = Callable[..., Any]


class MonoClock:
    """Stands in for time.monotonic; tests move it by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def mono() -> MonoClock:
    return MonoClock()


@pytest.fixture
def sim(mono: MonoClock) -> VendorSimulator:
    return VendorSimulator(clock=mono)


@pytest.fixture
async def client(sim: VendorSimulator, aiohttp_client: Callable[..., object]) -> TestClient:
    return await aiohttp_client(sim.app)  # type: ignore[misc,no-any-return]


@pytest.fixture
def get(client: TestClient) -> Get:
    """`await get(path, key=..., **params)` → (status, JSON body) of a GET on the simulated Smartlead, `key`
    (its default key unless told; None: no key) as the `api_key` query parameter, `params` as strings."""
    async def fetch(path: str, key: str | None = DEFAULT_KEYS["smartlead"], **params: Any) -> tuple[int, Any]:
        query = {**({"api_key": key} if key else {}), **{k: str(v) for k, v in params.items()}}
        resp = await client.get(path, params=query)
        return resp.status, await resp.json()
    return fetch
