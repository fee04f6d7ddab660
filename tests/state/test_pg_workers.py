"""Worker heartbeats in PostgreSQL (bot.state.pg_workers) where every worker is pid 1 (containers).

Each scenario runs against a real PostgreSQL database. A container's worker is stood in for by a
`Process(host, pid, start)`: replicas sharing a host name are rows with that host name, this test
process's pid (the pid /proc shows here, as pid 1 is in each container) and different start times.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.state.pg_schema import upgrade
from bot.state.pg_workers import Heartbeat, Process, check_alive, process_start
from bot.state.postgres import Pool, open_pool, where
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times need procfs")

HOST = "worker-replica"           # what Compose would give every replica if `hostname:` were set


@pytest.fixture
async def pool(url: str) -> AsyncIterator[Pool]:
    async with open_pool(url, max_size=3) as opened:
        await upgrade(opened)
        yield opened


def _this(host: str = HOST) -> Process:
    """This test process, as its container's worker (the process the health check runs beside)."""
    start = process_start(os.getpid())
    assert start is not None
    return Process(host, os.getpid(), start)


def _other_container(process: Process, *, later: int = 1) -> Process:
    """Another container's worker: the same host name and pid, another start time."""
    assert process.start is not None
    return Process(process.host, process.pid, process.start + later)


def _stall(url: str, heartbeat: Heartbeat) -> None:
    """The worker of `heartbeat` stopped beating ten minutes ago (stuck)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE heartbeats SET beat_at = now() - interval '10 minutes' WHERE id = %s",
                     (heartbeat.key,))


def _rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT host, pid, pid_start FROM heartbeats ORDER BY pid_start").fetchall()


async def test_a_live_replica_with_the_same_host_name_does_not_hide_a_stuck_one(url: str, pool: Pool) -> None:
    this = _this()
    async with Heartbeat.open(pool, process=this) as stuck, \
            Heartbeat.open(pool, process=_other_container(this)) as live:
        assert len(_rows(url)) == 2                                     # a row each, not one shared
        assert check_alive(url, max_age=60, host=HOST) is None
        _stall(url, stuck)
        await live.beat()
        problem = check_alive(url, max_age=60, host=HOST) or ""
        assert f"the worker (pid {this.pid}) has not swept for" in problem and "stuck" in problem
        await stuck.beat()                                              # it comes back
        assert check_alive(url, max_age=60, host=HOST) is None
        _stall(url, live)                                               # the other replica's trouble is its own
        assert check_alive(url, max_age=60, host=HOST) is None


async def test_a_replica_stopping_deletes_only_its_own_row(url: str, pool: Pool) -> None:
    this = _this()
    async with Heartbeat.open(pool, process=this):
        async with Heartbeat.open(pool, process=_other_container(this)):
            assert check_alive(url, max_age=60, host=HOST) is None
        assert _rows(url) == [(HOST, this.pid, this.start)]
        assert check_alive(url, max_age=60, host=HOST) is None
    assert "no worker running on worker-replica" in (check_alive(url, max_age=60, host=HOST) or "")


_OLD_WORKER = """
import asyncio, os, sys
from bot.state.pg_workers import Heartbeat, Process, process_start
from bot.state.postgres import open_pool

async def main() -> None:
    url, host, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    async with open_pool(url, max_size=1) as pool, \\
            Heartbeat.open(pool, process=Process(host, pid, process_start(os.getpid()))):
        print("beating", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_restarted_container_is_not_alive_on_its_predecessors_row(
        url: str, pool: Pool, logs: list[dict[str, Any]]) -> None:
    """The container's first worker (a real process, its own start time) beats and is SIGKILLed: its row
    stays, fresh. The restarted container's pid 1 (this process: the same pid, a later start) is alive,
    but it is not that worker: unhealthy until its own worker writes its row."""
    this = _this()
    old = await asyncio.create_subprocess_exec(sys.executable, "-c", _OLD_WORKER, url, HOST, str(this.pid),
                                               cwd=REPO, stdout=asyncio.subprocess.PIPE)
    try:
        assert old.stdout is not None
        assert await asyncio.wait_for(old.stdout.readline(), 30) == b"beating\n"
        old_start = process_start(old.pid)
        assert old_start is not None and old_start != this.start
        old.send_signal(signal.SIGKILL)
        await old.wait()
    finally:
        if old.returncode is None:
            old.kill()
            await old.wait()
    assert _rows(url) == [(HOST, this.pid, old_start)]                 # killed: its row stays, fresh
    problem = check_alive(url, max_age=60, host=HOST) or ""
    assert problem == f"the worker (pid {this.pid}) on {HOST} is gone (pid {this.pid} is another process now)", problem

    async with Heartbeat.open(pool, process=this):                      # the new worker connects
        assert check_alive(url, max_age=60, host=HOST) is None
    [warning] = [e for e in logs if e["event"] == "worker.heartbeat_shared_host"]
    assert warning["log_level"] == "warning" and warning["host"] == HOST and warning["pid"] == this.pid
    assert "give each worker container its own hostname" in warning["hint"]


async def test_no_warning_without_another_recent_process_of_the_same_host_and_pid(
        url: str, pool: Pool, logs: list[dict[str, Any]]) -> None:
    this = _this()
    async with Heartbeat.open(pool, process=Process("elsewhere", this.pid, 12345)) as elsewhere, \
            Heartbeat.open(pool, process=this), Heartbeat.open(pool, process=this):
        pass                                    # another host; two workers of this very process (tests do that)
    old = _other_container(this, later=-1)
    async with Heartbeat.open(pool, process=old) as dead:
        with psycopg.connect(url, autocommit=True) as conn:               # its last beat long ago
            conn.execute("UPDATE heartbeats SET beat_at = now() - interval '1 hour' WHERE id = %s", (dead.key,))
        async with Heartbeat.open(pool, process=this):
            pass
    assert elsewhere.key != dead.key
    assert [e for e in logs if e["event"] == "worker.heartbeat_shared_host"] == []


async def test_a_reused_pid_or_a_dead_one_is_gone_and_a_week_old_row_is_forgotten(url: str, pool: Pool) -> None:
    this = _this(host="h")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()                                                  # reaped: its pid runs nothing now
    async with Heartbeat.open(pool, process=Process("h", child.pid, 1)):
        assert check_alive(url, max_age=60, host="h") == f"the worker (pid {child.pid}) on h is gone"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO heartbeats VALUES ('h:1:old', 'h', 1, 1, now(), now() - interval '8 days')")
    async with Heartbeat.open(pool, process=this):
        assert _rows(url) == [("h", this.pid, this.start)]
    assert check_alive(url, max_age=60, host="h") == f"no worker running on h with state {where(url)}"


def test_process_start_reads_field_22_whatever_the_command_name() -> None:
    """comm may hold spaces and parentheses; the start time of a process does not change with it."""
    code = ("import os, sys; from bot.state.pg_workers import process_start as s; a = s(os.getpid());"
            " open('/proc/self/comm', 'w').write('x) (y z'); print(a, s(os.getpid()), os.getpid(),"
            " open('/proc/self/stat').read())")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    before, after, pid, stat = done.stdout.split(" ", 3)
    assert "(x) (y z)" in stat and before == after == stat.rsplit(")", 1)[1].split()[19]
    assert process_start(os.getpid()) == int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    assert process_start(int(pid)) is None                              # exited
