"""The Slack outbox in PostgreSQL (bot.state.outbox.Outbox), shared by every worker of a fleet.

Each worker runs a deliverer, so an item must reach Slack through one of them only: `due` and `grouped`
claim what they return for this outbox (`claimed_by`, a token of its own) until `record` settles the
attempt. An item claimed by another outbox is skipped while its claim stands; a claim lapses after
`CLAIM` (its holder died mid-delivery: another deliverer sends it again, as a restarted SQLite worker
would) and is handed back when its outbox closes. Claims are taken with FOR UPDATE SKIP LOCKED: two
deliverers asking at once get different items. A digest group is claimed item by item, so two deliverers
may each send part of one group, never the same item. An incident's items go one at a time, oldest first
(`TURN`: none is handed out while an earlier one of its incident is queued, claimed or not), so two
deliverers never edit one message at once nor out of order; notices are filed under an incident under a
transaction-level advisory lock on its (channel, campaign).

`changed` and `wait_settled` are signals within this process: what another process queues is found by
the deliverer's next poll (bot.slack.delivery), not announced (LISTEN would need a session: PgBouncer).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import psycopg

from bot.errors import StateError
from bot.state.outbox import TURN, Attempt, Incident, OutboxItem, OutboxSignals
from bot.state.postgres import Pool, postgres_error, query

if TYPE_CHECKING:
    from bot.state.outbox import Outbox

__all__ = ["CLAIM", "PostgresOutbox"]

#: how long a claim stands: far beyond one delivery attempt (bot.slack.delivery's timeout, 10 s)
CLAIM: Final = timedelta(minutes=10)
_COLUMNS: Final = "id, key, target, payload, grp, status, attempts, created_at, due_at, done_at, result, incident"
_INCIDENT_COLUMNS: Final = ("i.id, i.channel, i.campaign, i.opened_at, i.closed_at, i.opening, i.ts, i.posted_channel,"
                            " (SELECT count(*) FROM outbox o WHERE o.incident = i.id AND o.status = 'sent')")
#: an item this outbox may take: unclaimed, its own, or claimed by an outbox whose claim lapsed
_MINE: Final = "(claimed_by IS NULL OR claimed_by = %(me)s OR claimed_until < clock_timestamp())"


def _item(row: Sequence[Any]) -> OutboxItem:
    return OutboxItem(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7].astimezone(UTC),
                      row[8].astimezone(UTC), row[9].astimezone(UTC) if row[9] else None, row[10], row[11])


def _incident(row: Sequence[Any]) -> Incident:
    return Incident(row[0], row[1], row[2], row[3].astimezone(UTC), row[4].astimezone(UTC) if row[4] else None,
                    json.loads(row[5]), row[6], row[7], int(row[8]))


class PostgresOutbox(OutboxSignals):
    """Outbox rows and attempts in the state database; items handed out are claimed (module docstring)."""

    def __init__(self, pool: Pool) -> None:
        """On the state store's pool (its database upgraded); prefer `open`, which hands claims back."""
        super().__init__()
        self._pool = pool
        self._me = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    @classmethod
    @asynccontextmanager
    async def open(cls, pool: Pool) -> AsyncIterator[PostgresOutbox]:
        """The outbox on `pool`; on exit its unsettled claims are handed back (its deliverer has stopped)."""
        outbox = cls(pool)
        try:
            yield outbox
        finally:
            with contextlib.suppress(StateError):     # unreachable database: the claims lapse after CLAIM
                await query(pool, "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL"
                                  " WHERE claimed_by = %s AND status = 'queued'", (outbox._me,))

    async def enqueue(self, target: str, payload: dict[str, Any], *, now: datetime, key: str | None = None,
                      group: str | None = None, due_at: datetime | None = None) -> bool:
        """Queue one message; False when `key` was queued before (nothing changes)."""
        added = await query(
            self._pool,
            "INSERT INTO outbox (key, target, payload, grp, created_at, due_at) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (key) DO NOTHING RETURNING id",
            (key, target, json.dumps(payload, default=str), group, now, due_at or now), doing="queueing a message")
        if added:
            self.changed.set()
        return bool(added)

    async def enqueue_incident(self, channel: str, campaign: str, payload: dict[str, Any], *, now: datetime,
                               opens: bool, closes: bool, quiet: timedelta | None = None) -> int | None:
        """Queue a message in the campaign's open incident (bot.state.outbox.Outbox.enqueue_incident), in one
        transaction under the advisory lock of (channel, campaign): notices filed at once take turns."""
        body = json.dumps(payload, default=str)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                   (f"slack-incident:{channel}:{campaign}",))
                cursor = await conn.execute(
                    "SELECT i.id, (SELECT max(o.created_at) FROM outbox o WHERE o.incident = i.id) FROM slack_incidents i"
                    " WHERE i.channel = %s AND i.campaign = %s AND i.closed_at IS NULL", (channel, campaign))
                row = await cursor.fetchone()
                incident: int | None = row[0] if row else None
                if row and opens and quiet is not None and row[1] is not None and row[1] < now - quiet:
                    await conn.execute("UPDATE slack_incidents SET closed_at = %s WHERE id = %s", (row[1], incident))
                    incident = None
                if incident is None and opens:
                    cursor = await conn.execute(
                        "INSERT INTO slack_incidents (channel, campaign, opened_at, opening) VALUES (%s, %s, %s, %s)"
                        " RETURNING id", (channel, campaign, now, body))
                    created = await cursor.fetchone()
                    incident = int(created[0]) if created else None
                await conn.execute(
                    "INSERT INTO outbox (target, payload, created_at, due_at, incident)"
                    " VALUES ('channel', %s, %s, %s, %s)", (body, now, now, incident))
                if incident is not None and closes:
                    await conn.execute("UPDATE slack_incidents SET closed_at = %s WHERE id = %s", (now, incident))
        except psycopg.Error as exc:
            raise postgres_error("queueing an incident's message", exc) from exc
        self.changed.set()
        return incident

    async def incident(self, incident_id: int) -> Incident | None:
        rows = await query(self._pool, f"SELECT {_INCIDENT_COLUMNS} FROM slack_incidents i WHERE i.id = %s",
                           (incident_id,), doing="reading an incident")
        return _incident(rows[0]) if rows else None

    async def has(self, key: str) -> bool:
        return bool(await query(self._pool, "SELECT 1 FROM outbox WHERE key = %s", (key,)))

    async def due(self, now: datetime, *, limit: int = 20) -> list[OutboxItem]:
        """Queued items whose time has come and whose turn it is (`TURN`), oldest first, claimed for this outbox."""
        rows = await self._claim(f"status = 'queued' AND due_at <= %(now)s AND {_MINE} AND {TURN}"
                                 " ORDER BY due_at, id LIMIT %(limit)s", {"now": now, "limit": limit})
        return sorted(map(_item, rows), key=lambda item: (item.due_at, item.id))

    async def grouped(self, group: str) -> list[OutboxItem]:
        """The queued items of a digest group not claimed by another outbox, oldest first, claimed for this one."""
        rows = await self._claim(f"status = 'queued' AND grp = %(group)s AND {_MINE}", {"group": group})
        return sorted(map(_item, rows), key=lambda item: item.id)

    async def _claim(self, picking: str, args: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Claim the rows `picking` (a WHERE clause, with any ORDER BY and LIMIT) selects; they come back
        in no particular order."""
        return await query(
            self._pool,
            f"UPDATE outbox SET claimed_by = %(me)s, claimed_until = clock_timestamp() + %(claim)s WHERE id IN"
            f" (SELECT id FROM outbox WHERE {picking} FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
            {**args, "me": self._me, "claim": CLAIM}, doing="claiming outbox items")

    async def next_due(self) -> datetime | None:
        """When the earliest queued item this outbox may take is due."""
        rows = await query(self._pool, f"SELECT min(due_at) FROM outbox WHERE status = 'queued' AND {_MINE}"
                                       f" AND {TURN}", {"me": self._me})
        return rows[0][0].astimezone(UTC) if rows and rows[0][0] else None

    async def record(self, ids: list[int], *, now: datetime, ok: bool, detail: str,
                     retry_at: datetime | None = None, posted: tuple[str, str] | None = None) -> None:
        """Record one attempt for `ids` (and settle their claim): sent, queued again for `retry_at`, or failed;
        `posted`: the message of their incident, in the same transaction."""
        status = "sent" if ok else ("queued" if retry_at is not None else "failed")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                if ok and posted is not None:
                    await conn.execute(
                        "UPDATE slack_incidents SET posted_channel = %s, ts = %s WHERE id IN"
                        " (SELECT incident FROM outbox WHERE id = ANY(%s) AND incident IS NOT NULL)", (*posted, ids))
                await conn.execute(
                    "INSERT INTO outbox_attempts (outbox_id, at, ok, detail)"
                    " SELECT id, %s, %s, %s FROM unnest(%s::bigint[]) WITH ORDINALITY AS i (id, n) ORDER BY n",
                    (now, ok, detail[:500], ids))
                await conn.execute(
                    "UPDATE outbox SET status = %s, attempts = attempts + 1, result = %s, due_at = %s, done_at = %s,"
                    " claimed_by = NULL, claimed_until = NULL WHERE id = ANY(%s)",
                    (status, detail[:500], retry_at or now, None if status == "queued" else now, ids))
        except psycopg.Error as exc:
            raise postgres_error("recording a delivery attempt", exc) from exc
        await self._notify_recorded()

    async def items(self, *, status: str | None = None) -> list[OutboxItem]:
        rows = await query(self._pool, f"SELECT {_COLUMNS} FROM outbox WHERE %(status)s::text IS NULL"
                                       " OR status = %(status)s ORDER BY id", {"status": status})
        return [_item(row) for row in rows]

    async def attempts(self, outbox_id: int | None = None) -> list[Attempt]:
        rows = await query(self._pool, "SELECT outbox_id, at, ok, detail FROM outbox_attempts"
                                       " WHERE %(item)s::bigint IS NULL OR outbox_id = %(item)s ORDER BY id",
                           {"item": outbox_id})
        return [Attempt(r[0], r[1].astimezone(UTC), r[2], r[3]) for r in rows]


if TYPE_CHECKING:
    def _keeps_the_protocol(outbox: PostgresOutbox) -> Outbox:
        """mypy checks here that PostgresOutbox has every method of `Outbox`."""
        return outbox
