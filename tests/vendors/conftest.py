"""Fixtures for vendor client tests: the simulator served over HTTP, a session, fast clients; and the helpers
the poll and write tests share: `until` (run the loop until a condition holds), `Recording` (a limiter that
records how each request asked for its slot), `Ticking` (a clock on which every slot has cooled down by the
next look)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.testing import DEFAULT_KEYS, PREFIXES, VendorSimulator
from bot.vendors import InboxClient, LeadterraClient, RetryPolicy, SlidingWindowLimiter, SmartleadClient

#: Retries without real waiting: tests never sleep for long.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01)


@pytest.fixture
def sim() -> VendorSimulator:
    return VendorSimulator()


@pytest.fixture
async def server(sim: VendorSimulator, aiohttp_server: Callable[..., object]) -> TestServer:
    return await aiohttp_server(sim.app)  # type: ignore[misc,no-any-return]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def base(server: TestServer) -> Callable[[str], str]:
    return lambda vendor: str(server.make_url(PREFIXES[vendor]))


@pytest.fixture
def smartlead(session: aiohttp.ClientSession, base: Callable[[str], str]) -> SmartleadClient:
    return SmartleadClient(session, api_key=DEFAULT_KEYS["smartlead"], base_url=base("smartlead"),
                           retry=FAST_RETRY, timeout=5)


@pytest.fixture
def leadterra(session: aiohttp.ClientSession, base: Callable[[str], str]) -> LeadterraClient:
    return LeadterraClient(session, api_key=DEFAULT_KEYS["leadterra"], base_url=base("leadterra"),
                           retry=FAST_RETRY, timeout=5)


@pytest.fixture
def inbox(session: aiohttp.ClientSession, base: Callable[[str], str]) -> InboxClient:
    return InboxClient(session, api_key=DEFAULT_KEYS["inbox"], base_url=base("inbox"), retry=FAST_RETRY, timeout=5)


def assert_secret_absent(secret: str, *things: object) -> None:
    """`secret` appears in no str(), repr() or formatted traceback (with chained causes) of `things`."""
    import traceback

    for thing in things:
        texts = [str(thing), repr(thing)]
        if isinstance(thing, BaseException):
            texts.append("".join(traceback.format_exception(thing)))
            assert thing.__cause__ is None or secret not in repr(thing.__cause__)
            assert thing.__context__ is None or secret not in repr(thing.__context__)
        for text in texts:
            assert secret not in text, f"secret leaked in {text[:300]!r}"


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until `condition()` (bounded, no sleeping)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


class Recording(SlidingWindowLimiter):
    """Records how each request asked for its slot."""

    def __init__(self) -> None:
        super().__init__(100, 1)
        self.asked: list[bool] = []

    async def acquire(self, *, background: bool = False) -> None:
        self.asked.append(background)
        await super().acquire(background=background)


class Ticking:
    """A limiter clock 100 s further on at every look: every slot has cooled down by the next one."""

    now = 0.0

    def __call__(self) -> float:
        self.now += 100
        return self.now
