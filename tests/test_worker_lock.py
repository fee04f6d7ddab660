"""One worker per SQLite database: a second worker refuses to start; a killed one leaves no stale lock."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import ConfigError
from bot.service import running
from bot.state.worker_lock import WorkerLock, check_alive, lock_path
from tests.conftest import REPO

_HOLD = """
import sys, time
from pathlib import Path
from bot.state.worker_lock import WorkerLock
lock = WorkerLock.acquire(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


def _refusal(state: Path, pid: int) -> str:
    return (f"another worker already uses {state} (pid {pid}); one worker per SQLite database — "
            "use PostgreSQL for several")


def test_a_second_open_is_refused_and_the_lock_is_reusable_after_release(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    first = WorkerLock.acquire(state)
    with pytest.raises(ConfigError) as refused:
        WorkerLock.acquire(state)
    assert str(refused.value) == _refusal(state, os.getpid())
    assert lock_path(state) == tmp_path / "state.db.worker.lock"
    first.release()
    first.release()                                                  # idempotent
    WorkerLock.acquire(state).release()


def test_another_process_holding_it_is_named_and_its_death_frees_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(state)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError) as refused:
            WorkerLock.acquire(state)
        assert str(refused.value) == _refusal(state, holder.pid)
        assert check_alive(state, max_age=60) is None
    finally:
        holder.send_signal(signal.SIGKILL)                           # no clean-up code runs
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()
    assert check_alive(state, max_age=60) == f"the worker (pid {holder.pid}) on {state} is gone"
    with WorkerLock.acquire(state):                                  # the kernel dropped the flock
        assert check_alive(state, max_age=60) is None


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_url=f"sqlite:///{tmp_path / 'state.db'}", rules_dir=REPO / "rules", http_port=0,
                    inventory_refresh=0, drain_seconds=0)


async def test_a_second_worker_on_the_same_database_refuses_to_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    async with running(settings, with_web=False, with_worker=True):
        with pytest.raises(ConfigError, match=r"^another worker already uses .*state\.db \(pid \d+\); one worker"):
            async with running(settings, with_web=False, with_worker=True):
                pass
        async with running(settings, with_web=True, with_worker=False) as web_only:    # web takes no lock
            assert web_only.port
    async with running(settings, with_web=False, with_worker=True):                     # released on exit
        pass


async def test_the_worker_beats_while_it_sweeps(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(update={"sweep_seconds": 0.05})
    async with running(settings, with_web=False, with_worker=True):
        path = lock_path(settings.state_path)
        os.utime(path, (0, 1000))
        deadline = time.monotonic() + 5
        while path.stat().st_mtime < time.time() - 5:
            assert time.monotonic() < deadline, "no heartbeat"
            await asyncio.sleep(0.02)
        assert check_alive(settings.state_path, max_age=1) is None
    assert check_alive(settings.state_path, max_age=1) is not None
