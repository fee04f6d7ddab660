"""SQLite: the WAL is checkpointed by the store itself, off the write path, every _CHECKPOINT_EVERY COMMITs."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.events import Event
from bot.state import sqlite as sqlite_store
from bot.state.sqlite import SqliteStateStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _in_database_file(path: Path, tmp: Path) -> int:
    """Events in the database file itself, WAL left aside: a copy of the file alone, opened on its own."""
    alone = tmp / "alone.db"
    shutil.copyfile(path, alone)
    with sqlite3.connect(alone) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        return conn.execute("SELECT count(*) FROM events").fetchone()[0] if "events" in tables else 0


async def test_the_store_checkpoints_the_wal_itself_every_so_many_commits(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStateStore.open(path) as store:
        for n in range(sqlite_store._CHECKPOINT_EVERY - 1):
            async with store.transaction() as tx:
                await tx.record_event(Event(id=f"e{n}", type="email.sent", source="smartlead", occurred_at=NOW,
                                            campaign="smartlead:1"), NOW)
        assert _in_database_file(path, tmp_path) == 0       # all in the WAL: SQLite's own checkpoint is off
        async with store.transaction() as tx:               # the 100th COMMIT starts one, in the background
            await tx.record_event(Event(id="last", type="email.sent", source="smartlead", occurred_at=NOW,
                                        campaign="smartlead:1"), NOW)
        if store._checkpointing is not None:
            await asyncio.wait_for(store._checkpointing, 10)
        assert _in_database_file(path, tmp_path) == sqlite_store._CHECKPOINT_EVERY
        assert store.commits == sqlite_store._CHECKPOINT_EVERY
