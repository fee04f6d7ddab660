"""The state store's group commit: transactions ready in the same turn share one COMMIT, each returns only
after it, and a failing one rolls back alone."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.errors import StateError
from bot.state.base import AuditRow
from bot.state.sqlite import SqliteStateStore

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _row(n: int) -> AuditRow:
    return AuditRow(NOW, "decision", f"smartlead:{n}", None, "pause", "applied", f"row {n}")


def _committed(path: Path) -> set[str]:
    """What another connection (the CLI, a crash survivor) sees."""
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT detail FROM audit")}


async def _write(store: SqliteStateStore, path: Path, n: int, *, fail: bool = False) -> set[str]:
    async with store.transaction() as tx:
        await tx.add_audit(_row(n))
        if fail:
            raise RuntimeError("boom")
    return _committed(path)                 # visible to others the moment transaction() returns


async def test_concurrent_transactions_share_one_commit_and_return_after_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStateStore.open(path) as store:
        seen = await asyncio.gather(*(_write(store, path, n) for n in range(20)))
        assert store.commits == 1
        for n, visible in enumerate(seen):
            assert f"row {n}" in visible
        assert _committed(path) == {f"row {n}" for n in range(20)}


async def test_sequential_transactions_commit_each(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStateStore.open(path) as store:
        for n in range(3):
            assert f"row {n}" in await _write(store, path, n)
        assert store.commits == 3


async def test_a_failing_transaction_rolls_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStateStore.open(path) as store:
        results = await asyncio.gather(*(_write(store, path, n, fail=n == 3) for n in range(6)),
                                       return_exceptions=True)
        assert isinstance(results[3], RuntimeError)
        assert store.commits == 1
        assert _committed(path) == {f"row {n}" for n in range(6) if n != 3}


async def test_a_window_written_in_the_group_is_read_by_the_next_transaction(tmp_path: Path) -> None:
    async with SqliteStateStore.open(tmp_path / "state.db") as store:
        async def bump() -> None:
            async with store.transaction() as tx:
                state = await tx.window("rule", "key") or {"n": 0}
                await tx.set_window("rule", "key", {"n": state["n"] + 1}, NOW)

        await asyncio.gather(*(bump() for _ in range(10)))
        assert store.commits == 1
        async with store.transaction() as tx:
            assert await tx.window("rule", "key") == {"n": 10}
    async with SqliteStateStore.open(tmp_path / "state.db") as store, store.transaction() as tx:
        assert await tx.window("rule", "key") == {"n": 10}      # from disk, not from the cache


async def test_a_failed_commit_fails_every_transaction_of_the_group(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStateStore.open(path) as store:
        async def poisoned() -> None:
            async with store.transaction() as tx:
                # deferred: only COMMIT checks it, so the whole group's COMMIT fails
                await tx._db.execute("PRAGMA defer_foreign_keys = ON")
                await tx._db.execute("CREATE TEMP TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY)")
                await tx._db.execute("CREATE TEMP TABLE IF NOT EXISTS c (p INTEGER REFERENCES p (id))")
                await tx._db.execute("INSERT INTO c VALUES (42)")

        await store._db.execute("PRAGMA foreign_keys = ON")
        results = await asyncio.gather(_write(store, path, 1), poisoned(), _write(store, path, 2),
                                       return_exceptions=True)
        assert all(isinstance(r, StateError) for r in results), results
        assert _committed(path) == set()
        assert "row 3" in await _write(store, path, 3)          # the next group starts clean


async def test_reads_see_committed_state(tmp_path: Path) -> None:
    async with SqliteStateStore.open(tmp_path / "state.db") as store:
        writer = asyncio.ensure_future(_write(store, tmp_path / "state.db", 1))
        await asyncio.sleep(0)              # the writer's transaction is in the open group, not committed
        rows = await store.audit()
        assert [r.detail for r in rows] == ["row 1"]
        await writer


async def test_a_group_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.state.sqlite.GROUP_LIMIT", 4)
    path = tmp_path / "state.db"
    async with SqliteStateStore.open(path) as store:
        await asyncio.gather(*(_write(store, path, n) for n in range(10)))
        assert store.commits == 3           # 4 + 4 + 2
