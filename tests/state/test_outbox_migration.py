"""An outbox created by the previous release (SQLite: no `incident` column, no incidents table) is brought up
to date when it opens, its queued messages kept; PostgreSQL's is schema step 5 (tests/state/test_open.py
checks every step applies)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.state.outbox import SqliteOutbox

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
_PREVIOUS = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE, target TEXT NOT NULL, payload TEXT NOT NULL,
    grp TEXT, status TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, due_at TEXT NOT NULL, done_at TEXT, result TEXT NOT NULL DEFAULT '');
CREATE INDEX outbox_due ON outbox (status, due_at);
CREATE TABLE outbox_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, outbox_id INTEGER NOT NULL, at TEXT NOT NULL,
    ok INTEGER NOT NULL, detail TEXT NOT NULL);
INSERT INTO outbox (key, target, payload, created_at, due_at)
    VALUES ('k1', 'channel', '{"channel": "C1", "text": "queued before the upgrade"}',
            '2026-11-30T08:00:00+00:00', '2026-11-30T08:00:00+00:00');
"""


async def test_an_outbox_of_the_previous_release_gains_incidents_and_keeps_its_queue(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.executescript(_PREVIOUS)
    async with SqliteOutbox.open(path) as outbox:
        [old] = await outbox.due(NOW)
        assert (old.key, old.payload["text"], old.incident) == ("k1", "queued before the upgrade", None)
        incident = await outbox.enqueue_incident("C1", "smartlead:7", {"channel": "C1", "text": "paused"}, now=NOW,
                                                 opens=True, closes=False)
        assert incident is not None and [i.incident for i in await outbox.items()] == [None, incident]
    async with SqliteOutbox.open(path) as outbox:       # opening again changes nothing
        assert [i.incident for i in await outbox.items()] == [None, incident]
    with sqlite3.connect(path) as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"outbox_by_incident", "slack_incidents_open"} <= indexes
