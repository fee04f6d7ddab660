"""Worker heartbeats in PostgreSQL: what `campaign-guard healthcheck` reads when the state is postgresql://.

With SQLite the worker lock's file is the heartbeat (bot.state.worker_lock); a fleet has no such file, so
each worker owns one row of `workers`, keyed by (host name, pid). It writes the row when it starts, sets
`beat_at` to the database's clock every sweep (`Heartbeat.beat`) and deletes the row when it stops. The
health check runs where the worker runs (its container) and judges that host's workers: one whose process
is alive there and whose beat is fresh by the database's clock (so no clock skew between hosts matters).
Reading takes no lock. Rows of workers killed without stopping are overwritten by the next worker with
the same host and pid, else deleted once a week old.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Final

import psycopg

from bot.errors import StateError
from bot.state.postgres import Pool, postgres_error, query, where

__all__ = ["Heartbeat", "check_alive"]

#: heartbeat rows this old belong to workers long dead: deleted when a worker starts
_FORGOTTEN: Final = timedelta(days=7)


class Heartbeat:
    """This process's row of `workers`, from `open` to the end of its block."""

    def __init__(self, pool: Pool, host: str, pid: int) -> None:
        self._pool = pool
        self._key = (host, pid)

    @classmethod
    @asynccontextmanager
    async def open(cls, pool: Pool) -> AsyncIterator[Heartbeat]:
        """Write this worker's row (its first beat); delete it on exit (a stopped worker is not alive)."""
        heartbeat = cls(pool, socket.gethostname(), os.getpid())
        await query(pool, "DELETE FROM workers WHERE beat_at < now() - %s", (_FORGOTTEN,),
                    doing="forgetting old heartbeats")
        await heartbeat.beat()
        try:
            yield heartbeat
        finally:
            with contextlib.suppress(StateError):     # unreachable database: the row goes stale instead
                await query(pool, "DELETE FROM workers WHERE host = %s AND pid = %s", heartbeat._key)

    async def beat(self) -> None:
        """Record that the worker is alive (the database's `now()`); StateError when the database fails."""
        await query(self._pool, "INSERT INTO workers VALUES (%s, %s, now(), now())"
                                " ON CONFLICT (host, pid) DO UPDATE SET beat_at = excluded.beat_at",
                    self._key, doing="the worker heartbeat")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                          # alive, under another user
    return True


def check_alive(url: str, *, max_age: float, host: str | None = None) -> str | None:
    """None when a worker on `host` (default: this one) beat within `max_age` seconds in the database at
    `url`; else why not (one line, never the password)."""
    host = host or socket.gethostname()
    try:
        with psycopg.connect(url, autocommit=True, prepare_threshold=None, connect_timeout=5) as conn:
            rows = conn.execute("SELECT pid, extract(epoch FROM now() - beat_at)::float8 FROM workers"
                                " WHERE host = %s ORDER BY beat_at DESC", (host,)).fetchall()
    except psycopg.errors.UndefinedTable:
        return f"no worker has run on {where(url)} (no schema yet)"
    except psycopg.ProgrammingError:                # a URL libpq cannot parse (its message may quote it)
        return "BOT_STATE_URL is not a PostgreSQL URL libpq understands"
    except psycopg.Error as exc:
        return str(postgres_error(f"reading the heartbeats in {where(url)}", exc))
    if not rows:
        return f"no worker running on {host} with state {where(url)}"
    alive = [(pid, age) for pid, age in rows if _alive(pid)]
    if not alive:
        return f"the worker (pid {rows[0][0]}) on {host} is gone"
    pid, age = alive[0]
    if age > max_age:
        return f"the worker (pid {pid}) has not swept for {age:.0f} s (more than {max_age:g} s): stuck"
    return None
