"""PostgreSQL state store: the state a fleet of workers shares, behind bot.state.protocol (psycopg 3, async pool).

Isolation. Each `transaction()` is one PostgreSQL transaction at READ COMMITTED, made serializable for what
the bot reads and then writes by transaction-level advisory locks, each taken on the transaction's first
touch of its key, before the first read:
- a campaign (its holds, record and overrides): `campaign`, key;
- a rule's window: its row's lock (`SELECT ... FOR UPDATE`: the lock and the read in one round trip, the hot
  path), and `window`, rule, key while the row does not exist yet; windows a transaction sets are written
  in one upsert just before its COMMIT;
- a vendor's pause log (the blast-radius breaker counts, then logs): `breaker`, vendor;
- the parked decisions (listed, then decided): `pending`, one lock for all;
- the campaigns one owner holds (`held_by`, and `add_hold` by that owner): `owner`, owner;
- an alert occurrence (`alert_resolved`, and recording its `alert.resolved` event): `alert`, fingerprint,
  start.
A lock is held until commit or rollback, and READ COMMITTED gives every statement a fresh snapshot: a
transaction touching a key waits for the one holding it to end, then reads everything it committed. Two
transactions sharing a key run one after the other; others run side by side. What no key covers is an
append or an idempotent insert (an event deduplicates on its primary key: a concurrent duplicate waits for
the first insert's outcome; inventory; audit rows) or a listing of committed state (`held_or_paused`).
Locks taken in opposite orders may deadlock: PostgreSQL aborts one of the transactions (after
`deadlock_timeout`) and it raises StateError, which the worker retries like any storage failure.

Why not SERIALIZABLE: a serialization failure can strike any statement of the block, which the store cannot
replay (it is the caller's code), and the hot keys (a vendor-wide window, a campaign in a bounce spike)
would fail all the time under concurrency; with locks, transactions wait instead of failing. Why advisory
locks rather than row locks: the rows may not exist yet (no holds, a record never stored); windows take the
row lock when the row exists, since a window is read on every event a rule listens for.

`set_campaign` is a compare-and-set in one statement (an UPDATE on the version, or an INSERT of version 1
that does nothing on a conflict), safe on its own even without the campaign lock.

PgBouncer in transaction mode: nothing outlives a transaction. No session settings, no session advisory
locks, no LISTEN, no server-side prepared statements (`prepare_threshold=None`); the isolation level is
named in each BEGIN. `transaction()` returns after COMMIT (durable with the server's `synchronous_commit`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, LiteralString, TypeAlias

import orjson
import psycopg
from psycopg import IsolationLevel
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from bot.errors import ConfigError, StaleRecord, StateError
from bot.events import Event
from bot.state.base import PASSIVE_KINDS, AuditRow, CampaignRecord, Hold, Pending, PendingDecision
from bot.state.pg_schema import upgrade

if TYPE_CHECKING:
    from bot.state.protocol import StateStore, Transaction

__all__ = ["Pool", "PostgresStateStore", "PostgresTx", "open_pool", "postgres_error", "query", "where"]

Connection: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]
Pool: TypeAlias = AsyncConnectionPool[Connection]

#: how long a connection attempt may take, unless BOT_STATE_URL says (`?connect_timeout=`); libpq's own
#: default is to wait as long as TCP does
_CONNECT_SECONDS: Final = 10
_RECORD_COLUMNS: Final = ("campaign, bot_paused, pending, dry_paused, vendor_status, updated_at, version,"
                          " vendor_marker, sent_at, checked_at")
_HOLD_COLUMNS: Final = "campaign, owner, kind, reason, created_at, event_ids, details"


def where(url: str) -> str:
    """`host:port/dbname` of a PostgreSQL URL: safe in messages (no user, no password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparsable BOT_STATE_URL)"
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def postgres_error(doing: str, exc: psycopg.Error) -> StateError:
    """The StateError for a failed statement: what failed and the server's first line (never the URL)."""
    lines = str(exc).strip().splitlines()
    return StateError(f"{doing} failed: {type(exc).__name__}" + (f": {lines[0]}" if lines else ""))


async def _configure(conn: Connection) -> None:
    # client-side only: psycopg names the level in every BEGIN (no SET: PgBouncer would leak it)
    await conn.set_isolation_level(IsolationLevel.READ_COMMITTED)
    set_json_loads(orjson.loads, conn)      # rule windows are read by the hundred per batch


@asynccontextmanager
async def open_pool(url: str, *, max_size: int) -> AsyncIterator[Pool]:
    """A pool of autocommit connections fit for PgBouncer's transaction mode, closed on exit. StateError
    with the server's reason (never the password) when a first connection fails; ConfigError when `url`
    cannot be parsed."""
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError:        # its message may quote the URL, password included
        raise ConfigError("BOT_STATE_URL is not a PostgreSQL URL libpq understands") from None
    options: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}
    if "connect_timeout" not in given:
        options["connect_timeout"] = _CONNECT_SECONDS
    pool: Pool = AsyncConnectionPool(url, min_size=1, max_size=max_size, open=False, configure=_configure,
                                     name="campaign-guard", kwargs=options)
    try:
        # one connection first: its error says why (the pool's would only say it timed out)
        await (await psycopg.AsyncConnection.connect(url, **options)).close()
        await pool.open(wait=True, timeout=2 * _CONNECT_SECONDS)
    except psycopg.Error as exc:
        await pool.close()
        raise postgres_error(f"connecting to the state database {where(url)}", exc) from exc
    try:
        yield pool
    finally:
        await pool.close()


async def query(pool: Pool, sql: LiteralString, args: Sequence[Any] | Mapping[str, Any] = (), *,
                doing: str = "a state query") -> list[tuple[Any, ...]]:
    """Run one statement on a pooled connection (autocommit: committed state only) and return its rows
    (none for a statement without RETURNING); StateError naming `doing` when it fails."""
    try:
        async with pool.connection() as conn:
            cursor = await conn.execute(sql, args)
            return await cursor.fetchall() if cursor.description else []
    except psycopg.Error as exc:
        raise postgres_error(doing, exc) from exc


def _lock_id(key: tuple[str, ...]) -> int:
    """The 64-bit advisory lock key of a store key (a collision only makes two keys wait for each other)."""
    digest = hashlib.blake2b("\x00".join(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _record(row: Sequence[Any]) -> CampaignRecord:
    return CampaignRecord(row[0], row[1], Pending(row[2]) if row[2] else None, row[3], row[4], _utc(row[5]),
                          row[6], row[7], _utc(row[8]), _utc(row[9]))


def _hold(row: Sequence[Any]) -> Hold:
    return Hold(row[0], row[1], row[2], row[3], row[4].astimezone(UTC), tuple(json.loads(row[5])), json.loads(row[6]))


#: the columns of `events`, in table order (`_event_row`)
_EVENT_COLUMNS: Final = ("id", "type", "source", "campaign", "occurred_at", "recorded_at", "body")


def _event_row(event: Event, now: datetime, body: bytes | None) -> tuple[Any, ...]:
    """The event's `events` row: `body`, the JSON it was parsed from, is kept verbatim when at hand."""
    return (event.id, event.type, event.source, str(event.campaign) if event.campaign else None,
            event.occurred_at, now, body.decode() if body is not None else event.model_dump_json())


def _json_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as one JSON array of objects, for `json_to_recordset`: one parameter for a batch, serialized by
    orjson (psycopg's text arrays escape each element with a regular expression: most of a batch's cost)."""
    return orjson.dumps([dict(zip(columns, row, strict=True)) for row in rows]).decode()


class PostgresTx:
    """Reads and writes inside one PostgreSQL transaction, under the advisory locks of the keys it touches
    (see the module docstring). Obtain it from `PostgresStateStore.transaction()`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._locked: set[tuple[str, ...]] = set()
        #: windows set by this transaction, written by `flush` before the commit: (rule, key) → (state, now)
        self._windows: dict[tuple[str, str], tuple[dict[str, Any], datetime]] = {}
        #: windows `take_windows` locked and read (None: no such window yet)
        self._read: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._on_commit: list[Callable[[], Awaitable[None]]] = []

    def on_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back)."""
        self._on_commit.append(callback)

    async def _run(self, sql: LiteralString, args: Sequence[Any] = ()) -> psycopg.AsyncCursor[tuple[Any, ...]]:
        try:
            return await self._conn.execute(sql, args)
        except psycopg.Error as exc:
            raise postgres_error("a state query", exc) from exc

    async def _one(self, sql: LiteralString, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return await (await self._run(sql, args)).fetchone()

    async def _all(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await (await self._run(sql, args)).fetchall()

    async def _lock(self, *key: str) -> None:
        """Hold `key`'s lock until this transaction ends (taken once; later calls cost nothing)."""
        if key not in self._locked:
            await self._run("SELECT pg_advisory_xact_lock(%s::bigint)", (_lock_id(key),))
            self._locked.add(key)

    async def record_event(self, event: Event, now: datetime, *, body: bytes | None = None) -> bool:
        """Store the event; False when its id was recorded before. A concurrent transaction recording the
        same id waits for this one's outcome (the primary key), then records it or returns False."""
        if event.type == "alert.resolved":
            fingerprint, starts_at = event.data.get("fingerprint"), event.data.get("starts_at")
            if isinstance(fingerprint, str) and isinstance(starts_at, str):
                await self._lock("alert", fingerprint, starts_at)
        cursor = await self._run("INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                                 _event_row(event, now, body))
        return cursor.rowcount == 1

    async def record_events(self, items: list[tuple[Event, bytes | None]], now: datetime) -> set[str]:
        """One INSERT for the lot (an alert resolution alone first, under its occurrence's lock: see
        `record_event`). Rows are inserted in id order, so two transactions recording overlapping batches
        wait for each other on the primary key in one order (no deadlock)."""
        recorded: set[str] = set()
        rows: dict[str, tuple[Any, ...]] = {}
        for event, body in items:
            if event.id in rows or event.id in recorded:
                continue
            if event.type == "alert.resolved":
                if await self.record_event(event, now, body=body):
                    recorded.add(event.id)
                continue
            rows[event.id] = _event_row(event, now, body)
        if rows:
            found = await self._all(
                "INSERT INTO events SELECT x.id, x.type, x.source, x.campaign, x.occurred_at, x.recorded_at, x.body"
                " FROM json_to_recordset(%s::json) AS x(id text, type text, source text, campaign text,"
                " occurred_at timestamptz, recorded_at timestamptz, body text)"
                " ORDER BY x.id ON CONFLICT (id) DO NOTHING RETURNING id",
                (_json_rows(_EVENT_COLUMNS, [rows[key] for key in sorted(rows)]),))
            recorded.update(row[0] for row in found)
        return recorded

    async def alert_resolved(self, fingerprint: str, starts_at: str) -> bool:
        """Was the resolution of this alert occurrence recorded? (Under the occurrence's lock: a resolution
        being recorded meanwhile is waited for.)"""
        await self._lock("alert", fingerprint, starts_at)
        row = await self._one(
            "SELECT 1 FROM events WHERE type = 'alert.resolved' AND (body::jsonb) #>> '{data,fingerprint}' = %s"
            " AND (body::jsonb) #>> '{data,starts_at}' = %s LIMIT 1", (fingerprint, starts_at),
        )
        return row is not None

    async def window(self, rule: str, key: str) -> dict[str, Any] | None:
        """The window as this transaction left it, else as stored, read under its lock (`_hold_window`)."""
        if (rule, key) in self._windows:
            return self._windows[(rule, key)][0]
        if (rule, key) in self._read:
            return self._read[(rule, key)]
        return await self._hold_window(rule, key)

    async def _hold_window(self, rule: str, key: str) -> dict[str, Any] | None:
        """Lock the window until the transaction ends and read it: one round trip when it exists (a row lock,
        `FOR UPDATE`, whose read waits for and sees the holder's commit), else the key's advisory lock and a
        second look (a window is only ever created under that lock, so its creators take turns)."""
        lock = ("window", rule, key)
        sql: LiteralString = "SELECT state FROM windows WHERE rule = %s AND key = %s FOR UPDATE"
        row = await self._one(sql, (rule, key))
        if row is None and lock not in self._locked:
            await self._lock(*lock)
            row = await self._one(sql, (rule, key))
        self._locked.add(lock)
        return row[0] if row else None

    async def take_windows(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any] | None]:
        """Lock and read every window of `keys` not yet this transaction's in one round trip (the rows, in
        key order, `FOR UPDATE`); those that do not exist yet take their advisory locks in one statement
        (in lock-id order) and are looked at again. The reads are kept for `window`."""
        await self._lock_windows(keys)
        mine, read = self._windows, self._read
        return {pair: mine[pair][0] if pair in mine else read[pair] if pair in read else await self.window(*pair)
                for pair in keys}

    async def _lock_windows(self, keys: list[tuple[str, str]]) -> None:
        wanted = sorted({k for k in keys if k not in self._windows and ("window", *k) not in self._locked})
        if not wanted:
            return
        found = await self._rows_for_update(wanted)
        missing = [k for k in wanted if k not in found]
        if missing:
            ids = sorted(_lock_id(("window", *k)) for k in missing)
            await self._run("SELECT count(pg_advisory_xact_lock(x)) FROM unnest(%s::bigint[]) AS x", (ids,))
            found |= await self._rows_for_update(missing)
        for key in wanted:
            self._locked.add(("window", *key))
            self._read[key] = found.get(key)

    async def _rows_for_update(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """The rows of `keys` (sorted), locked in that order: one primary-key lookup each. As a join, the
        planner's guess of 100 keys made it hash the whole table under 10,000 or so windows (EXPLAIN ANALYZE:
        1.6 ms against 0.7 ms for 260 keys among 5,000 windows); the lateral subquery (`OFFSET 0`: not folded
        into a join) cannot."""
        rows = await self._all(
            "SELECT w.rule, w.key, w.state FROM json_to_recordset(%s::json) AS k(rule text, key text)"
            " CROSS JOIN LATERAL (SELECT x.rule, x.key, x.state FROM windows x WHERE x.rule = k.rule"
            " AND x.key = k.key OFFSET 0 FOR UPDATE) AS w",
            (_json_rows(("rule", "key"), keys),))
        return {(row[0], row[1]): row[2] for row in rows}

    async def set_window(self, rule: str, key: str, state: dict[str, Any], now: datetime) -> None:
        """Buffered under the window's lock and written with the transaction's other windows in one upsert
        just before the commit (`flush`)."""
        if (rule, key) not in self._windows and ("window", rule, key) not in self._locked:
            await self._hold_window(rule, key)
        self._windows[(rule, key)] = (state, now)

    async def set_windows(self, states: Mapping[tuple[str, str], dict[str, Any]], now: datetime) -> None:
        for (rule, key), state in states.items():
            await self.set_window(rule, key, state, now)

    async def flush(self) -> None:
        """Write the buffered windows (one statement); `PostgresStateStore.transaction` calls it before COMMIT."""
        if not self._windows:
            return
        keys = sorted(self._windows)
        await self._run(
            "INSERT INTO windows SELECT x.rule, x.key, x.state, x.updated_at FROM json_to_recordset(%s::json)"
            " AS x(rule text, key text, state jsonb, updated_at timestamptz)"
            " ON CONFLICT (rule, key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            (_json_rows(("rule", "key", "state", "updated_at"),
                        [(rule, key, *self._windows[(rule, key)]) for rule, key in keys]),),
        )
        self._windows.clear()

    async def holds(self, campaign: str) -> list[Hold]:
        await self._lock("campaign", campaign)
        rows = await self._all(f"SELECT {_HOLD_COLUMNS} FROM holds WHERE campaign = %s ORDER BY created_at, owner",
                               (campaign,))
        return [_hold(row) for row in rows]

    async def add_hold(self, hold: Hold) -> bool:
        await self._lock("campaign", hold.campaign)
        await self._lock("owner", hold.owner)
        cursor = await self._run(
            "INSERT INTO holds VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (campaign, owner) DO NOTHING",
            (hold.campaign, hold.owner, hold.kind, hold.reason, hold.created_at, json.dumps(list(hold.event_ids)),
             json.dumps(hold.details, default=str)),
        )
        return cursor.rowcount == 1

    async def remove_hold(self, campaign: str, owner: str, *, every_key: bool = False) -> bool:
        await self._lock("campaign", campaign)
        if every_key:
            cursor = await self._run(
                "DELETE FROM holds WHERE campaign = %s AND (owner = %s OR starts_with(owner, %s))",
                (campaign, owner, owner + "@"))
            return cursor.rowcount > 0
        cursor = await self._run("DELETE FROM holds WHERE campaign = %s AND owner = %s", (campaign, owner))
        return cursor.rowcount == 1

    async def held_by(self, owner: str) -> list[str]:
        await self._lock("owner", owner)
        return [r[0] for r in await self._all("SELECT campaign FROM holds WHERE owner = %s ORDER BY campaign",
                                              (owner,))]

    async def held_or_paused(self) -> list[str]:
        """Committed state at this statement (no lock: a listing)."""
        rows = await self._all("SELECT campaign FROM holds UNION SELECT campaign FROM campaigns"
                               " WHERE bot_paused OR dry_paused ORDER BY campaign")
        return [r[0] for r in rows]

    async def campaign(self, campaign: str) -> CampaignRecord:
        await self._lock("campaign", campaign)
        row = await self._one(f"SELECT {_RECORD_COLUMNS} FROM campaigns WHERE campaign = %s", (campaign,))
        return _record(row) if row is not None else CampaignRecord(campaign)

    async def set_campaign(self, record: CampaignRecord, now: datetime) -> CampaignRecord:
        """Compare-and-set on `version` (0: insert, if no record exists); StaleRecord when it lost."""
        await self._lock("campaign", record.campaign)
        values = (record.bot_paused, record.pending.value if record.pending else None, record.dry_paused,
                  record.vendor_status, now, record.vendor_marker, record.sent_at, record.checked_at)
        if record.version == 0:
            cursor = await self._run(
                f"INSERT INTO campaigns ({_RECORD_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, 1, %s, %s, %s)"
                " ON CONFLICT (campaign) DO NOTHING", (record.campaign, *values))
        else:
            cursor = await self._run(
                "UPDATE campaigns SET bot_paused = %s, pending = %s, dry_paused = %s, vendor_status = %s,"
                " updated_at = %s, vendor_marker = %s, sent_at = %s, checked_at = %s, version = version + 1"
                " WHERE campaign = %s AND version = %s", (*values, record.campaign, record.version))
        if cursor.rowcount != 1:
            raise StaleRecord(f"campaign {record.campaign} changed since version {record.version} was read")
        return replace(record, version=record.version + 1, updated_at=now)

    async def add_override(self, campaign: str, *, by: str, now: datetime, until: datetime, rule: str = "*") -> None:
        await self._lock("campaign", campaign)
        await self._run(
            "INSERT INTO overrides VALUES (%s, %s, %s, %s, %s) ON CONFLICT (campaign, rule) DO UPDATE"
            " SET set_by = excluded.set_by, created_at = excluded.created_at, until = excluded.until",
            (campaign, rule, by, now, until),
        )

    async def override(self, campaign: str, rule: str, now: datetime) -> tuple[str, datetime] | None:
        await self._lock("campaign", campaign)
        row = await self._one(
            "SELECT set_by, until FROM overrides WHERE campaign = %s AND rule IN (%s, '*') AND until > %s"
            " ORDER BY until DESC LIMIT 1", (campaign, rule, now),
        )
        return (row[0], row[1].astimezone(UTC)) if row else None

    async def add_inventory(self, campaign: str, sender: str, now: datetime) -> None:
        await self._run("INSERT INTO inventory VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (campaign, sender, now))

    async def add_audit(self, row: AuditRow) -> None:
        await self._run(
            "INSERT INTO audit (at, kind, campaign, rule, action, outcome, detail, event_ids, inputs)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (row.at, row.kind, row.campaign, row.rule, row.action, row.outcome, row.detail,
             json.dumps(list(row.event_ids)), json.dumps(row.inputs, default=str)),
        )

    async def log_pause(self, vendor: str, campaign: str, now: datetime) -> None:
        await self._lock("breaker", vendor)
        await self._run("INSERT INTO pause_log VALUES (%s, %s, %s)", (vendor, campaign, now))

    async def recent_pauses(self, vendor: str, since: datetime) -> int:
        await self._lock("breaker", vendor)
        row = await self._one("SELECT count(*) FROM pause_log WHERE vendor = %s AND at > %s", (vendor, since))
        return int(row[0]) if row else 0

    async def add_pending(self, hold: Hold, *, expires_at: datetime) -> int:
        await self._lock("pending")
        row = await self._one(
            "INSERT INTO pending_decisions (campaign, owner, kind, reason, event_ids, details, created_at,"
            " expires_at, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'pending') RETURNING id",
            (hold.campaign, hold.owner, hold.kind, hold.reason, json.dumps(list(hold.event_ids)),
             json.dumps(hold.details, default=str), hold.created_at, expires_at),
        )
        assert row is not None
        return int(row[0])

    async def pending(self, *, decision_id: int | None = None, status: str | None = "pending") -> list[PendingDecision]:
        await self._lock("pending")
        rows = await self._all(
            "SELECT id, campaign, owner, kind, reason, event_ids, details, created_at, expires_at, status,"
            " decided_by FROM pending_decisions WHERE (%s::bigint IS NULL OR id = %s)"
            " AND (%s::text IS NULL OR status = %s) ORDER BY id", (decision_id, decision_id, status, status),
        )
        return [PendingDecision(r[0], Hold(r[1], r[2], r[3], r[4], r[7].astimezone(UTC), tuple(json.loads(r[5])),
                                           json.loads(r[6])), r[8].astimezone(UTC), r[9], r[10]) for r in rows]

    async def decide_pending(self, decision_id: int, status: str, *, by: str, now: datetime) -> None:
        await self._lock("pending")
        await self._run("UPDATE pending_decisions SET status = %s, decided_by = %s, decided_at = %s WHERE id = %s",
                        (status, by, now, decision_id))


class PostgresStateStore:
    """The state store on a pool of PostgreSQL connections: each transaction borrows one connection for
    its duration, the reads outside transactions one per statement (committed state only)."""

    def __init__(self, pool: Pool) -> None:
        """On a pool from `open_pool` whose database `upgrade` brought to the current schema."""
        self._pool = pool

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, max_size: int = 4) -> AsyncIterator[PostgresStateStore]:
        """Connect (a pool of up to `max_size` connections), upgrade the schema, and close on exit."""
        async with open_pool(url, max_size=max_size) as pool:
            await upgrade(pool)
            yield cls(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTx]:
        """BEGIN ISOLATION LEVEL READ COMMITTED ... COMMIT on a connection of the pool (ROLLBACK when the block
        raises); the connection goes back to the pool before the `on_commit` callbacks run."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                tx = PostgresTx(conn)
                yield tx
                await tx.flush()
        except psycopg.Error as exc:
            raise postgres_error("a state transaction", exc) from exc
        for callback in tx._on_commit:
            await callback()

    async def _rows(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await query(self._pool, sql, args)

    async def _campaigns(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[str]:
        return [r[0] for r in await self._rows(sql, args)]

    async def audit(self, *, campaign: str | None = None, limit: int = 100) -> list[AuditRow]:
        rows = await self._rows(
            "SELECT id, at, kind, campaign, rule, action, outcome, detail, event_ids, inputs FROM audit"
            " WHERE %s::text IS NULL OR campaign = %s ORDER BY id DESC LIMIT %s", (campaign, campaign, limit),
        )
        return [AuditRow(r[1].astimezone(UTC), r[2], r[3], r[4], r[5], r[6], r[7], tuple(json.loads(r[8])),
                         json.loads(r[9]), id=r[0]) for r in reversed(rows)]

    async def events(self, *, campaign: str | None = None) -> AsyncIterator[str]:
        """Streamed through a server-side cursor (inside one transaction: fine with PgBouncer)."""
        try:
            async with self._pool.connection() as conn, conn.transaction(), conn.cursor(name="events") as cursor:
                await cursor.execute("SELECT body FROM events WHERE %s::text IS NULL OR campaign = %s"
                                     " ORDER BY occurred_at, recorded_at", (campaign, campaign))
                async for row in cursor:
                    yield row[0]
        except psycopg.Error as exc:
            raise postgres_error("reading the events", exc) from exc

    async def inventory(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in await self._rows("SELECT campaign, sender FROM inventory")]

    async def pending_campaigns(self) -> list[str]:
        return await self._campaigns("SELECT campaign FROM campaigns WHERE pending IS NOT NULL ORDER BY campaign")

    async def dry_paused_campaigns(self) -> list[str]:
        return await self._campaigns("SELECT campaign FROM campaigns WHERE dry_paused ORDER BY campaign")

    async def watched_campaigns(self) -> list[str]:
        return await self._campaigns(
            "SELECT campaign FROM holds WHERE kind <> ALL(%s) UNION SELECT campaign FROM campaigns"
            " WHERE bot_paused ORDER BY campaign", (sorted(PASSIVE_KINDS),))

    async def windows_where(self, rule: str, flag: str) -> list[tuple[str, dict[str, Any]]]:
        rows = await self._rows("SELECT key, state FROM windows WHERE rule = %s AND state -> %s = 'true'::jsonb",
                                (rule, flag))
        return [(r[0], r[1]) for r in rows]

    async def audit_between(self, since: datetime, until: datetime, *, limit: int = 10_000) -> list[AuditRow]:
        rows = await self._rows(
            "SELECT id, at, kind, campaign, rule, action, outcome, detail, event_ids, inputs FROM audit"
            " WHERE at >= %s AND at < %s ORDER BY id DESC LIMIT %s", (since, until, limit))
        return [AuditRow(r[1].astimezone(UTC), r[2], r[3], r[4], r[5], r[6], r[7], tuple(json.loads(r[8])),
                         json.loads(r[9]), id=r[0]) for r in reversed(rows)]

    async def events_between(self, event_type: str, since: datetime, until: datetime, *,
                             limit: int = 10_000) -> list[str]:
        rows = await self._rows(
            "SELECT body FROM events WHERE type = %s AND occurred_at >= %s AND occurred_at < %s"
            " ORDER BY occurred_at DESC, recorded_at DESC LIMIT %s", (event_type, since, until, limit))
        return [row[0] for row in reversed(rows)]


if TYPE_CHECKING:
    def _keeps_the_protocol(store: PostgresStateStore, tx: PostgresTx) -> tuple[StateStore, Transaction]:
        """mypy checks here that this implementation has every method of bot.state.protocol."""
        return store, tx
