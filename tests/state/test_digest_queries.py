"""The store's reads of one day (bot.state.protocol `audit_between`, `events_between`) on both stores: what
the daily digest (bot.digest) is built from."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.events import CampaignRef, Event
from bot.state.base import AuditRow
from bot.state.protocol import StateStore

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)



async def test_audit_between_is_the_rows_of_that_span_oldest_first(state_store: StateStore) -> None:
    at = [NOW - timedelta(days=1, seconds=1), NOW - timedelta(days=1), NOW - timedelta(hours=1, microseconds=5),
          NOW, NOW + timedelta(seconds=1)]
    async with state_store.transaction() as tx:
        for n, when in enumerate(at):
            await tx.add_audit(AuditRow(when, "action", f"smartlead:{n}", None, "pause", "paused", f"row {n}",
                                        ("e1",), {"n": n}))
    rows = await state_store.audit_between(NOW - timedelta(days=1), NOW)
    assert [(r.detail, r.at, r.inputs, r.event_ids) for r in rows] == [
        ("row 1", at[1], {"n": 1}, ("e1",)), ("row 2", at[2], {"n": 2}, ("e1",))]
    assert rows[0].id is not None and rows[1].id is not None and rows[0].id < rows[1].id
    assert [r.detail for r in await state_store.audit_between(NOW - timedelta(days=2), NOW, limit=2)] == [
        "row 1", "row 2"]                                       # the newest of the span


async def test_events_between_is_one_types_events_of_that_span(state_store: StateStore) -> None:
    def event(n: int, kind: str, when: datetime) -> Event:
        return Event(id=f"e{n}", type=kind, source="smartlead", occurred_at=when,
                     campaign=None if kind == "account.health" else CampaignRef.parse("smartlead:1"),
                     data={"n": n, "healthy": False})
    events = [event(1, "account.health", NOW - timedelta(days=2)), event(2, "account.health", NOW - timedelta(hours=3)),
              event(3, "email.sent", NOW - timedelta(hours=2)), event(4, "account.health", NOW - timedelta(hours=1)),
              event(5, "account.health", NOW)]
    async with state_store.transaction() as tx:
        for item in events:
            await tx.record_event(item, NOW)
    found = await state_store.events_between("account.health", NOW - timedelta(days=1), NOW)
    assert [json.loads(body)["data"]["n"] for body in found] == [2, 4]
    latest = await state_store.events_between("account.health", NOW - timedelta(days=3), NOW, limit=1)
    assert [json.loads(body)["id"] for body in latest] == ["e4"]
