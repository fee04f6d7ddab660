"""Persistent outbox for Slack messages, in the state database: queued, delivered, retried, recorded.

Enqueueing is the only thing a decision waits for; delivery happens later (bot.slack.delivery), so
Slack being down never blocks or loses a decision. Every attempt is recorded in `outbox_attempts`.
Rows with a `grp` are delivered together as one message (shadow digests) once their `due_at` passed.
A `key` makes enqueueing idempotent (a command's reply is queued once, whatever the redeliveries).

Incidents (`slack_incidents`): the notices about one campaign in one channel, from the one that opened the
incident until the one that closed it, are one Slack message edited in place, with the history in its
thread (bot.slack.delivery). `enqueue_incident` files a notice under the campaign's open incident (opening
one when asked) in the same write; the first delivery of an incident records the message's `ts` with the
attempt (`record(posted=...)`), in one transaction, and an incident's items are handed out one at a time,
oldest first: a later notice is due only once every earlier one of its incident is settled, so it always
finds the `ts` it edits (or, when the earlier ones failed for good, posts the message itself).

`Outbox` is what the Slack code depends on; `SqliteOutbox` (here) and bot.state.pg_outbox's
`PostgresOutbox` implement it. The SQLite one uses its own connection to the state file (WAL): it never
takes the store's writer lock, so a notifier may enqueue from anywhere, even from a callback that runs
while a decision is being recorded.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiosqlite

from bot.errors import StateError

__all__ = ["TURN", "Attempt", "Incident", "Outbox", "OutboxItem", "OutboxSignals", "SqliteOutbox"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE, target TEXT NOT NULL, payload TEXT NOT NULL,
    grp TEXT, status TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, due_at TEXT NOT NULL, done_at TEXT, result TEXT NOT NULL DEFAULT '',
    incident INTEGER);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, due_at);
CREATE TABLE IF NOT EXISTS outbox_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, outbox_id INTEGER NOT NULL, at TEXT NOT NULL,
    ok INTEGER NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_attempts_item ON outbox_attempts (outbox_id, id);
CREATE TABLE IF NOT EXISTS slack_incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, campaign TEXT NOT NULL, opened_at TEXT NOT NULL,
    closed_at TEXT, opening TEXT NOT NULL, ts TEXT, posted_channel TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS slack_incidents_open ON slack_incidents (channel, campaign) WHERE closed_at IS NULL;
"""
#: Columns added since the outbox's first release: (table, column, definition), added to an older file at open
#: (as bot.state.sqlite does for the store's tables); then the indexes that need them.
_ADDED: Final = (("outbox", "incident", "INTEGER"),)
#: (every item, not only the queued ones: an incident's delivered notices are counted and its newest one looked up)
_ADDED_INDEXES: Final = "CREATE INDEX IF NOT EXISTS outbox_by_incident ON outbox (incident, id);"
_COLUMNS: Final = "id, key, target, payload, grp, status, attempts, created_at, due_at, done_at, result, incident"
#: An item's turn: outside any incident, or no earlier item of its incident still queued (SQL on `outbox`).
TURN: Final = ("(outbox.incident IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p WHERE p.incident = outbox.incident"
               " AND p.status = 'queued' AND p.id < outbox.id))")
_INCIDENT_COLUMNS: Final = ("i.id, i.channel, i.campaign, i.opened_at, i.closed_at, i.opening, i.ts, i.posted_channel,"
                            " (SELECT count(*) FROM outbox o WHERE o.incident = i.id AND o.status = 'sent')")


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message to Slack. target: `channel` (chat.postMessage) | `response_url` (a reply)."""

    id: int
    key: str | None
    target: str
    payload: dict[str, Any]
    group: str | None
    status: str                  # queued | sent | failed
    attempts: int
    created_at: datetime
    due_at: datetime
    done_at: datetime | None
    result: str                  # the last attempt's outcome (e.g. `ok ts=1712.0001`, `http 503`)
    incident: int | None = None  # the Slack incident it belongs to (`Outbox.enqueue_incident`)


@dataclass(frozen=True, slots=True)
class Attempt:
    outbox_id: int
    at: datetime
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Incident:
    """One campaign's trouble in one channel: one Slack message (`ts`, once posted), edited in place."""

    id: int
    channel: str                 # where its notices go, as configured (an id or a #name)
    campaign: str
    opened_at: datetime
    closed_at: datetime | None   # set when the notice that ends it was queued (the next one opens another)
    opening: dict[str, Any]      # the payload of the notice that opened it
    ts: str | None               # its message, once the first notice was posted
    posted_channel: str | None   # the channel id Slack answered that post with (what chat.update needs)
    sent: int                    # its notices delivered so far


class Outbox(Protocol):
    """Slack messages waiting to be sent, and the record of every attempt. Times are timezone-aware."""

    @property
    def changed(self) -> asyncio.Event:
        """Set whenever this outbox queues something (the deliverer of this process waits on it)."""
        ...

    async def enqueue(self, target: str, payload: dict[str, Any], *, now: datetime, key: str | None = None,
                      group: str | None = None, due_at: datetime | None = None) -> bool:
        """Queue one message (`target`: `channel` or `response_url`), due at `due_at` (default `now`), in
        digest `group` if given; False when `key` was queued before (nothing changes)."""
        ...

    async def enqueue_incident(self, channel: str, campaign: str, payload: dict[str, Any], *, now: datetime,
                               opens: bool, closes: bool, quiet: timedelta | None = None) -> int | None:
        """Queue a channel message in the open incident of (`channel`, `campaign`), in one write: with
        `opens`, one is opened when none is (or when the open one's newest notice is older than `quiet`: it
        is closed, and this one starts the next); with `closes`, the incident is closed after this message
        (the next opening notice starts another). Returns the incident's id; None when there is none to join
        (the message is queued on its own)."""
        ...

    async def incident(self, incident_id: int) -> Incident | None:
        """The incident, as stored now."""
        ...

    async def has(self, key: str) -> bool:
        """Was a message with this key queued (whatever became of it)?"""
        ...

    async def due(self, now: datetime, *, limit: int = 20) -> list[OutboxItem]:
        """At most `limit` queued items due at `now`, oldest first, for this outbox's deliverer to attempt.
        Where several processes share the outbox (PostgreSQL), each item is handed to one of them at a time:
        what `due` returns is claimed until `record`ed (see bot.state.pg_outbox)."""
        ...

    async def grouped(self, group: str) -> list[OutboxItem]:
        """The queued items of a digest group, oldest first (the ones this deliverer may send, as `due`)."""
        ...

    async def next_due(self) -> datetime | None:
        """When the earliest queued item this deliverer may send is due; None when there is none."""
        ...

    async def record(self, ids: list[int], *, now: datetime, ok: bool, detail: str,
                     retry_at: datetime | None = None, posted: tuple[str, str] | None = None) -> None:
        """Record one attempt for `ids`: sent (ok), queued again for `retry_at`, or failed for good. `posted`
        (channel id, ts): the message the attempt posted becomes its incident's, in the same write."""
        ...

    async def wait_settled(self, item_id: int) -> OutboxItem:
        """Wait until this outbox records the item sent or failed for good (bound it with asyncio.timeout)."""
        ...

    async def items(self, *, status: str | None = None) -> list[OutboxItem]:
        """Every item (with that status, if given), by id."""
        ...

    async def attempts(self, outbox_id: int | None = None) -> list[Attempt]:
        """Every recorded attempt (of that item, if given), in order."""
        ...


def _item(row: sqlite3.Row | tuple[Any, ...]) -> OutboxItem:
    return OutboxItem(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6],
                      datetime.fromisoformat(row[7]), datetime.fromisoformat(row[8]),
                      datetime.fromisoformat(row[9]) if row[9] else None, row[10], row[11])


def _incident(row: sqlite3.Row | tuple[Any, ...]) -> Incident:
    return Incident(row[0], row[1], row[2], datetime.fromisoformat(row[3]),
                    datetime.fromisoformat(row[4]) if row[4] else None, json.loads(row[5]), row[6], row[7], row[8])


class OutboxSignals(abc.ABC):
    """What every outbox does within its process: `changed` for its deliverer, and `wait_settled` woken by
    each `record` (`_recorded` tells the waiters)."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self._recorded = asyncio.Condition()
        self._generation = 0

    @abc.abstractmethod
    async def items(self, *, status: str | None = None) -> list[OutboxItem]:
        """Every item (with that status, if given), by id."""

    async def _notify_recorded(self) -> None:
        async with self._recorded:
            self._generation += 1
            self._recorded.notify_all()

    async def wait_settled(self, item_id: int) -> OutboxItem:
        """Wait until the item is sent or failed for good (bound it with asyncio.timeout)."""
        while True:
            generation = self._generation
            item = next(i for i in await self.items() if i.id == item_id)
            if item.status != "queued":
                return item
            async with self._recorded:
                await self._recorded.wait_for(functools.partial(self._changed_since, generation))

    def _changed_since(self, generation: int) -> bool:
        return self._generation != generation


class SqliteOutbox(OutboxSignals):
    """Outbox rows and attempts; `changed` is set whenever something is queued (the deliverer waits on it)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__()
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str) -> AsyncIterator[SqliteOutbox]:
        """Open the state database (the same file as SqliteStateStore), creating the outbox tables."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(str(path), isolation_level=None)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")     # as the state store: a queued notice survives a crash
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(_SCHEMA)
            await _migrate(db)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the outbox in {path}: {exc}") from exc
        try:
            yield cls(db)
        finally:
            await db.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    await self._db.execute("ROLLBACK")
                    raise
                await self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StateError(f"outbox write failed: {exc}") from exc

    async def enqueue(self, target: str, payload: dict[str, Any], *, now: datetime, key: str | None = None,
                      group: str | None = None, due_at: datetime | None = None) -> bool:
        """Queue one message; False when `key` was queued before (nothing changes)."""
        async with self._tx() as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO outbox (key, target, payload, grp, created_at, due_at) VALUES (?, ?, ?, ?, ?, ?)",
                (key, target, json.dumps(payload, default=str), group, _ts(now), _ts(due_at or now)),
            )
        added = cursor.rowcount == 1
        if added:
            self.changed.set()
        return added

    async def enqueue_incident(self, channel: str, campaign: str, payload: dict[str, Any], *, now: datetime,
                               opens: bool, closes: bool, quiet: timedelta | None = None) -> int | None:
        """Queue a message in the campaign's open incident (see `Outbox.enqueue_incident`); one transaction."""
        body = json.dumps(payload, default=str)
        async with self._tx() as db:
            async with db.execute(
                "SELECT i.id, (SELECT max(o.created_at) FROM outbox o WHERE o.incident = i.id) FROM slack_incidents i"
                " WHERE i.channel = ? AND i.campaign = ? AND i.closed_at IS NULL", (channel, campaign),
            ) as cursor:
                row = await cursor.fetchone()
            incident: int | None = row[0] if row else None
            if row and opens and quiet is not None and row[1] and datetime.fromisoformat(row[1]) < now - quiet:
                await db.execute("UPDATE slack_incidents SET closed_at = ? WHERE id = ?", (row[1], incident))
                incident = None
            if incident is None and opens:
                cursor = await db.execute(
                    "INSERT INTO slack_incidents (channel, campaign, opened_at, opening) VALUES (?, ?, ?, ?)",
                    (channel, campaign, _ts(now), body))
                incident = cursor.lastrowid
            await db.execute(
                "INSERT INTO outbox (target, payload, created_at, due_at, incident) VALUES ('channel', ?, ?, ?, ?)",
                (body, _ts(now), _ts(now), incident))
            if incident is not None and closes:
                await db.execute("UPDATE slack_incidents SET closed_at = ? WHERE id = ?", (_ts(now), incident))
        self.changed.set()
        return incident

    async def incident(self, incident_id: int) -> Incident | None:
        async with self._lock, self._db.execute(
            f"SELECT {_INCIDENT_COLUMNS} FROM slack_incidents i WHERE i.id = ?", (incident_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return _incident(row) if row else None

    async def has(self, key: str) -> bool:
        async with self._lock, self._db.execute("SELECT 1 FROM outbox WHERE key = ?", (key,)) as cursor:
            return await cursor.fetchone() is not None

    async def due(self, now: datetime, *, limit: int = 20) -> list[OutboxItem]:
        """Queued items whose time has come and whose turn it is (`TURN`), oldest first."""
        async with self._lock, self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE status = 'queued' AND due_at <= ? AND {TURN}"
            " ORDER BY due_at, id LIMIT ?", (_ts(now), limit),
        ) as cursor:
            return [_item(row) for row in await cursor.fetchall()]

    async def grouped(self, group: str) -> list[OutboxItem]:
        """Every queued item of a digest group, oldest first."""
        async with self._lock, self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE status = 'queued' AND grp = ? ORDER BY id", (group,)
        ) as cursor:
            return [_item(row) for row in await cursor.fetchall()]

    async def next_due(self) -> datetime | None:
        async with self._lock, self._db.execute(
            f"SELECT min(due_at) FROM outbox WHERE status = 'queued' AND {TURN}"
        ) as cursor:
            row = await cursor.fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    async def record(self, ids: list[int], *, now: datetime, ok: bool, detail: str,
                     retry_at: datetime | None = None, posted: tuple[str, str] | None = None) -> None:
        """Record one attempt for `ids`: sent (ok), queued again for `retry_at`, or failed for good; `posted`:
        the message of their incident, in the same transaction."""
        status = "sent" if ok else ("queued" if retry_at is not None else "failed")
        async with self._tx() as db:
            if ok and posted is not None:
                marks = ", ".join("?" * len(ids))
                await db.execute(
                    "UPDATE slack_incidents SET posted_channel = ?, ts = ? WHERE id IN"
                    f" (SELECT incident FROM outbox WHERE id IN ({marks}) AND incident IS NOT NULL)", (*posted, *ids))
            for item_id in ids:
                await db.execute("INSERT INTO outbox_attempts (outbox_id, at, ok, detail) VALUES (?, ?, ?, ?)",
                                 (item_id, _ts(now), int(ok), detail[:500]))
                await db.execute(
                    "UPDATE outbox SET status = ?, attempts = attempts + 1, result = ?, due_at = ?,"
                    " done_at = ? WHERE id = ?",
                    (status, detail[:500], _ts(retry_at or now), None if status == "queued" else _ts(now), item_id),
                )
        await self._notify_recorded()

    async def items(self, *, status: str | None = None) -> list[OutboxItem]:
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        async with self._lock, self._db.execute(f"SELECT {_COLUMNS} FROM outbox {where} ORDER BY id", args) as cur:
            return [_item(row) for row in await cur.fetchall()]

    async def attempts(self, outbox_id: int | None = None) -> list[Attempt]:
        where, args = ("WHERE outbox_id = ?", (outbox_id,)) if outbox_id is not None else ("", ())
        async with self._lock, self._db.execute(
            f"SELECT outbox_id, at, ok, detail FROM outbox_attempts {where} ORDER BY id", args
        ) as cursor:
            return [Attempt(r[0], datetime.fromisoformat(r[1]), bool(r[2]), r[3]) for r in await cursor.fetchall()]


async def _migrate(db: aiosqlite.Connection) -> None:
    """Add the columns an outbox created by an older release lacks, then their indexes."""
    for table, column, definition in _ADDED:
        async with db.execute(f"PRAGMA table_info({table})") as cursor:
            present = {row[1] for row in await cursor.fetchall()}
        if column not in present:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    await db.executescript(_ADDED_INDEXES)


if TYPE_CHECKING:
    def _keeps_the_protocol(outbox: SqliteOutbox) -> Outbox:
        """mypy checks here that SqliteOutbox has every method of `Outbox`."""
        return outbox
