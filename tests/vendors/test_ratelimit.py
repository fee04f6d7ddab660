"""SlidingWindowLimiter priorities, without sleeping: a hand-moved clock (and `wake()` instead of the
limiter's own timer), and tasks that record when they got their slot. Background waiters (drift
reads) go after every foreground waiter; the limit is never exceeded."""

from __future__ import annotations

import asyncio

import pytest

from bot.vendors.ratelimit import SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def settle(limiter: SlidingWindowLimiter, waiting: tuple[int, int], granted: list[str] | None = None,
                 count: int | None = None) -> None:
    """Let the event loop run (bounded, no sleeping) until `limiter.waiting == waiting` and, when given,
    `len(granted) == count`; then a few more turns, so that nothing else would have happened."""
    for _ in range(100):
        if limiter.waiting == waiting and (granted is None or len(granted) == count):
            break
        await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert limiter.waiting == waiting, f"waiting is {limiter.waiting}, expected {waiting}"
    assert granted is None or len(granted) == count, granted


class Recorder:
    """Tasks that take a slot and keep it until told to let go, recording the order slots were granted."""

    def __init__(self, limiter: SlidingWindowLimiter) -> None:
        self.limiter = limiter
        self.granted: list[str] = []
        self.done: dict[str, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, *, background: bool = False) -> None:
        self.done[name] = asyncio.Event()

        async def run() -> None:
            async with self.limiter.slot(background=background):
                self.granted.append(name)
                await self.done[name].wait()

        self.tasks.append(asyncio.create_task(run()))


async def test_a_pause_waiting_with_a_background_read_goes_first() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(1, 10, clock=clock)
    rec = Recorder(limiter)
    rec.start("in-flight")
    await settle(limiter, (0, 0), rec.granted, 1)
    assert rec.granted == ["in-flight"]
    rec.start("drift-read", background=True)            # waits: the one slot is busy
    await settle(limiter, (0, 1))
    rec.start("pause")                                  # arrives later, but is foreground
    await settle(limiter, (1, 1))
    rec.done["in-flight"].set()                         # done at t=0: its slot cools down until t=10
    await settle(limiter, (1, 1), rec.granted, 1)
    clock.now = 10
    limiter.wake()
    await settle(limiter, (0, 1), rec.granted, 2)
    assert rec.granted == ["in-flight", "pause"]
    rec.done["pause"].set()
    await settle(limiter, (0, 1), rec.granted, 2)
    clock.now = 20
    limiter.wake()
    await settle(limiter, (0, 0), rec.granted, 3)
    assert rec.granted == ["in-flight", "pause", "drift-read"]
    rec.done["drift-read"].set()
    await asyncio.gather(*rec.tasks)


async def test_foreground_is_fifo_and_background_is_served_when_no_foreground_waits() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(1, 10, clock=clock)
    rec = Recorder(limiter)
    rec.start("first")
    await settle(limiter, (0, 0), rec.granted, 1)
    for name, background in (("bg1", True), ("fg1", False), ("bg2", True), ("fg2", False), ("fg3", False)):
        rec.start(name, background=background)
    await settle(limiter, (3, 2))
    holders = ["first", "fg1", "fg2", "fg3", "bg1"]
    left = [(2, 2), (1, 2), (0, 2), (0, 1), (0, 0)]
    for step, (holder, waiting) in enumerate(zip(holders, left, strict=True), start=1):
        rec.done[holder].set()
        await settle(limiter, left[step - 2] if step > 1 else (3, 2), rec.granted, step)   # cooling down
        clock.now = 10 * step
        limiter.wake()
        await settle(limiter, waiting, rec.granted, step + 1)
    assert rec.granted == ["first", "fg1", "fg2", "fg3", "bg1", "bg2"]
    rec.done["bg2"].set()
    await asyncio.gather(*rec.tasks)


async def test_the_limit_holds_for_both_classes_and_slots_cool_down() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(2, 10, clock=clock)
    rec = Recorder(limiter)
    rec.start("a")
    rec.start("b", background=True)                     # free slots: background is served at once
    await settle(limiter, (0, 0), rec.granted, 2)
    assert rec.granted == ["a", "b"]
    rec.start("c")
    rec.start("d", background=True)
    await settle(limiter, (1, 1))
    rec.done["a"].set()                                 # at t=0: the slot cools down until t=10
    await settle(limiter, (1, 1), rec.granted, 2)
    assert rec.granted == ["a", "b"]                    # the limit is 2 in ANY 10 s, in flight or not
    clock.now = 10
    rec.done["b"].set()                                 # a's slot expired: c (foreground) gets it, not d
    await settle(limiter, (0, 1), rec.granted, 3)
    assert rec.granted == ["a", "b", "c"]
    clock.now = 20
    rec.done["c"].set()
    await settle(limiter, (0, 0), rec.granted, 4)
    assert rec.granted == ["a", "b", "c", "d"]
    rec.done["d"].set()
    await asyncio.gather(*rec.tasks)


async def test_a_cancelled_waiter_leaves_the_queue_and_an_unused_slot_is_free_at_once() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(1, 10, clock=clock)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await settle(limiter, (1, 0))
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.waiting == (0, 0)
    limiter.release(used=False)                         # nothing was sent (a withdrawn write)
    async with asyncio.timeout(1):
        await limiter.acquire(background=True)          # free at once, no cool-down
    # a slot granted to a waiter cancelled before it could use it is handed back unused
    other = asyncio.create_task(limiter.acquire())
    await settle(limiter, (1, 0))
    limiter.release(used=False)                         # grants `other` ...
    other.cancel()                                      # ... which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await other
    async with asyncio.timeout(1):
        await limiter.acquire()
    limiter.release()


async def test_waiters_wake_when_the_oldest_slot_cools_down() -> None:
    limiter = SlidingWindowLimiter(1, 0.05)                # the real clock: the limiter's own timer wakes it
    order: list[str] = []

    async def use(name: str, background: bool) -> None:
        async with limiter.slot(background=background):
            order.append(name)

    async with limiter.slot():
        pass
    async with asyncio.timeout(2):
        await asyncio.gather(use("bg", True), use("fg", False))
    assert order == ["fg", "bg"] and limiter.waiting == (0, 0)
