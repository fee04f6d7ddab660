"""Vendor rate budgets in PostgreSQL: the fleet's count behind `bot.vendors.budget.SharedLimiter` (the
`SharedBudget` protocol), in `rate_slots`.

One row per slot: taken (`started_at`), then finished (`finished_at`), or deleted when nothing was sent. A row
counts against each window of its budget while it is in flight (not finished, and started less than
`stale_after` ago: a process killed mid-request leaves a row that stops counting then) and, once finished,
for the window's period, as a slot of the in-process limiter does. Every time is the database's
(`clock_timestamp()`): the clocks of the fleet's hosts never matter.

Taking a slot is one short transaction: a transaction-level advisory lock on the budget, then one statement
that counts the budget's live rows per window, inserts the slot when every window has room (for a background
request: room within its background share too), else works out how long to wait, and prunes the budget's
rows no window counts any more. Under READ COMMITTED that statement's snapshot, taken after the lock, holds
every slot the lock's earlier holders committed: two processes never both take the last slot. Nothing
outlives the transaction (no session lock, no session setting), so it works behind PgBouncer in transaction
mode. The commit does not wait for the WAL flush (`synchronous_commit` off for this transaction only): a
slot lost in a server crash could let one window's worth too many through right after the restart, never
during normal operation; waiting for the disk would cost every vendor call an fsync.

Finishing a slot is one statement without the lock: a row in flight counts already, and a finished one counts
for a period from its finish, so a take running alongside counts it either way; deleting an unused slot only
frees room.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import psycopg

from bot.errors import StateError
from bot.vendors.budget import Slot, Window

if TYPE_CHECKING:
    from bot.state.postgres import Pool

__all__ = ["RATE_SLOTS", "PostgresBudgets"]

#: The migration step that creates the table (bot.state.pg_schema.MIGRATIONS). Released: never edited.
RATE_SLOTS: Final = """
    CREATE TABLE rate_slots (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, budget text COLLATE "C" NOT NULL,
        background boolean NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz);
    CREATE INDEX rate_slots_budget ON rate_slots (budget, finished_at);
    """

#: classid of the budgets' two-int advisory locks ("rate"): apart from the store's bigint keys and from the
#: migration lock's classid
_LOCK_CLASS: Final = 0x72617465

_TAKE: Final = """
WITH now AS MATERIALIZED (SELECT clock_timestamp() AS t),
flight AS MATERIALIZED (
    SELECT count(*) AS n, count(*) FILTER (WHERE s.background) AS bg, min(s.started_at) AS oldest,
           min(s.started_at) FILTER (WHERE s.background) AS oldest_bg
    FROM rate_slots s, now
    WHERE s.budget = %(budget)s AND s.finished_at IS NULL AND s.started_at > now.t - %(stale)s),
counts AS MATERIALIZED (
    SELECT w.lim, w.bg, w.span, w.since, flight.oldest, flight.oldest_bg,
           flight.n + (SELECT count(*) FROM rate_slots s
                       WHERE s.budget = %(budget)s AND s.finished_at > w.since) AS used,
           CASE WHEN %(background)s THEN flight.bg + (SELECT count(*) FROM rate_slots s
                       WHERE s.budget = %(budget)s AND s.finished_at > w.since AND s.background) END AS bg_used
    FROM (SELECT lim, bg, make_interval(secs => period) AS span, now.t - make_interval(secs => period) AS since
          FROM unnest(%(limits)s::int[], %(periods)s::float8[], %(backgrounds)s::int[]) AS u(lim, period, bg), now
         ) AS w, flight),
granted AS (
    INSERT INTO rate_slots (budget, background, started_at)
    SELECT %(budget)s, %(background)s, now.t FROM now
    WHERE NOT EXISTS (SELECT FROM counts WHERE used >= lim OR bg_used >= bg)
    RETURNING id),
waits AS (
    -- a full window frees up when its (excess)th oldest finished slot leaves it; when slots in flight must
    -- leave too, no sooner than a period from now (they finish, then count for a period) or than the oldest
    -- of them goes stale
    SELECT CASE WHEN c.used >= c.lim THEN coalesce(
                    (SELECT s.finished_at FROM rate_slots s WHERE s.budget = %(budget)s AND s.finished_at > c.since
                     ORDER BY s.finished_at OFFSET c.used - c.lim LIMIT 1) + c.span - now.t,
                    least(c.span, c.oldest + %(stale)s - now.t)) END AS total,
           CASE WHEN c.bg_used >= c.bg THEN coalesce(
                    (SELECT s.finished_at FROM rate_slots s
                     WHERE s.budget = %(budget)s AND s.finished_at > c.since AND s.background
                     ORDER BY s.finished_at OFFSET c.bg_used - c.bg LIMIT 1) + c.span - now.t,
                    least(c.span, c.oldest_bg + %(stale)s - now.t)) END AS bg
    FROM counts c, now),
pruned AS (
    DELETE FROM rate_slots s USING now
    WHERE s.budget = %(budget)s
      AND (s.finished_at <= now.t - %(keep)s OR (s.finished_at IS NULL AND s.started_at <= now.t - %(stale)s)))
SELECT (SELECT id FROM granted), extract(epoch FROM (SELECT max(greatest(total, bg)) FROM waits))::float8
"""


def _lock_key(budget: str) -> int:
    """The advisory lock's second int for `budget` (a collision only makes two budgets take turns)."""
    return int.from_bytes(hashlib.blake2b(budget.encode(), digest_size=4).digest(), "big", signed=True)


def _failed(doing: str, exc: psycopg.Error) -> StateError:
    lines = str(exc).strip().splitlines()
    return StateError(f"{doing} failed: {type(exc).__name__}" + (f": {lines[0]}" if lines else ""))


class PostgresBudgets:
    """The `SharedBudget` of a fleet on one PostgreSQL database. `stale_after`: seconds after which a slot
    never finished stops counting (2 * BOT_VENDOR_TIMEOUT: no request holds its slot longer)."""

    def __init__(self, pool: Pool, *, stale_after: float) -> None:
        if stale_after <= 0:
            raise ValueError("stale_after must be > 0")
        self._pool = pool
        self._stale = timedelta(seconds=stale_after)

    async def take(self, budget: str, windows: Sequence[Window], *, background: bool) -> Slot | float:
        if not windows:
            raise ValueError("a budget has at least one window")
        longest = timedelta(seconds=max(w.period for w in windows))
        args = {"budget": budget, "background": background, "limits": [w.limit for w in windows],
                "periods": [w.period for w in windows], "backgrounds": [w.background for w in windows],
                "stale": self._stale, "keep": max(longest, self._stale)}
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT set_config('synchronous_commit', 'off', true),"
                                   " pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _lock_key(budget)))
                cursor = await conn.execute(_TAKE, args)
                row = await cursor.fetchone()
        except psycopg.Error as exc:
            raise _failed(f"taking a slot of rate budget {budget}", exc) from exc
        assert row is not None
        slot_id, wait = row
        return Slot(int(slot_id)) if slot_id is not None else max(0.0, float(wait))

    async def done(self, slot: Slot, *, used: bool) -> None:
        sql = ("UPDATE rate_slots SET finished_at = clock_timestamp() WHERE id = %s" if used
               else "DELETE FROM rate_slots WHERE id = %s")
        try:
            async with self._pool.connection() as conn:
                await conn.execute(sql, (slot.id,))
        except psycopg.Error as exc:
            raise _failed("finishing a rate slot", exc) from exc
