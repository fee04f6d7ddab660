"""Fixtures for simulator tests: a hand-moved monotonic clock and a test client on the simulator."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from bot.testing import VendorSimulator


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
