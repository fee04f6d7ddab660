"""The background share of a rate window (BOT_POLL_SHARE): polls and drift reads never hold more than that share
of a window in this process's limiters (the fleet's shared budget has its own, tests/vendors/test_budget.py), so a
burst of pauses always finds the rest free at once; the share is taken when a limiter is made; the shared
limiters count their slots and waits per budget name in /metrics. No sleeping: an injected clock and `wake()`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from bot.metrics import REGISTRY
from bot.vendors.budget import SharedLimiter, Slot, Window
from bot.vendors.ratelimit import BACKGROUND_SHARE, MultiWindowLimiter, SlidingWindowLimiter, background_limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def turns(until: Callable[[], bool], what: str) -> None:
    """Let the event loop run (bounded, no sleeping) until `until()` holds."""
    for _ in range(200):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def started(coroutines: int, limiter: SlidingWindowLimiter, *, background: bool) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(limiter.acquire(background=background)) for _ in range(coroutines)]


async def test_background_takes_at_most_its_share_and_pauses_find_the_rest_at_once() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(10, 2.0, clock=clock, background_share=0.5)
    polls = started(8, limiter, background=True)
    await turns(lambda: sum(t.done() for t in polls) == 5, "five background slots")
    await turns(lambda: limiter.waiting == (0, 3), "three polls waiting")
    pauses = started(5, limiter, background=False)
    await turns(lambda: all(t.done() for t in pauses), "every pause at once")
    for _ in range(10):
        limiter.release()                   # the ten requests answered at t=1000: the window is full until 1002
    assert limiter.waiting == (0, 3)
    clock.now += 1.9
    limiter.wake()
    await asyncio.sleep(0)
    assert sum(t.done() for t in polls) == 5
    clock.now += 0.1                        # every slot cooled down: the polls get their share again, no more
    limiter.wake()
    await turns(lambda: all(t.done() for t in polls), "the waiting polls")
    assert limiter.waiting == (0, 0)
    late = started(3, limiter, background=True)
    await turns(lambda: sum(t.done() for t in late) == 2, "background up to its share")
    assert limiter.waiting == (0, 1)
    for task in late:
        task.cancel()


async def test_foreground_use_counts_against_the_background_share_too() -> None:
    """Background is served only while the whole window stays under its share: pauses first, always."""
    clock = Clock()
    limiter = SlidingWindowLimiter(10, 2.0, clock=clock, background_share=0.5)
    pauses = started(4, limiter, background=False)
    await turns(lambda: all(t.done() for t in pauses), "four pauses")
    polls = started(3, limiter, background=True)
    await turns(lambda: sum(t.done() for t in polls) == 1, "one poll")   # 4 + 1 = the share of 5
    assert limiter.waiting == (0, 2)
    limiter.release(used=False)             # a withdrawn pause: its slot is free at once, for a poll now
    await turns(lambda: sum(t.done() for t in polls) == 2, "a second poll")
    for task in polls:
        task.cancel()


async def test_several_windows_each_keep_their_share() -> None:
    clock = Clock()
    limiter = MultiWindowLimiter([(4, 1.0), (6, 60.0)], clock=clock, background_share=0.5)
    polls = started(5, limiter, background=True)
    await turns(lambda: sum(t.done() for t in polls) == 2, "two of the second's four")
    limiter.release()
    limiter.release()
    clock.now += 1.0                        # the second's window is free again; the minute's share (3) is not
    limiter.wake()
    await turns(lambda: sum(t.done() for t in polls) == 3, "one more within the minute's three")
    await asyncio.sleep(0)
    assert sum(t.done() for t in polls) == 3 and limiter.waiting == (0, 2)
    pauses = started(2, limiter, background=False)
    await turns(lambda: all(t.done() for t in pauses), "pauses use the rest of the minute")
    for task in polls:
        task.cancel()


@pytest.mark.parametrize(("limit", "share", "expected"), [(10, 0.5, 5), (60, 0.5, 30), (1, 0.5, 1), (3, 0.5, 1),
                                                          (10, 1.0, 10), (6000, 0.25, 1500), (7, 0.3, 2)])
def test_the_share_rounds_down_and_leaves_at_least_one(limit: int, share: float, expected: int) -> None:
    assert background_limit(limit, share) == expected


def test_the_share_is_the_one_set_when_the_limiter_is_made_and_none_elsewhere() -> None:
    assert SlidingWindowLimiter(10, 2.0).background_limit == 10          # nothing set: no cap (tests, tools)
    token = BACKGROUND_SHARE.set(0.3)
    try:
        made = SlidingWindowLimiter(10, 2.0)
        windows = MultiWindowLimiter([(100, 1.0), (6000, 60.0)])
        told = SlidingWindowLimiter(10, 2.0, background_share=0.8)
    finally:
        BACKGROUND_SHARE.reset(token)
    assert made.background_limit == 3 and told.background_limit == 8
    assert windows._background_limits == (30, 1800)
    assert SlidingWindowLimiter(10, 2.0).background_limit == 10
    with pytest.raises(ValueError, match="background_share"):
        SlidingWindowLimiter(10, 2.0, background_share=0)


class OnceRefused:
    """A shared budget refusing the first take for a moment, then granting."""

    def __init__(self) -> None:
        self.refused = False
        self.ids = 0

    async def take(self, budget: str, windows: Sequence[Window], *, background: bool) -> Slot | float:
        if not self.refused:
            self.refused = True
            return 0.01
        self.ids += 1
        return Slot(self.ids)

    async def done(self, slot: Slot, *, used: bool) -> None:
        return None


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_shared_limiters_count_slots_and_waits_per_budget_and_priority_never_by_key() -> None:
    budget = "smartlead@metrics-test"
    limiter = SharedLimiter(budget, [(10, 2.0)], OnceRefused(), background_share=0.5)
    before = {(kind, priority): value(f"campaign_guard_budget_{kind}_total", budget=budget, priority=priority)
              for kind in ("slots", "waits") for priority in ("foreground", "background")}
    async with asyncio.timeout(5):
        await limiter.acquire(background=True)      # refused once, waits at its gate, then granted
        limiter.release()
        await limiter.acquire()
        limiter.release()
        await limiter.drain()

    def delta(kind: str, priority: str) -> float:
        return value(f"campaign_guard_budget_{kind}_total", budget=budget, priority=priority) - before[kind, priority]

    assert (delta("slots", "background"), delta("waits", "background")) == (1, 1)
    assert (delta("slots", "foreground"), delta("waits", "foreground")) == (1, 0)
    assert value("campaign_guard_budget_limit_per_second", budget=budget) == 5.0
