"""Worker heartbeats in PostgreSQL: what `campaign-guard healthcheck` reads when the state is postgresql://.

With SQLite the worker lock's file is the heartbeat (bot.state.worker_lock); a fleet has no such file, so
each worker process owns one row of `heartbeats`, keyed by a per-process id (`host:pid:random`, as
bot.fleet names lease holders) and carrying the process's host name, pid and start time (clock ticks
since boot, field 22 of /proc/<pid>/stat). It writes the row when it starts, sets `beat_at` to the
database's clock every sweep (`Heartbeat.beat`) and deletes its own row, and only it, when it stops.

The health check runs where the worker runs (its container) and judges that host's workers: a row counts
only when /proc/<pid>/stat still shows the row's start time (the very process that wrote it, not one
that got its pid since) and its beat is fresh by the database's clock (so no clock skew between hosts
matters). In a container every worker is pid 1: replicas sharing a host name still have a row each (a
live one does not answer for a stuck one; one stopping does not delete the others'), and a restarted
container's new pid 1 is not taken for its predecessor, whose row it ignores until it writes its own.
A worker that finds a recent row with its host name and pid but another start time logs a warning
(`worker.heartbeat_shared_host`): give each worker container its own host name.

Reading takes no lock. Rows of workers killed without stopping are deleted once a week old. The table of
schema step 1, `workers` (keyed by host and pid), is the previous release's: left to its workers during a
rolling deploy.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import psycopg
import structlog

from bot.errors import StateError
from bot.state.postgres import Pool, postgres_error, query, where

__all__ = ["Heartbeat", "Process", "check_alive", "process_start"]

log = structlog.get_logger(__name__)

#: heartbeat rows this old belong to workers long dead: deleted when a worker starts
_FORGOTTEN: Final = timedelta(days=7)
#: another process's row with this host name and pid that beat within this is worth a warning at start
_RECENT: Final = timedelta(minutes=5)
#: False where there is no procfs (not Linux): a row's process is then judged by its pid alone
_PROCFS: Final = Path("/proc/self/stat").exists()


def process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat); None when no
    such process is running here (or there is no procfs). A pid reused by another process has another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields from 3 on follow the last ')'
    return int(stat[stat.rindex(b")") + 2:].split()[22 - 3])


@dataclass(frozen=True, slots=True)
class Process:
    """A worker process as its heartbeat row names it."""

    host: str
    pid: int
    start: int | None           # clock ticks since boot; None without procfs

    @classmethod
    def this(cls) -> Process:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start(pid))


class Heartbeat:
    """This process's row of `heartbeats`, from `open` to the end of its block."""

    def __init__(self, pool: Pool, process: Process, key: str) -> None:
        self._pool = pool
        self.process = process
        self.key = key

    @classmethod
    @asynccontextmanager
    async def open(cls, pool: Pool, *, process: Process | None = None) -> AsyncIterator[Heartbeat]:
        """Write this worker's row (its first beat); delete it on exit (a stopped worker is not alive).
        `process`: who the row is for (tests stand in for another container's worker); default this one."""
        process = process or Process.this()
        # named as bot.fleet names lease holders (holder_id): host:pid:random, another id for every process
        heartbeat = cls(pool, process, f"{process.host}:{process.pid}:{uuid.uuid4().hex[:8]}")
        await query(pool, "DELETE FROM heartbeats WHERE beat_at < now() - %s", (_FORGOTTEN,),
                    doing="forgetting old heartbeats")
        await heartbeat._warn_of_twins()
        await heartbeat.beat()
        try:
            yield heartbeat
        finally:
            with contextlib.suppress(StateError):     # unreachable database: the row goes stale instead
                await query(pool, "DELETE FROM heartbeats WHERE id = %s", (heartbeat.key,),
                            doing="deleting the worker heartbeat")

    async def beat(self) -> None:
        """Record that the worker is alive (the database's `now()`); StateError when the database fails."""
        process = self.process
        await query(self._pool, "INSERT INTO heartbeats (id, host, pid, pid_start, started_at, beat_at)"
                                " VALUES (%s, %s, %s, %s, now(), now())"
                                " ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
                    (self.key, process.host, process.pid, process.start), doing="the worker heartbeat")

    async def _warn_of_twins(self) -> None:
        """Warn when another process with this host name and pid beat lately: replicas sharing a host name
        (each container's worker is pid 1), or the previous worker of a container restarted after a crash."""
        process = self.process
        rows = await query(
            self._pool, "SELECT pid_start, extract(epoch FROM now() - beat_at)::float8 FROM heartbeats"
                        " WHERE host = %s AND pid = %s AND pid_start IS DISTINCT FROM %s AND beat_at > now() - %s"
                        " ORDER BY beat_at DESC",
            (process.host, process.pid, process.start, _RECENT), doing="reading the heartbeats")
        if rows:
            log.warning("worker.heartbeat_shared_host", host=process.host, pid=process.pid, others=len(rows),
                        beat_seconds_ago=round(rows[0][1], 1),
                        hint="another worker process has this host name and pid (another start time): give "
                             "each worker container its own hostname (never `hostname:` or `network_mode: "
                             "host` on a scaled service); after a crash, it is this container's previous worker")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                          # alive, under another user
    return True


def _running(pid: int, start: int | None) -> bool:
    """Whether the process that wrote a row with `pid` and `start` is still running on this host."""
    if start is None:                                 # written without procfs: the pid is all there is
        return not _PROCFS and _alive(pid)
    return process_start(pid) == start


def check_alive(url: str, *, max_age: float, host: str | None = None) -> str | None:
    """None when a worker process running on `host` (default: this one) beat within `max_age` seconds in
    the database at `url`; else why not (one line, never the password)."""
    host = host or socket.gethostname()
    try:
        with psycopg.connect(url, autocommit=True, prepare_threshold=None, connect_timeout=5) as conn:
            rows = conn.execute("SELECT pid, pid_start, extract(epoch FROM now() - beat_at)::float8"
                                " FROM heartbeats WHERE host = %s ORDER BY beat_at DESC", (host,)).fetchall()
    except psycopg.errors.UndefinedTable:
        return f"no worker has run on {where(url)} (no schema yet)"
    except psycopg.ProgrammingError:                # a URL libpq cannot parse (its message may quote it)
        return "BOT_STATE_URL is not a PostgreSQL URL libpq understands"
    except psycopg.Error as exc:
        return str(postgres_error(f"reading the heartbeats in {where(url)}", exc))
    if not rows:
        return f"no worker running on {host} with state {where(url)}"
    running = [(pid, age) for pid, start, age in rows if _running(pid, start)]
    if not running:
        pid = rows[0][0]
        reused = f" (pid {pid} is another process now)" if _alive(pid) else ""
        return f"the worker (pid {pid}) on {host} is gone{reused}"
    pid, age = running[0]
    if age > max_age:
        return f"the worker (pid {pid}) has not swept for {age:.0f} s (more than {max_age:g} s): stuck"
    return None
