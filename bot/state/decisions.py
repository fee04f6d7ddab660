"""The breaker's queries inside a state transaction: the pause log and parked (pending) decisions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.state.base import Hold, PendingDecision
from bot.state.blocking import BlockingConnection
from bot.state.schema import db_time as _ts

__all__ = ["DecisionQueries"]


class DecisionQueries:
    """The base of `Tx`: its connection, the one-row helper, and the breaker's queries."""

    def __init__(self, db: BlockingConnection) -> None:
        self._db = db

    async def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        async with self._db.execute(sql, tuple(args)) as cursor:
            return await cursor.fetchone()

    async def log_pause(self, vendor: str, campaign: str, now: datetime) -> None:
        await self._db.execute("INSERT INTO pause_log VALUES (?, ?, ?)", (vendor, campaign, _ts(now)))

    async def recent_pauses(self, vendor: str, since: datetime) -> int:
        """Automated pauses of this vendor's campaigns since `since` (the blast-radius breaker's count)."""
        row = await self._one("SELECT count(*) FROM pause_log WHERE vendor = ? AND at > ?", (vendor, _ts(since)))
        return int(row[0]) if row else 0

    async def add_pending(self, hold: Hold, *, expires_at: datetime) -> int:
        """Park an automated pause for a person to approve; returns its id."""
        cursor = await self._db.execute(
            "INSERT INTO pending_decisions (campaign, owner, kind, reason, event_ids, details, created_at,"
            " expires_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            (hold.campaign, hold.owner, hold.kind, hold.reason, json.dumps(list(hold.event_ids)),
             json.dumps(hold.details, default=str), _ts(hold.created_at), _ts(expires_at)),
        )
        return int(cursor.lastrowid or 0)

    async def pending(self, *, decision_id: int | None = None, status: str | None = "pending") -> list[PendingDecision]:
        clauses: list[str] = []
        args: list[int | str] = []
        if decision_id is not None:
            clauses.append("id = ?")
            args.append(decision_id)
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        async with self._db.execute(
            "SELECT id, campaign, owner, kind, reason, event_ids, details, created_at, expires_at, status,"
            f" decided_by FROM pending_decisions {where} ORDER BY id", args,
        ) as cursor:
            rows = await cursor.fetchall()
        return [PendingDecision(r[0], Hold(r[1], r[2], r[3], r[4], datetime.fromisoformat(r[7]),
                                           tuple(json.loads(r[5])), json.loads(r[6])),
                                datetime.fromisoformat(r[8]), r[9], r[10]) for r in rows]

    async def decide_pending(self, decision_id: int, status: str, *, by: str, now: datetime) -> None:
        await self._db.execute(
            "UPDATE pending_decisions SET status = ?, decided_by = ?, decided_at = ? WHERE id = ?",
            (status, by, _ts(now), decision_id),
        )

