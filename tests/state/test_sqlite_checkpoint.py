"""SQLite: the WAL is checkpointed by the store itself, off the write path, every _CHECKPOINT_EVERY COMMITs."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.events import Event
from bot.state import sqlite as sqlite_store
from bot.state.sqlite import SqliteStateStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _frames(path: Path) -> tuple[int, int]:
    """(frames in the WAL, frames of it already copied into the database) as a passive checkpoint sees them
    from another connection (which copies nothing new while the store's own connection has nothing open)."""
    with sqlite3.connect(path) as conn:
        _, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return log, done


async def test_the_store_checkpoints_the_wal_itself_and_never_inside_a_commit(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStateStore.open(path) as store:
        with sqlite3.connect(path) as conn:        # SQLite's own checkpoint inside COMMIT is off
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000    # (a new connection's)
        for n in range(sqlite_store._CHECKPOINT_EVERY):
            async with store.transaction() as tx:
                await tx.record_event(Event(id=f"e{n}", type="email.sent", source="smartlead", occurred_at=NOW,
                                            campaign="smartlead:1"), NOW)
        checkpoint = store._checkpointing
        assert checkpoint is not None                # started by the 100th COMMIT, in the background
        await asyncio.wait_for(checkpoint, 10)
        assert store._checkpointing is None
        log, done = _frames(path)
        assert log > 0 and done == log               # everything committed so far is in the database file
        assert store.commits == sqlite_store._CHECKPOINT_EVERY
