"""Leases in PostgreSQL (bot.state.protocol.Leases): one row per claimed name in `leases`.

A claim is one statement, an upsert that takes the row only when it is free, run out, or already the
holder's; the database's clock times every claim, so the clocks of the fleet's hosts never matter. No
session state and no long transaction: it works behind PgBouncer in transaction mode, and a holder that
dies leaves only a row that runs out.
"""

from __future__ import annotations

from datetime import timedelta

from bot.state.postgres import Pool, query

__all__ = ["PostgresLeases"]


class PostgresLeases:
    """Claims in the `leases` table (migration step 2)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def claim(self, name: str, holder: str, seconds: float) -> bool:
        rows = await query(
            self._pool,
            "INSERT INTO leases (name, holder, until) VALUES (%s, %s, clock_timestamp() + %s)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until"
            " WHERE leases.holder = excluded.holder OR leases.until < clock_timestamp()"
            " RETURNING holder",
            (name, holder, timedelta(seconds=seconds)), doing="claiming a lease")
        return bool(rows)

    async def release(self, name: str, holder: str) -> None:
        await query(self._pool, "DELETE FROM leases WHERE name = %s AND holder = %s", (name, holder),
                    doing="releasing a lease")
