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
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["SlidingWindowLimiter"]


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
            delay = max(0.0, self._done[0] + self.period - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self.wake)

    @asynccontextmanager
    async def slot(self, *, background: bool = False) -> AsyncIterator[None]:
        """`async with limiter.slot(): <one HTTP request>`."""
        await self.acquire(background=background)
        try:
            yield
        finally:
            self.release()
