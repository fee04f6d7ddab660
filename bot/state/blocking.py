"""A sqlite3 connection behind the small async surface the state store uses (execute/cursor/fetch).

Why not aiosqlite here: every statement would hop to aiosqlite's thread and back, and one event costs
dozens of statements (an event, a window per listening rule, holds, the campaign record). Statements on
a local WAL database take microseconds, far less than the hop, so they run on the event loop's thread
directly (bench/load.py: 32 → see README for the figures after the change). Two things wait on the disk
there: each COMMIT, which with synchronous=FULL returns only once the WAL is fsynced (group commit pays
that once per group; bench/durability.py measures it), and a checkpoint, a few milliseconds now and then.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable, Sequence
from typing import Any

__all__ = ["BlockingConnection"]


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class _Executed:
    """The result of `execute`: awaitable (→ cursor) and usable as `async with ... as cursor`."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = _Cursor(cursor)

    def __await__(self) -> Generator[Any, None, _Cursor]:
        return self._cursor
        yield  # pragma: no cover - makes this a generator without suspending

    async def __aenter__(self) -> _Cursor:
        return self._cursor

    async def __aexit__(self, *_: object) -> None:
        return None


class BlockingConnection:
    """sqlite3 in autocommit mode (explicit BEGIN/COMMIT), with the awaitable API of aiosqlite's."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def execute(self, sql: str, args: Iterable[Any] = ()) -> _Executed:
        return _Executed(self._conn.execute(sql, tuple(args)))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> _Executed:
        return _Executed(self._conn.executemany(sql, rows))

    def execute_now(self, sql: str) -> None:
        """A statement run synchronously (the store's transaction control)."""
        self._conn.execute(sql)

    def executemany_now(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    async def executescript(self, script: str) -> None:
        self._conn.executescript(script)

    async def close(self) -> None:
        self._conn.close()
