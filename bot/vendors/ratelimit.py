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
        self._queue = asyncio.Lock()            # FIFO: one waiter at a time looks for a free slot
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter({self.limit}/{self.period:g}s, in_flight={self._in_flight})"

    def _expire(self, now: float) -> None:
        while self._done and self._done[0] + self.period <= now:
            self._done.popleft()

    async def acquire(self) -> None:
        """Wait for a free slot and take it; pair with `release()` (or use `slot()`)."""
        async with self._queue:
            while True:
                now = self._clock()
                self._expire(now)
                if self._in_flight + len(self._done) < self.limit:
                    self._in_flight += 1
                    return
                self._changed.clear()
                wait = self._done[0] + self.period - now if self._done else None
                try:
                    async with asyncio.timeout(wait):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    def release(self) -> None:
        """The request finished (answered, failed or cancelled): its slot cools down for `period`."""
        self._in_flight -= 1
        self._done.append(self._clock())
        self._changed.set()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """`async with limiter.slot(): <one HTTP request>`."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()
