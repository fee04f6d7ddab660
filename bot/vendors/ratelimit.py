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

Background share: a background waiter is granted a slot only while the window's requests (in flight and
cooling down, of both classes) stay under `background_share` of its limit (rounded down, at least one). So
background requests never hold more than that share of a window, and the rest is always free for a burst of
pauses and resumes. The share is fixed when the limiter is made: given, else `BACKGROUND_SHARE` as set then
(`bot.service` sets it to `BOT_POLL_SHARE` while it builds the clients; 1, no cap, elsewhere).

`Limiter` is what the HTTP layer asks of a limiter; `bot.vendors.budget.SharedLimiter` is the other one: this
process's limiter first, then a budget the whole fleet shares.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from typing import Protocol

__all__ = ["BACKGROUND_SHARE", "Limiter", "MultiWindowLimiter", "SlidingWindowLimiter", "background_limit", "slot"]

#: the background share of the limiters made while it is set (see the module docstring)
BACKGROUND_SHARE: ContextVar[float] = ContextVar("BACKGROUND_SHARE", default=1.0)


def background_limit(limit: int, share: float) -> int:
    """How many of a window's `limit` requests background ones may take: `share` of it, rounded down, at least 1."""
    if not 0 < share <= 1:
        raise ValueError("background_share must be more than 0 and at most 1")
    return max(1, math.floor(limit * share + 1e-9))


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

    def __init__(self, limit: int, period: float, *, clock: Callable[[], float] = time.monotonic,
                 background_share: float | None = None) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self.background_share = BACKGROUND_SHARE.get() if background_share is None else background_share
        self.background_limit = background_limit(limit, self.background_share)
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

    def _free(self, background: bool = False) -> bool:
        self._expire(self._clock())
        return self._in_flight + len(self._done) < (self.background_limit if background else self.limit)

    async def acquire(self, *, background: bool = False) -> None:
        """Wait for a free slot and take it; pair with `release()` (or use `slot()`).
        `background`: served only while no foreground waiter is waiting, within the background share."""
        queue = self._background if background else self._foreground
        if not self._foreground and (not background or not self._background) and self._free(background):
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

    def _next_waiter(self) -> tuple[deque[asyncio.Future[None]], bool] | None:
        """The queue to serve next (foreground first) and whether it is the background one."""
        for queue, background in ((self._foreground, False), (self._background, True)):
            while queue and queue[0].done():
                queue.popleft()                 # cancelled while waiting
            if queue:
                return queue, background
        return None

    def _dispatch(self) -> None:
        """Grant free slots to waiters, foreground first (background within its share); wake again when the
        slot the first waiter needs cools down."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while (next_up := self._next_waiter()) is not None:
            queue, background = next_up
            if not self._free(background):
                if self._done:
                    self._timer = asyncio.get_running_loop().call_later(self._cooldown(background), self.wake)
                return
            self._in_flight += 1
            queue.popleft().set_result(None)

    def _cooldown(self, background: bool = False) -> float:
        """Seconds until enough completions left the window for one more request (of that class)."""
        limit = self.background_limit if background else self.limit
        excess = self._in_flight + len(self._done) - limit + 1      # completions that must leave the window
        index = min(max(excess, 1), len(self._done)) - 1
        return max(0.0, self._done[index] + self.period - self._clock())

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

    def __init__(self, windows: Sequence[tuple[int, float]], *, clock: Callable[[], float] = time.monotonic,
                 background_share: float | None = None) -> None:
        if not windows:
            raise ValueError("give at least one (limit, period) window")
        for limit, period in windows:
            if limit < 1 or period <= 0:
                raise ValueError("limit must be >= 1 and period > 0")
        self.windows = tuple(sorted(((int(n), float(p)) for n, p in windows), key=lambda w: w[1]))
        # the longest window keeps the history
        super().__init__(*self.windows[-1], clock=clock, background_share=background_share)
        #: each window's limit for background requests
        self._background_limits = tuple(background_limit(n, self.background_share) for n, _ in self.windows)

    def __repr__(self) -> str:
        shown = " + ".join(f"{n}/{p:g}s" for n, p in self.windows)
        return (f"MultiWindowLimiter({shown}, in_flight={self._in_flight}, "
                f"waiting={len(self._foreground)}+{len(self._background)}bg)")

    def _recent(self, period: float, now: float) -> int:
        """Completions still inside the last `period` seconds (the history is in time order)."""
        return len(self._done) - bisect.bisect_right(self._done, now - period)

    def _limits(self, background: bool) -> list[tuple[int, float]]:
        if not background:
            return list(self.windows)
        return [(bg, period) for bg, (_, period) in zip(self._background_limits, self.windows, strict=True)]

    def _free(self, background: bool = False) -> bool:
        now = self._clock()
        self._expire(now)
        return all(self._in_flight + self._recent(period, now) < limit for limit, period in self._limits(background))

    def _cooldown(self, background: bool = False) -> float:
        """Seconds until every full window has cooled down enough for one more request (of that class)."""
        now = self._clock()
        waits = []
        for limit, period in self._limits(background):
            recent = self._recent(period, now)
            excess = self._in_flight + recent - limit + 1       # completions that must leave this window
            if 0 < excess <= recent:
                waits.append(self._done[len(self._done) - recent + excess - 1] + period - now)
        return max(0.0, *waits) if waits else max(0.0, self._done[0] + self.period - now)
