"""Client-side sliding-window rate limiter: never more than N requests in ANY window of T seconds.

Why not a token/leaky bucket (e.g. aiolimiter)? A bucket of capacity N refilling at N/T per second
lets N requests through at the end of one window and, once refilled, N more right after the
boundary: up to 2N requests inside a single T-second window. Vendors such as Smartlead enforce
"10 requests every 2 seconds" as a sliding window and answer 429 to that burst.

This limiter keeps the completion time of the last N requests. A slot is busy while its request is
in flight and for T seconds after the response arrived. Because the vendor receives a request
somewhere between our send and our receipt of the answer, the next request using that slot reaches
the vendor at least T seconds after the previous one did, whatever the network latency: the
vendor can never see N+1 requests in one window from this credential.

Priority: a waiter is either foreground (pauses, resumes and the reads they make) or background
(drift checks). A free slot goes to the oldest foreground waiter; a background waiter gets one only
when no foreground waiter is waiting. Within each class the order is FIFO. A slot granted to a
waiter that was cancelled before it could use it is handed back unused (no cool-down: nothing was sent).

`Limiter` is what the HTTP layer asks of a limiter; `bot.vendors.budget.SharedLimiter` is the other one: this
process's limiter first, then a budget the whole fleet shares.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

__all__ = ["Limiter", "MultiWindowLimiter", "SlidingWindowLimiter", "slot"]


class Limiter(Protocol):
    """A rate limiter as `bot.vendors.http.VendorHttp` uses it: `acquire` a slot before each request (background
    ones after every foreground one), `release` it when the request is over (`used=False`: nothing was sent)."""

    @property
    def waiting(self) -> tuple[int, int]: ...

    async def acquire(self, *, background: bool = False) -> None: ...

    def release(self, *, used: bool = True) -> None: ...

    def slot(self, *, background: bool = False) -> AbstractAsyncContextManager[None]: ...


@asynccontextmanager
async def slot(limiter: Limiter, *, background: bool = False) -> AsyncIterator[None]:
    """One slot of `limiter` for the block: acquired before, released after (every limiter's `slot`)."""
    await limiter.acquire(background=background)
    try:
        yield
    finally:
        limiter.release()


class SlidingWindowLimiter:
    """At most `limit` requests per `period` seconds; one instance per vendor credential."""

    def __init__(self, limit: int, period: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._in_flight = 0
        self._done: deque[float] = deque()      # completion times still inside the window, oldest first
        self._foreground: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (f"SlidingWindowLimiter({self.limit}/{self.period:g}s, in_flight={self._in_flight}, "
                f"waiting={len(self._foreground)}+{len(self._background)}bg)")

    @property
    def waiting(self) -> tuple[int, int]:
        """(foreground, background) waiters right now."""
        return len(self._foreground), len(self._background)

    def _expire(self, now: float) -> None:
        while self._done and self._done[0] + self.period <= now:
            self._done.popleft()

    def _free(self) -> bool:
        self._expire(self._clock())
        return self._in_flight + len(self._done) < self.limit

    async def acquire(self, *, background: bool = False) -> None:
        """Wait for a free slot and take it; pair with `release()` (or use `slot()`).
        `background`: served only while no foreground waiter is waiting."""
        queue = self._background if background else self._foreground
        if not self._foreground and (not background or not self._background) and self._free():
            self._in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            self._dispatch()
            await waiter
        except BaseException:
            if waiter in queue:
                queue.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._in_flight -= 1            # granted, but never used: hand the slot back
                self._dispatch()
            raise

    def release(self, *, used: bool = True) -> None:
        """The request finished (answered, failed or cancelled): its slot cools down for `period`.
        `used=False`: nothing was sent after all (a withdrawn write): the slot is free at once."""
        self._in_flight -= 1
        if used:
            self._done.append(self._clock())
        self._dispatch()

    def wake(self) -> None:
        """Grant the slots that cooled down by now. The limiter's own timer does this; a test that moves
        an injected clock by hand calls it instead of waiting for the timer."""
        self._dispatch()

    def _next_waiter(self) -> asyncio.Future[None] | None:
        for queue in (self._foreground, self._background):
            while queue:
                if not queue[0].done():
                    return queue.popleft()
                queue.popleft()                 # cancelled while waiting
        return None

    def _dispatch(self) -> None:
        """Grant free slots to waiters, foreground first; wake again when the oldest slot cools down."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._free():
            waiter = self._next_waiter()
            if waiter is None:
                return
            self._in_flight += 1
            waiter.set_result(None)
        if (self._foreground or self._background) and self._done:
            self._timer = asyncio.get_running_loop().call_later(self._cooldown(), self.wake)

    def _cooldown(self) -> float:
        """Seconds until the oldest completion leaves the window (a slot frees up)."""
        return max(0.0, self._done[0] + self.period - self._clock())

    def slot(self, *, background: bool = False) -> AbstractAsyncContextManager[None]:
        """`async with limiter.slot(): <one HTTP request>`."""
        return slot(self, background=background)


class MultiWindowLimiter(SlidingWindowLimiter):
    """Several sliding windows that must all hold at once, e.g. Instantly's 100 per second AND 6,000 per
    minute. One instance per budget (Instantly: per workspace, shared by every key of it).

    The completion times are kept for the longest window; a slot is free when, for every window, the
    requests in flight plus those completed within its period stay under its limit. Priorities, the
    cool-down of a slot and handing back an unused one work as for `SlidingWindowLimiter`.
    """

    def __init__(self, windows: Sequence[tuple[int, float]], *, clock: Callable[[], float] = time.monotonic) -> None:
        if not windows:
            raise ValueError("give at least one (limit, period) window")
        for limit, period in windows:
            if limit < 1 or period <= 0:
                raise ValueError("limit must be >= 1 and period > 0")
        self.windows = tuple(sorted(((int(n), float(p)) for n, p in windows), key=lambda w: w[1]))
        super().__init__(*self.windows[-1], clock=clock)        # the longest window keeps the history

    def __repr__(self) -> str:
        shown = " + ".join(f"{n}/{p:g}s" for n, p in self.windows)
        return (f"MultiWindowLimiter({shown}, in_flight={self._in_flight}, "
                f"waiting={len(self._foreground)}+{len(self._background)}bg)")

    def _recent(self, period: float, now: float) -> int:
        """Completions still inside the last `period` seconds (the history is in time order)."""
        return len(self._done) - bisect.bisect_right(self._done, now - period)

    def _free(self) -> bool:
        now = self._clock()
        self._expire(now)
        return all(self._in_flight + self._recent(period, now) < limit for limit, period in self.windows)

    def _cooldown(self) -> float:
        """Seconds until every full window has cooled down enough for one more request."""
        now = self._clock()
        waits = []
        for limit, period in self.windows:
            recent = self._recent(period, now)
            excess = self._in_flight + recent - limit + 1       # completions that must leave this window
            if 0 < excess <= recent:
                waits.append(self._done[len(self._done) - recent + excess - 1] + period - now)
        return max(0.0, *waits) if waits else super()._cooldown()
