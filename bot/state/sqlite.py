"""SQLite state store (WAL): recorded events, holds, campaign records, rule windows, audit.

Group commit: transactions that are ready to run within the same few turns of the event loop share
one SQLite transaction, each inside its own SAVEPOINT (a failing one rolls back alone), and one COMMIT
ends them all. `transaction()` returns only after that COMMIT, so a caller never acts on an uncommitted write;
under load the COMMIT, the costliest statement of an event, is paid once per group instead of per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import structlog

from bot.errors import StaleRecord, StateError
from bot.events import Event
from bot.state.base import PASSIVE_KINDS, AuditRow, CampaignRecord, Hold, Pending
from bot.state.blocking import BlockingConnection
from bot.state.decisions import DecisionQueries
from bot.state.schema import MIGRATIONS, SCHEMA, db_time

if TYPE_CHECKING:
    from bot.state.protocol import StateStore, Transaction

__all__ = ["SqliteStateStore", "Tx"]

_BUSY_SECONDS: Final = 10.0
log = structlog.get_logger(__name__)
_WINDOW_CACHE: Final = 50_000     # ~1 KiB each: bounded well under 100 MiB
#: a WAL checkpoint every this many COMMITs (a few MB of WAL at most in between)
_CHECKPOINT_EVERY: Final = 100
_READ_CHUNK: Final = 500          # (rule, key) pairs per read: 1,000 parameters, far under SQLite's limit
_INSERT_CHUNK: Final = 500        # events per INSERT: 3,500 parameters, under SQLite's 32,766
#: transactions in one group at most: bounds how long the write lock is held and what one failed COMMIT undoes
GROUP_LIMIT: Final = 256

_ts = db_time   # the storage format, shared with the breaker queries


def _remember(cache: dict[tuple[str, str], dict[str, Any]], windows: Mapping[tuple[str, str], dict[str, Any]]) -> None:
    """Put committed window states into the cache; past `_WINDOW_CACHE` entries it forgets those it took
    first (the worker is SQLite's only writer, so a window forgotten is only read again: one `take_windows`
    statement for the batch that needs it). First in, first out rather than least recently used: one
    `dict.update` per COMMIT, where keeping an order of use cost about 4 µs per event."""
    cache.update(windows)
    excess = len(cache) - _WINDOW_CACHE
    if excess > 0:
        for key in list(itertools.islice(cache, excess)):
            del cache[key]


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_RECORD_COLUMNS: Final = ("campaign, bot_paused, pending, dry_paused, vendor_status, updated_at, version,"
                          " vendor_marker, sent_at, checked_at")


def _record(row: Any) -> CampaignRecord:
    return CampaignRecord(row[0], bool(row[1]), Pending(row[2]) if row[2] else None, bool(row[3]), row[4],
                          _dt(row[5]), row[6], row[7], _dt(row[8]), _dt(row[9]))


class Tx(DecisionQueries):
    """Reads and writes inside one SAVEPOINT of a group's SQLite transaction (see the module docstring).
    Obtain it from `SqliteStateStore.transaction()`."""

    def __init__(self, db: BlockingConnection, cache: dict[tuple[str, str], dict[str, Any]],
                 group: _Group) -> None:
        super().__init__(db)
        self._on_commit: list[Callable[[], Awaitable[None]]] = []
        self._cache = cache
        self._group = group
        self._windows: dict[tuple[str, str], dict[str, Any]] = {}
        self._windows_at: datetime | None = None
        #: windows `take_windows` found no row for (none is written before this transaction's own)
        self._absent: set[tuple[str, str]] = set()

    def on_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back)."""
        self._on_commit.append(callback)

    async def record_event(self, event: Event, now: datetime, *, body: bytes | None = None) -> bool:
        """Store the event (`body`: the JSON it was parsed from, if at hand); False when its id was recorded
        before (a redelivery)."""
        cursor = await self._db.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.type, event.source, str(event.campaign) if event.campaign else None,
             _ts(event.occurred_at), _ts(now), body.decode() if body is not None else event.model_dump_json()),
        )
        return cursor.rowcount == 1

    async def record_events(self, items: list[tuple[Event, bytes | None]], now: datetime) -> set[str]:
        """One multi-row `INSERT OR IGNORE ... RETURNING id` per 500 events: it returns the rows it inserted,
        so neither an id recorded before nor one repeated earlier in `items`."""
        at, recorded = _ts(now), set[str]()
        for start in range(0, len(items), _INSERT_CHUNK):
            chunk = items[start:start + _INSERT_CHUNK]
            rows = tuple(value for event, body in chunk for value in (
                event.id, event.type, event.source, str(event.campaign) if event.campaign else None,
                _ts(event.occurred_at), at, body.decode() if body is not None else event.model_dump_json()))
            async with self._db.execute("INSERT OR IGNORE INTO events VALUES "
                                        + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)) + " RETURNING id",
                                        rows) as cursor:
                recorded.update(row[0] for row in await cursor.fetchall())
        return recorded

    async def window(self, rule: str, key: str) -> dict[str, Any] | None:
        """A rule's window state for a key: this transaction's write, else its group's (not yet committed),
        else the cache, else the database."""
        if (rule, key) in self._windows:
            return self._windows[(rule, key)]
        if (rule, key) in self._group.windows:
            return self._group.windows[(rule, key)]
        cached = self._cache.get((rule, key))
        if cached is not None:
            return cached
        if (rule, key) in self._absent:
            return None
        row = await self._one("SELECT state FROM windows WHERE rule = ? AND key = ?", (rule, key))
        return orjson.loads(row[0]) if row else None

    async def take_windows(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any] | None]:
        """Read the windows of `keys` that are neither written in this group nor cached in one statement per
        500 (the worker is SQLite's only writer, so what is read joins the cache; those with no row are
        remembered as absent for this transaction), then give each as `window` would."""
        await self._read_missing(keys)
        mine, group, cache = self._windows, self._group.windows, self._cache
        taken: dict[tuple[str, str], dict[str, Any] | None] = {}
        for pair in keys:
            if pair in mine:
                taken[pair] = mine[pair]
            elif pair in group:
                taken[pair] = group[pair]
            else:
                state = cache.get(pair)
                if state is None and pair not in self._absent:      # read, then pushed out of the cache
                    state = await self.window(*pair)
                taken[pair] = state
        return taken

    async def _read_missing(self, keys: list[tuple[str, str]]) -> None:
        group, cache = self._group.windows, self._cache
        missing = sorted({k for k in keys if k not in self._windows and k not in group and k not in cache})
        for start in range(0, len(missing), _READ_CHUNK):
            chunk = missing[start:start + _READ_CHUNK]
            async with self._db.execute(
                "SELECT rule, key, state FROM windows WHERE (rule, key) IN (VALUES "
                + ", ".join(["(?, ?)"] * len(chunk)) + ")", tuple(part for pair in chunk for part in pair),
            ) as cursor:
                found = {(rule, key): orjson.loads(state) for rule, key, state in await cursor.fetchall()}
            _remember(cache, found)
            self._absent.update(pair for pair in chunk if pair not in found)

    async def set_window(self, rule: str, key: str, state: dict[str, Any], now: datetime) -> None:
        """Buffered: written once per group, in one statement, just before the COMMIT."""
        self._windows[(rule, key)] = state
        self._windows_at = now

    async def set_windows(self, states: Mapping[tuple[str, str], dict[str, Any]], now: datetime) -> None:
        if states:
            self._windows.update(states)
            self._windows_at = now

    async def held_or_paused(self) -> list[str]:
        """Campaigns holding any hold or paused by campaign-guard (Slack's `list`), sorted."""
        async with self._db.execute("SELECT campaign FROM holds UNION SELECT campaign FROM campaigns"
                                    " WHERE bot_paused = 1 OR dry_paused = 1 ORDER BY campaign") as cursor:
            return [r[0] for r in await cursor.fetchall()]

    async def held_by(self, owner: str) -> list[str]:
        """Campaigns on which `owner` holds a hold."""
        async with self._db.execute("SELECT campaign FROM holds WHERE owner = ? ORDER BY campaign", (owner,)) as cur:
            return [r[0] for r in await cur.fetchall()]

    async def alert_resolved(self, fingerprint: str, starts_at: str) -> bool:
        """Was the resolution of this alert occurrence (fingerprint + start) recorded?"""
        row = await self._one(
            "SELECT 1 FROM events WHERE type = 'alert.resolved' AND json_extract(body, '$.data.fingerprint') = ?"
            " AND json_extract(body, '$.data.starts_at') = ? LIMIT 1", (fingerprint, starts_at),
        )
        return row is not None

    async def holds(self, campaign: str) -> list[Hold]:
        async with self._db.execute(
            "SELECT campaign, owner, kind, reason, created_at, event_ids, details FROM holds"
            " WHERE campaign = ? ORDER BY created_at, owner", (campaign,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            Hold(r[0], r[1], r[2], r[3], datetime.fromisoformat(r[4]), tuple(json.loads(r[5])), json.loads(r[6]))
            for r in rows
        ]

    async def add_hold(self, hold: Hold) -> bool:
        """Place a hold; False when that owner already holds the campaign (nothing changes)."""
        cursor = await self._db.execute(
            "INSERT OR IGNORE INTO holds VALUES (?, ?, ?, ?, ?, ?, ?)",
            (hold.campaign, hold.owner, hold.kind, hold.reason, _ts(hold.created_at),
             json.dumps(list(hold.event_ids)), json.dumps(hold.details, default=str)),
        )
        return cursor.rowcount == 1

    async def remove_hold(self, campaign: str, owner: str, *, every_key: bool = False) -> bool:
        """Remove `owner`'s hold; `every_key`: also the per-key holds `owner@<key>` of the same rule."""
        if every_key:
            cursor = await self._db.execute(
                "DELETE FROM holds WHERE campaign = ? AND (owner = ? OR substr(owner, 1, ?) = ?)",
                (campaign, owner, len(owner) + 1, owner + "@"))
            return cursor.rowcount > 0
        cursor = await self._db.execute("DELETE FROM holds WHERE campaign = ? AND owner = ?", (campaign, owner))
        return cursor.rowcount == 1

    async def campaign(self, campaign: str) -> CampaignRecord:
        row = await self._one(f"SELECT {_RECORD_COLUMNS} FROM campaigns WHERE campaign = ?", (campaign,))
        return _record(row) if row is not None else CampaignRecord(campaign)

    async def set_campaign(self, record: CampaignRecord, now: datetime) -> CampaignRecord:
        """Store `record` if the stored version is still `record.version` (compare-and-set); returns it as
        stored (next version). StaleRecord when someone wrote the campaign since it was read."""
        cursor = await self._db.execute(
            f"INSERT INTO campaigns ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)"
            " ON CONFLICT (campaign) DO UPDATE SET"
            " bot_paused = excluded.bot_paused, pending = excluded.pending, dry_paused = excluded.dry_paused,"
            " vendor_status = excluded.vendor_status, updated_at = excluded.updated_at,"
            " version = campaigns.version + 1, vendor_marker = excluded.vendor_marker,"
            " sent_at = excluded.sent_at, checked_at = excluded.checked_at"
            " WHERE campaigns.version = ?",
            (record.campaign, int(record.bot_paused), record.pending.value if record.pending else None,
             int(record.dry_paused), record.vendor_status, _ts(now), record.vendor_marker,
             _ts(record.sent_at) if record.sent_at else None, _ts(record.checked_at) if record.checked_at else None,
             record.version),
        )
        if cursor.rowcount != 1:
            raise StaleRecord(f"campaign {record.campaign} changed since version {record.version} was read")
        return replace(record, version=record.version + 1, updated_at=now)

    async def add_override(self, campaign: str, *, by: str, now: datetime, until: datetime, rule: str = "*") -> None:
        """A person overrode the bot on this campaign: `rule` (or every rule: `*`) may not pause it before `until`."""
        await self._db.execute(
            "INSERT INTO overrides VALUES (?, ?, ?, ?, ?) ON CONFLICT (campaign, rule) DO UPDATE"
            " SET by = excluded.by, created_at = excluded.created_at, until = excluded.until",
            (campaign, rule, by, _ts(now), _ts(until)),
        )

    async def override(self, campaign: str, rule: str, now: datetime) -> tuple[str, datetime] | None:
        """(who, until) of an override still in force for this rule on this campaign, if any."""
        row = await self._one(
            "SELECT by, until FROM overrides WHERE campaign = ? AND rule IN (?, '*') AND until > ?"
            " ORDER BY until DESC LIMIT 1", (campaign, rule, _ts(now)),
        )
        return (row[0], datetime.fromisoformat(row[1])) if row else None

    async def add_inventory(self, campaign: str, sender: str, now: datetime) -> None:
        """Remember that `campaign` sends from `sender` (learned from an event)."""
        await self._db.execute("INSERT OR IGNORE INTO inventory VALUES (?, ?, ?)", (campaign, sender, _ts(now)))

    async def add_audit(self, row: AuditRow) -> None:
        await self._db.execute(
            "INSERT INTO audit (at, kind, campaign, rule, action, outcome, detail, event_ids, inputs)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_ts(row.at), row.kind, row.campaign, row.rule, row.action, row.outcome, row.detail,
             json.dumps(list(row.event_ids)), json.dumps(row.inputs, default=str)),
        )


async def _migrate(db: BlockingConnection) -> None:
    """Add the columns a database created by an older release lacks (schema.MIGRATIONS)."""
    for table, column, definition in MIGRATIONS:
        async with db.execute(f"PRAGMA table_info({table})") as cursor:
            present = {row[1] for row in await cursor.fetchall()}
        if column not in present:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


class _Group:
    """One open SQLite transaction shared by the `Tx`s that ran while it was open."""

    def __init__(self) -> None:
        self.committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.size = 0
        #: windows written by the group's finished transactions, flushed just before COMMIT
        self.windows: dict[tuple[str, str], dict[str, Any]] = {}
        self.windows_at: datetime | None = None

    def join(self, tx: Tx) -> None:
        """A transaction's SAVEPOINT was released: its writes now stand or fall with the group's."""
        self.size += 1
        at = tx._windows_at
        if at is not None:
            self.windows.update(tx._windows)
            self.windows_at = at if self.windows_at is None else max(self.windows_at, at)


class SqliteStateStore:
    """One connection, one writer at a time (an asyncio lock), WAL so readers (the CLI) never block it;
    transactions share COMMITs (group commit)."""

    def __init__(self, db: BlockingConnection) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        #: window states of recent (rule, key) pairs: the worker is the only writer, so the cache is exact
        self._windows: dict[tuple[str, str], dict[str, Any]] = {}
        self._group: _Group | None = None
        self._committers: set[asyncio.Task[None]] = set()
        #: groups committed (and rolled back) so far, for the benchmark and tests
        self.commits = 0
        self._path: str | None = None
        self._checkpointing: asyncio.Task[None] | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str) -> AsyncIterator[SqliteStateStore]:
        """Open (creating the file, its folder and the schema) and close on exit."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = BlockingConnection(str(path))
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")    # a COMMIT survives an OS crash or power loss
            await db.execute("PRAGMA busy_timeout=0")   # never block the loop: `_begin` waits instead
            await db.executescript(SCHEMA)
            await _migrate(db)
            if str(path) != ":memory:":             # checkpoints off the write path (see `_checkpoint`)
                await db.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            raise StateError(f"cannot open state database {path}: {exc}") from exc
        try:
            store = cls(db)
            store._path = None if str(path) == ":memory:" else str(path)
            yield store
        finally:
            await store._settle()
            await db.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A SAVEPOINT in the open group (BEGIN IMMEDIATE when there is none), rolled back alone when the
        block raises; returns once the group's COMMIT succeeded (StateError when it failed)."""
        async with self._lock:
            group = self._group
            if group is None:
                await self._begin()
                group = self._group = _Group()
                committer = asyncio.get_running_loop().create_task(self._commit_soon(group))
                self._committers.add(committer)
                committer.add_done_callback(self._committers.discard)
            tx = Tx(self._db, self._windows, group)
            await self._db.execute("SAVEPOINT tx")
            try:
                yield tx
                self._db.execute_now("RELEASE tx")
            except sqlite3.Error as exc:
                self._undo(group)
                raise StateError(f"state write failed: {exc}") from exc
            except BaseException:
                self._undo(group)
                raise
            group.join(tx)
            if group.size >= GROUP_LIMIT:
                await self._commit(group)
        await asyncio.shield(group.committed)     # a cancelled caller leaves the group's outcome alone
        for callback in tx._on_commit:
            await callback()

    def _undo(self, group: _Group) -> None:
        """Roll the failed transaction back to its SAVEPOINT; if SQLite already rolled everything back
        (it does on some errors, e.g. a full disk), the whole group failed."""
        try:
            self._db.execute_now("ROLLBACK TO tx")
            self._db.execute_now("RELEASE tx")
        except sqlite3.Error as exc:
            self._fail(group, exc)

    def _fail(self, group: _Group, exc: sqlite3.Error) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute_now("ROLLBACK")
        self._group = None
        group.committed.set_exception(StateError(f"state commit failed: {exc}"))
        group.committed.exception()               # retrieved: a group nobody awaits any more is no error

    async def _commit_soon(self, group: _Group) -> None:
        """Started with the group. Three turns of the loop (no timer: a caller never waits for load to
        arrive) let the handlers of deliveries already read off the socket join it, then this commits it."""
        for _ in range(3):
            await asyncio.sleep(0)
        async with self._lock:
            if self._group is group:
                await self._commit(group)

    async def _commit(self, group: _Group) -> None:
        """Write the group's windows and COMMIT (or ROLLBACK); called holding the lock, which it keeps until
        the COMMIT is over, even when its caller is cancelled meanwhile (nothing else may use the connection
        while it runs). The windows' upsert and the COMMIT run in a thread (`_write_and_commit`): with
        synchronous=FULL the COMMIT waits for the WAL's fsync, and the event loop goes on meanwhile
        (deliveries are read and parsed, the next group forms)."""
        self._group = None
        self.commits += 1
        if group.committed.done():
            return                                # failed already (see _undo)
        rows: list[tuple[str, str, str, str]] = []
        if group.windows and group.windows_at is not None:
            at = _ts(group.windows_at)
            rows = [(rule, key, orjson.dumps(state).decode(), at) for (rule, key), state in group.windows.items()]
        try:
            await _uncancelled(asyncio.to_thread(self._write_and_commit, rows))
        except sqlite3.Error as exc:
            self._fail(group, exc)
            return
        _remember(self._windows, group.windows)     # committed: the cache's newest entries
        group.committed.set_result(None)
        if self._path is not None and self.commits % _CHECKPOINT_EVERY == 0 and self._checkpointing is None:
            self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint(self._path))

    def _write_and_commit(self, windows: list[tuple[str, str, str, str]]) -> None:
        """In the commit's thread: the group's windows (sqlite3 lets go of the GIL while SQLite works, so the
        event loop reads and parses the next deliveries meanwhile), then the COMMIT."""
        if windows:
            self._db.executemany_now(
                "INSERT INTO windows VALUES (?, ?, ?, ?) ON CONFLICT (rule, key) DO UPDATE"
                " SET state = excluded.state, updated_at = excluded.updated_at", windows)
        self._db.execute_now("COMMIT")

    async def _checkpoint(self, path: str) -> None:
        """Copy the WAL back into the database on a connection of its own, in a thread, concurrently with
        the writer (PASSIVE: it never waits for it, nor makes it wait). SQLite's automatic checkpoint would
        run inside a COMMIT every ~4 MB of WAL, and the next transactions would wait for the database file's
        fsync (a webhook → decision p99 spike of tens of milliseconds). A failure is only logged: the next
        one tries again, and the WAL stays consistent meanwhile."""
        def run() -> None:
            connection = sqlite3.connect(path, isolation_level=None)
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()

        try:
            await asyncio.to_thread(run)
        except sqlite3.Error as exc:
            log.warning("state.checkpoint_failed", error=str(exc))
        finally:
            self._checkpointing = None

    async def _settle(self) -> None:
        """Commit the open group now (closing the store), and wait for a checkpoint under way."""
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        async with self._reading():
            pass
        # the committers left find nothing to commit; one cancelled by a shutting-down loop is no error
        await asyncio.gather(*self._committers, return_exceptions=True)

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[None]:
        """The lock, with any open group committed first: reads see committed state only."""
        async with self._lock:
            if self._group is not None:
                await self._commit(self._group)
            yield

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, yielding to the loop while another connection (the Slack outbox, the CLI)
        holds the write lock: blocking here would stop the very coroutine that is about to commit."""
        deadline = time.monotonic() + _BUSY_SECONDS
        delay = 0.0005
        while True:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise StateError(f"state database unavailable: {exc}") from exc
            except sqlite3.Error as exc:
                raise StateError(f"state database unavailable: {exc}") from exc
            await asyncio.sleep(delay)          # back off while the other writer finishes
            delay = min(delay * 2, 0.05)

    async def inventory(self) -> list[tuple[str, str]]:
        """Every (campaign, sender) pair learned from events."""
        async with self._reading(), self._db.execute("SELECT campaign, sender FROM inventory") as cursor:
            return [(r[0], r[1]) for r in await cursor.fetchall()]

    async def _campaigns(self, sql: str) -> list[str]:
        """The first column of a committed query's rows (campaign keys)."""
        async with self._reading(), self._db.execute(sql) as cursor:
            return [r[0] for r in await cursor.fetchall()]

    async def dry_paused_campaigns(self) -> list[str]:
        """Campaigns a dry run recorded as paused (carried into live mode at start)."""
        return await self._campaigns("SELECT campaign FROM campaigns WHERE dry_paused = 1 ORDER BY campaign")

    async def watched_campaigns(self) -> list[str]:
        """Campaigns holding an active hold or paused by campaign-guard: their vendor state is re-read."""
        passive = ", ".join(f"'{kind}'" for kind in sorted(PASSIVE_KINDS))
        return await self._campaigns(f"SELECT campaign FROM holds WHERE kind NOT IN ({passive})"
                                     " UNION SELECT campaign FROM campaigns WHERE bot_paused = 1 ORDER BY campaign")

    async def windows_where(self, rule: str, flag: str) -> list[tuple[str, dict[str, Any]]]:
        """(key, state) of `rule`'s windows whose state has a true `flag` (e.g. `active`), committed ones."""
        async with self._reading(), self._db.execute(
            "SELECT key, state FROM windows WHERE rule = ? AND json_extract(state, ?)", (rule, f"$.{flag}")
        ) as cursor:
            return [(r[0], orjson.loads(r[1])) for r in await cursor.fetchall()]

    async def audit_between(self, since: datetime, until: datetime, *, limit: int = 10_000) -> list[AuditRow]:
        """The newest `limit` rows of [since, until), oldest first (times sort as text: bot.state.schema.db_time)."""
        async with self._reading(), self._db.execute(
            "SELECT id, at, kind, campaign, rule, action, outcome, detail, event_ids, inputs FROM audit"
            " WHERE at >= ? AND at < ? ORDER BY id DESC LIMIT ?", (_ts(since), _ts(until), limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [AuditRow(datetime.fromisoformat(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], tuple(json.loads(r[8])),
                         json.loads(r[9]), id=r[0]) for r in reversed(rows)]

    async def events_between(self, event_type: str, since: datetime, until: datetime, *,
                             limit: int = 10_000) -> list[str]:
        """The latest `limit` events of that type that occurred in [since, until), oldest first."""
        async with self._reading(), self._db.execute(
            "SELECT body FROM events WHERE type = ? AND occurred_at >= ? AND occurred_at < ?"
            " ORDER BY occurred_at DESC, recorded_at DESC LIMIT ?", (event_type, _ts(since), _ts(until), limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [row[0] for row in reversed(rows)]

    async def pending_campaigns(self) -> list[str]:
        """Campaigns with an unfinished vendor action (reconciled at worker start)."""
        return await self._campaigns("SELECT campaign FROM campaigns WHERE pending IS NOT NULL ORDER BY campaign")

    async def audit(self, *, campaign: str | None = None, limit: int = 100) -> list[AuditRow]:
        """Newest last; filtered by campaign when given."""
        where, args = ("WHERE campaign = ?", [campaign]) if campaign else ("", [])
        async with self._reading(), self._db.execute(
            f"SELECT id, at, kind, campaign, rule, action, outcome, detail, event_ids, inputs FROM audit {where}"
            " ORDER BY id DESC LIMIT ?", (*args, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            AuditRow(datetime.fromisoformat(r[1]), r[2], r[3], r[4], r[5], r[6], r[7],
                     tuple(json.loads(r[8])), json.loads(r[9]), id=r[0])
            for r in reversed(rows)
        ]

    async def events(self, *, campaign: str | None = None) -> AsyncIterator[str]:
        """Recorded events as JSON lines, oldest first (for export and backtests)."""
        where, args = ("WHERE campaign = ?", (campaign,)) if campaign else ("", ())
        async with self._reading(), self._db.execute(
            f"SELECT body FROM events {where} ORDER BY occurred_at, recorded_at", args
        ) as cursor:
            rows = await cursor.fetchall()
        for row in rows:
            yield row[0]


if TYPE_CHECKING:
    def _keeps_the_protocol(store: SqliteStateStore, tx: Tx) -> tuple[StateStore, Transaction]:
        """mypy checks here that this implementation has every method of bot.state.protocol."""
        return store, tx


async def _uncancelled(work: Awaitable[None]) -> None:
    """Await `work` to its end even if the caller is cancelled meanwhile (then re-raise CancelledError)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()
