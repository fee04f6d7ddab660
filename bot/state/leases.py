"""Leases of a single process (bot.state.protocol.Leases): what a SQLite worker, alone on its file, uses.

The same promises as the fleet's (bot.state.pg_leases), kept in memory on the monotonic clock: a test
of the coordination needs no database, and `campaign-guard run` keeps its one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MemoryLeases"]


class MemoryLeases:
    """Claims held in this process's memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._claims: dict[str, tuple[str, float]] = {}

    async def claim(self, name: str, holder: str, seconds: float) -> bool:
        now = self._clock()
        current = self._claims.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._claims[name] = (holder, now + seconds)
        return True

    async def release(self, name: str, holder: str) -> None:
        if self._claims.get(name, ("", 0.0))[0] == holder:
            del self._claims[name]
