"""MultiWindowLimiter (Instantly: 100 per second AND 6,000 per minute): every window holds at once, with a
hand-moved clock; its timer wakes waiters when the LAST full window has cooled down, not before."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from bot.vendors.ratelimit import MultiWindowLimiter
from tests.vendors.test_ratelimit import Clock, Recorder, settle


def test_windows_are_validated_and_shown() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MultiWindowLimiter([])
    with pytest.raises(ValueError, match="limit"):
        MultiWindowLimiter([(0, 1.0)])
    limiter = MultiWindowLimiter([(6000, 60), (100, 1)])
    assert limiter.windows == ((100, 1.0), (6000, 60.0))
    assert (limiter.limit, limiter.period) == (6000, 60.0)
    assert "100/1s + 6000/60s" in repr(limiter)


async def test_the_short_and_the_long_window_both_hold() -> None:
    clock = Clock()
    limiter = MultiWindowLimiter([(2, 1.0), (3, 10.0)], clock=clock)
    rec = Recorder(limiter)
    for name in ("a", "b", "c"):
        rec.start(name)
    await settle(limiter, (1, 0), rec.granted, 2)                    # 2 per second
    rec.done["a"].set()
    rec.done["b"].set()
    await settle(limiter, (1, 0), rec.granted, 2)                    # both cool down until t=1
    clock.now = 1.0
    limiter.wake()
    await settle(limiter, (0, 0), rec.granted, 3)                    # c at t=1
    rec.start("d")
    rec.done["c"].set()
    await settle(limiter, (1, 0), rec.granted, 3)
    clock.now = 5.0                                                  # the second window is free again ...
    limiter.wake()
    await settle(limiter, (1, 0), rec.granted, 3)                    # ... but 3 in 10 s: d waits
    assert limiter._cooldown() == pytest.approx(5.0)                 # until a (t=0) leaves
    clock.now = 10.0
    limiter.wake()
    await settle(limiter, (0, 0), rec.granted, 4)
    assert rec.granted == ["a", "b", "c", "d"]
    rec.done["d"].set()
    await asyncio.gather(*rec.tasks)


async def test_the_timer_waits_for_the_last_full_window() -> None:
    limiter = MultiWindowLimiter([(2, 0.05), (3, 0.3)])
    started = time.monotonic()
    grants = []
    for _ in range(5):
        async with limiter.slot():
            grants.append(time.monotonic() - started)
    # two at once, one after the 0.05 s window, then the 0.3 s window: the 4th and 5th wait for it
    assert grants[2] >= 0.045
    assert grants[3] >= 0.29
    assert all(b >= a for a, b in itertools.pairwise(grants))


async def test_an_unused_slot_is_handed_back() -> None:
    clock = Clock()
    limiter = MultiWindowLimiter([(1, 1.0), (5, 60.0)], clock=clock)
    await limiter.acquire()
    limiter.release(used=False)                                      # a withdrawn write: nothing sent
    async with asyncio.timeout(1):
        await limiter.acquire()
    limiter.release()
