"""Opening the state BOT_STATE_URL names (bot.state.open): several workers on one PostgreSQL database, their
heartbeat rows and `campaign-guard healthcheck`, and `campaign-guard db upgrade` on either database."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from bot import cli
from bot.config import Settings
from bot.log import configure_logging
from bot.service import running
from bot.state.open import check_worker
from bot.state.pg_schema import MIGRATIONS
from bot.state.pg_workers import process_start
from tests.conftest import REPO

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("BOT_") and name != "BOT_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "configure_logging", functools.partial(configure_logging, cache=False))


def _settings(state_url: str) -> Settings:
    return Settings(state_url=state_url, rules_dir=REPO / "rules", http_port=0, inventory_refresh=0,
                    drain_seconds=0)


def _dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


async def test_workers_share_a_postgresql_database_and_beat_in_it(url: str) -> None:
    settings = _settings(url).model_copy(update={"sweep_seconds": 0.05})
    assert "no worker has run on" in (check_worker(settings, max_age=60) or "")
    async with running(settings, with_web=False, with_worker=True) as first, \
            running(settings, with_web=False, with_worker=True) as second:       # no worker lock
        assert first.store is not None and second.store is not None
        async with first.store.transaction() as tx:
            await tx.add_inventory("smartlead:1", "ann@acme.com", NOW)
        assert await second.store.inventory() == [("smartlead:1", "ann@acme.com")]
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("UPDATE heartbeats SET beat_at = now() - interval '1 hour'")
            assert "has not swept for" in (check_worker(settings, max_age=60) or "")
            deadline = time.monotonic() + 5
            while check_worker(settings, max_age=60) is not None:               # the next sweep's beat
                assert time.monotonic() < deadline, "no heartbeat"
                await asyncio.sleep(0.02)
    assert "no worker running on" in (check_worker(settings, max_age=60) or "")  # the rows went with them


def test_healthcheck_on_postgresql(url: str, cli_env: None, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BOT_STATE_URL", url)
    assert cli.main(["healthcheck"]) == 1
    assert "no worker has run on" in capsys.readouterr().err                    # no schema yet
    assert cli.main(["db", "upgrade"]) == 0
    capsys.readouterr()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO heartbeats VALUES ('dead', %s, %s, 1, now(), now())", (socket.gethostname(),
                                                                                     _dead_pid()))
        assert cli.main(["healthcheck"]) == 1
        assert "is gone" in capsys.readouterr().err
        conn.execute("INSERT INTO heartbeats VALUES ('this', %s, %s, %s, now(), now())",
                     (socket.gethostname(), os.getpid(), process_start(os.getpid())))
        assert cli.main(["healthcheck"]) == 0
        assert capsys.readouterr().out.startswith("worker alive on 127.0.0.1:")
        conn.execute("UPDATE heartbeats SET beat_at = now() - interval '10 minutes'")
        assert cli.main(["healthcheck", "--max-age", "60"]) == 1
        assert "has not swept for" in capsys.readouterr().err


def test_db_upgrade_creates_and_upgrades_either_database(
    url: str, cli_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BOT_STATE_URL", url)
    for _ in range(2):                                                          # the second run changes nothing
        assert cli.main(["db", "upgrade"]) == 0
        assert capsys.readouterr().out.endswith(f": schema version {len(MIGRATIONS)}\n")
    assert cli.main(["audit"]) == 0
    assert capsys.readouterr().out == "no audit records\n"
    monkeypatch.setenv("BOT_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    assert cli.main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out == f"SQLite state database {tmp_path / 'state.db'}: up to date\n"
    assert (tmp_path / "state.db").exists()


def test_an_unreachable_postgresql_is_one_line(cli_env: None, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("BOT_STATE_URL", f"postgresql://bot:s3cret-pw@127.0.0.1:{port}/state?connect_timeout=1")
    assert cli.main(["db", "upgrade"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"campaign-guard: connecting to the state database 127.0.0.1:{port}/state failed: ")
    assert "s3cret-pw" not in line
