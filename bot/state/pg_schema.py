"""The PostgreSQL state database's schema, as versioned migration steps, and `upgrade` to apply them.

`MIGRATIONS[n - 1]` takes a database from schema version n - 1 to n; `schema_version` holds one row per
applied step. `upgrade` applies the missing steps in one transaction, under a transaction-level advisory
lock: processes starting together (a fleet rolling out) wait for each other, and the first one's upgrade
is the only one that does anything. A step, once released, is never edited: a change is a new step.
Steps stay additive (new tables, columns, indexes) so that workers of the previous release keep running
on an upgraded database during a rolling deploy; a database upgraded by a newer release is used as is.

The tables are SQLite's (bot.state.schema) in PostgreSQL types: times are timestamptz; rule windows are
jsonb (queried by `windows_where`); the other JSON documents are text, handed back byte for byte (an
event's body verbatim) and never refused (jsonb rejects the `\\u0000` a webhook may carry). Keys sort
by code point (COLLATE "C"), as the store's lists of keys promise. The outbox has its claim columns
(bot.state.pg_outbox) and `heartbeats` the fleet's heartbeats (bot.state.pg_workers); `slack_incidents` the
Slack messages edited in place (bot.state.outbox).
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool

from bot.errors import StateError
from bot.state.pg_budget import RATE_SLOTS

__all__ = ["MIGRATIONS", "upgrade"]

#: (classid, objid) of the migration lock; the two-int advisory key space never meets the store's bigint keys
_LOCK: Final = (0x63677264, 1)      # "cgrd"

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the first PostgreSQL schema
    """
    CREATE TABLE events (
        id text COLLATE "C" PRIMARY KEY, type text NOT NULL, source text NOT NULL, campaign text COLLATE "C",
        occurred_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL, body text NOT NULL);
    CREATE INDEX events_campaign ON events (campaign, occurred_at, recorded_at);
    CREATE INDEX events_occurred ON events (occurred_at, recorded_at);
    CREATE INDEX events_resolved ON events (
        ((body::jsonb) #>> '{data,fingerprint}'), ((body::jsonb) #>> '{data,starts_at}'))
        WHERE type = 'alert.resolved';
    CREATE TABLE holds (
        campaign text COLLATE "C" NOT NULL, owner text COLLATE "C" NOT NULL, kind text NOT NULL,
        reason text NOT NULL, created_at timestamptz NOT NULL, event_ids text NOT NULL, details text NOT NULL,
        PRIMARY KEY (campaign, owner));
    CREATE INDEX holds_owner ON holds (owner);
    CREATE TABLE campaigns (
        campaign text COLLATE "C" PRIMARY KEY, bot_paused boolean NOT NULL, pending text,
        dry_paused boolean NOT NULL, vendor_status text, updated_at timestamptz, version bigint NOT NULL,
        vendor_marker text, sent_at timestamptz, checked_at timestamptz);
    CREATE INDEX campaigns_pending ON campaigns (campaign) WHERE pending IS NOT NULL;
    CREATE INDEX campaigns_paused ON campaigns (campaign) WHERE bot_paused OR dry_paused;
    CREATE TABLE windows (
        rule text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, state jsonb NOT NULL,
        updated_at timestamptz NOT NULL, PRIMARY KEY (rule, key));
    CREATE TABLE audit (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL, kind text NOT NULL,
        campaign text COLLATE "C", rule text, action text NOT NULL, outcome text NOT NULL, detail text NOT NULL,
        event_ids text NOT NULL, inputs text NOT NULL);
    CREATE INDEX audit_campaign ON audit (campaign, id);
    CREATE TABLE inventory (
        campaign text COLLATE "C" NOT NULL, sender text COLLATE "C" NOT NULL, seen_at timestamptz NOT NULL,
        PRIMARY KEY (campaign, sender));
    CREATE TABLE pause_log (vendor text NOT NULL, campaign text NOT NULL, at timestamptz NOT NULL);
    CREATE INDEX pause_log_vendor ON pause_log (vendor, at);
    CREATE TABLE pending_decisions (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, campaign text NOT NULL, owner text NOT NULL,
        kind text NOT NULL, reason text NOT NULL, event_ids text NOT NULL, details text NOT NULL,
        created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, status text NOT NULL,
        decided_by text, decided_at timestamptz);
    CREATE INDEX pending_decisions_status ON pending_decisions (status, id);
    CREATE TABLE overrides (
        campaign text COLLATE "C" NOT NULL, rule text COLLATE "C" NOT NULL, set_by text NOT NULL,
        created_at timestamptz NOT NULL, until timestamptz NOT NULL, PRIMARY KEY (campaign, rule));
    CREATE TABLE outbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, key text UNIQUE, target text NOT NULL,
        payload text NOT NULL, grp text, status text NOT NULL DEFAULT 'queued', attempts integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL, due_at timestamptz NOT NULL, done_at timestamptz,
        result text NOT NULL DEFAULT '', claimed_by text, claimed_until timestamptz);
    CREATE INDEX outbox_due ON outbox (due_at, id) WHERE status = 'queued';
    CREATE INDEX outbox_group ON outbox (grp, id) WHERE status = 'queued';
    CREATE TABLE outbox_attempts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, outbox_id bigint NOT NULL, at timestamptz NOT NULL,
        ok boolean NOT NULL, detail text NOT NULL);
    CREATE INDEX outbox_attempts_item ON outbox_attempts (outbox_id, id);
    CREATE TABLE workers (
        host text NOT NULL, pid integer NOT NULL, started_at timestamptz NOT NULL, beat_at timestamptz NOT NULL,
        PRIMARY KEY (host, pid));
    """,
    # 2: leases (bot.state.pg_leases): one writer per campaign and each background duty once, fleet-wide
    """
    CREATE TABLE leases (
        name text COLLATE "C" PRIMARY KEY, holder text NOT NULL, until timestamptz NOT NULL);
    """,
    # 3: vendor rate budgets the fleet shares (bot.state.pg_budget)
    RATE_SLOTS,
    # 4: heartbeats keyed by worker process (bot.state.pg_workers), with its start time: replicas sharing a
    # host name (every container's worker is pid 1) have a row each; `workers` stays for the previous release
    """
    CREATE TABLE heartbeats (
        id text COLLATE "C" PRIMARY KEY, host text NOT NULL, pid integer NOT NULL, pid_start bigint,
        started_at timestamptz NOT NULL, beat_at timestamptz NOT NULL);
    CREATE INDEX heartbeats_host ON heartbeats (host, pid);
    """,
    # 5: Slack incidents (bot.state.pg_outbox): one message per campaign's trouble, edited in place; the outbox
    # items filed under one; the daily digest's reads of a day of audit rows
    """
    ALTER TABLE outbox ADD COLUMN incident bigint;
    CREATE INDEX outbox_by_incident ON outbox (incident, id);
    CREATE TABLE slack_incidents (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, channel text COLLATE "C" NOT NULL,
        campaign text COLLATE "C" NOT NULL, opened_at timestamptz NOT NULL, closed_at timestamptz,
        opening text NOT NULL, ts text, posted_channel text);
    CREATE UNIQUE INDEX slack_incidents_open ON slack_incidents (channel, campaign) WHERE closed_at IS NULL;
    CREATE INDEX audit_at ON audit (at);
    """,
)


async def upgrade(target: psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any]) -> int:
    """Bring the database of `target` (a connection in autocommit mode, or a pool of them) to the newest
    schema version; returns the version it is at. StateError when the database refuses or is unreachable."""
    try:
        if isinstance(target, AsyncConnectionPool):
            async with target.connection() as conn:
                return await _upgrade(conn)
        return await _upgrade(target)
    except psycopg.Error as exc:
        raise StateError(f"cannot upgrade the state database: {str(exc).strip().splitlines()[0]}") from exc


async def _upgrade(conn: psycopg.AsyncConnection[Any]) -> int:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _LOCK)
        # created under the lock: CREATE ... IF NOT EXISTS alone races with a concurrent creation
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                           " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
        row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        for version in range(current + 1, len(MIGRATIONS) + 1):
            await conn.execute(MIGRATIONS[version - 1])
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        return max(current, len(MIGRATIONS))
