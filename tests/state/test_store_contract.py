"""The promises of bot.state.protocol, checked for every state store implementation: SQLite, and PostgreSQL
(a fresh database per test, tests/postgres_db.py). Group commit, SQLite's own way of keeping
`transaction()`'s promises, is tested in tests/test_group_commit.py; what PostgreSQL adds (several
processes on one database) in tests/state/test_postgres_fleet.py."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.errors import StaleRecord
from bot.events import CampaignRef, Event
from bot.state.base import AuditRow, CampaignRecord, Hold, HoldKind, Pending
from bot.state.protocol import StateStore, Transaction

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)



def _row(detail: str, campaign: str | None = None) -> AuditRow:
    return AuditRow(NOW, "decision", campaign, None, "pause", "applied", detail)


def _hold(campaign: str, owner: str, kind: str = HoldKind.RULE) -> Hold:
    return Hold(campaign, owner, kind, "test", NOW)


def _event(event_id: str, event_type: str = "email.bounced", source: str = "smartlead",
           campaign: str | None = "smartlead:1", **data: Any) -> Event:
    return Event(id=event_id, type=event_type, source=source, occurred_at=NOW,
                 campaign=CampaignRef.parse(campaign) if campaign else None, data=data)


def _shape(cls: type) -> dict[str, tuple[bool, list[tuple[str, Any, Any]]]]:
    """Public methods: (async?, parameters as (name, kind, default)); annotations are the type checker's job."""
    return {
        name: (inspect.iscoroutinefunction(member),
               [(p.name, p.kind, p.default) for p in inspect.signature(member).parameters.values()])
        for name in dir(cls) if not name.startswith("_") and callable(member := getattr(cls, name))
    }


async def test_the_store_and_its_transaction_have_every_method_of_the_protocol(state_store: StateStore) -> None:
    async with state_store.transaction() as tx:
        pass
    for protocol, implementation in ((StateStore, type(state_store)), (Transaction, type(tx))):
        expected = _shape(protocol)
        assert len(expected) > 5, protocol
        actual = _shape(implementation)
        assert {name: actual.get(name) for name in expected} == expected, implementation


async def test_set_campaign_is_a_compare_and_set(state_store: StateStore) -> None:
    later = NOW + timedelta(minutes=1)
    async with state_store.transaction() as tx:
        assert await tx.campaign("smartlead:1") == CampaignRecord("smartlead:1")      # never stored: version 0
        first = await tx.set_campaign(CampaignRecord("smartlead:1", bot_paused=True, pending=Pending.PAUSE), NOW)
    assert (first.version, first.updated_at, first.bot_paused, first.pending) == (1, NOW, True, Pending.PAUSE)
    async with state_store.transaction() as tx:
        assert await tx.campaign("smartlead:1") == first
        second = await tx.set_campaign(CampaignRecord("smartlead:1", vendor_status="paused", version=1), later)
    assert (second.version, second.updated_at) == (2, later)

    ran: list[str] = []

    async def callback() -> None:
        ran.append("on_commit")

    for stale in (first, CampaignRecord("smartlead:1")):        # a stale read, and a "new" record that is not
        with pytest.raises(StaleRecord):
            async with state_store.transaction() as tx:
                tx.on_commit(callback)
                await tx.add_audit(_row(f"stale {stale.version}"))
                await tx.set_campaign(stale, later)
    async with state_store.transaction() as tx:
        assert await tx.campaign("smartlead:1") == second       # nothing changed
    assert await state_store.audit() == []                      # the transaction rolled back
    assert ran == []


async def test_remove_hold_of_every_key_removes_the_rules_per_key_holds_only(state_store: StateStore) -> None:
    owners = ["rule:x", "rule:x@k1", "rule:x@k2", "rule:xy", "rule:xy@k", "rule:x_@k", "user:U1"]
    async with state_store.transaction() as tx:
        for owner in owners:
            assert await tx.add_hold(_hold("smartlead:1", owner))
        assert await tx.add_hold(_hold("smartlead:2", "rule:x@k1"))
        assert await tx.add_hold(_hold("smartlead:3", "rule:a_b@k"))
        assert await tx.add_hold(_hold("smartlead:3", "rule:a%@k"))
        assert await tx.add_hold(_hold("smartlead:3", "rule:aXb@k"))

    async with state_store.transaction() as tx:
        assert not await tx.remove_hold("smartlead:1", "rule:x@k")              # exact owner only
        assert await tx.remove_hold("smartlead:1", "rule:x", every_key=True)
        assert not await tx.remove_hold("smartlead:1", "rule:x", every_key=True)
        # wildcards of a LIKE pattern are plain characters in an owner
        assert await tx.remove_hold("smartlead:3", "rule:a_b", every_key=True)
        assert await tx.remove_hold("smartlead:3", "rule:a%", every_key=True)
    async with state_store.transaction() as tx:
        assert [h.owner for h in await tx.holds("smartlead:1")] == ["rule:x_@k", "rule:xy", "rule:xy@k", "user:U1"]
        assert [h.owner for h in await tx.holds("smartlead:2")] == ["rule:x@k1"]      # another campaign's
        assert [h.owner for h in await tx.holds("smartlead:3")] == ["rule:aXb@k"]
        assert await tx.held_by("rule:x@k1") == ["smartlead:2"]


async def test_add_hold_keeps_the_hold_already_there(state_store: StateStore) -> None:
    async with state_store.transaction() as tx:
        assert await tx.add_hold(_hold("smartlead:1", "rule:x"))
        assert not await tx.add_hold(Hold("smartlead:1", "rule:x", HoldKind.RULE, "another reason", NOW))
        assert [h.reason for h in await tx.holds("smartlead:1")] == ["test"]


async def test_record_event_dedupes_on_the_event_id(state_store: StateStore) -> None:
    event = _event("e1")
    body = event.model_dump_json().encode()
    async with state_store.transaction() as tx:
        assert await tx.record_event(event, NOW, body=body)
        assert not await tx.record_event(event, NOW, body=body)
    async with state_store.transaction() as tx:                 # a redelivery, later
        assert not await tx.record_event(event, NOW + timedelta(minutes=5))
        assert await tx.record_event(_event("e2", campaign="smartlead:2"), NOW)
    assert [line async for line in state_store.events(campaign="smartlead:1")] == [body.decode()]
    assert len([line async for line in state_store.events()]) == 2


async def test_record_events_records_a_batch_once_and_says_which_ids_are_new(state_store: StateStore) -> None:
    first, second, third = _event("b1"), _event("b2", campaign="smartlead:2"), _event("b3")
    resolved = _event("b4", "alert.resolved", "alertmanager", None, fingerprint="f1", starts_at="s1")
    async with state_store.transaction() as tx:
        assert await tx.record_event(first, NOW)
    body = second.model_dump_json().encode()
    async with state_store.transaction() as tx:                 # b1 before; b2 twice in the batch
        recorded = await tx.record_events([(third, None), (first, None), (second, body), (second, body),
                                           (resolved, None)], NOW)
        assert recorded == {"b2", "b3", "b4"}
        assert await tx.alert_resolved("f1", "s1")
        assert await tx.record_events([(third, None)], NOW) == set()      # this transaction's own
    assert [line async for line in state_store.events(campaign="smartlead:2")] == [body.decode()]
    assert len([line async for line in state_store.events()]) == 4


async def test_alert_resolved_finds_the_recorded_resolution_of_that_occurrence(state_store: StateStore) -> None:
    async with state_store.transaction() as tx:
        await tx.record_event(_event("a1", "alert.resolved", "alertmanager", None, fingerprint="f1", starts_at="s1"), NOW)
        await tx.record_event(_event("a2", "alert.firing", "alertmanager", None, fingerprint="f2", starts_at="s1"), NOW)
        assert await tx.alert_resolved("f1", "s1")
        assert not await tx.alert_resolved("f1", "s2")
        assert not await tx.alert_resolved("f2", "s1")          # firing, not resolved


async def test_on_commit_runs_after_the_commit_and_never_on_rollback(state_store: StateStore) -> None:
    ran: list[Any] = []

    def recorder(name: str) -> Callable[[], Awaitable[None]]:
        async def callback() -> None:
            ran.append((name, [r.detail for r in await state_store.audit()]))
        return callback

    async with state_store.transaction() as tx:
        await tx.add_audit(_row("one"))
        tx.on_commit(recorder("first"))
        tx.on_commit(recorder("second"))
        assert ran == []
    # in order, before transaction() returned, and each saw the write committed
    assert ran == [("first", ["one"]), ("second", ["one"])]

    with pytest.raises(RuntimeError, match="boom"):
        async with state_store.transaction() as tx:
            await tx.add_audit(_row("two"))
            tx.on_commit(recorder("rolled back"))
            raise RuntimeError("boom")
    assert len(ran) == 2
    assert [r.detail for r in await state_store.audit()] == ["one"]


async def test_a_failing_on_commit_callback_reaches_the_caller_after_the_commit(state_store: StateStore) -> None:
    ran: list[str] = []

    async def fails() -> None:
        raise ValueError("callback failed")

    async def later() -> None:
        ran.append("later")

    with pytest.raises(ValueError, match="callback failed"):
        async with state_store.transaction() as tx:
            await tx.add_audit(_row("kept"))
            tx.on_commit(fails)
            tx.on_commit(later)
    assert ran == []
    assert [r.detail for r in await state_store.audit()] == ["kept"]


async def test_windows_where_finds_the_windows_with_the_flag(state_store: StateStore) -> None:
    active = {"active": True, "counts": [1, 2], "since": "2026-11-30T09:00:00+00:00"}
    async with state_store.transaction() as tx:
        await tx.set_window("bounce", "smartlead:1", active, NOW)
        await tx.set_window("bounce", "smartlead:2", {"active": False}, NOW)
        await tx.set_window("bounce", "smartlead:3", {"counts": [3]}, NOW)
        await tx.set_window("bounce", "smartlead:4", {**active, "counts": []}, NOW)
        await tx.set_window("spam", "smartlead:5", active, NOW)
        assert await tx.window("bounce", "smartlead:1") == active
        assert await tx.window("bounce", "smartlead:9") is None
    found = sorted(await state_store.windows_where("bounce", "active"))
    assert found == [("smartlead:1", active), ("smartlead:4", {**active, "counts": []})]
    async with state_store.transaction() as tx:                 # no longer active: no longer found
        await tx.set_window("bounce", "smartlead:1", {"active": False}, NOW)
    assert [key for key, _ in await state_store.windows_where("bounce", "active")] == ["smartlead:4"]


async def test_take_windows_gives_each_as_this_transaction_sees_it_and_set_windows_stores_them(
        state_store: StateStore) -> None:
    async with state_store.transaction() as tx:
        await tx.set_window("bounce", "smartlead:1", {"seq": "dd"}, NOW)
    pairs = [("bounce", "smartlead:1"), ("bounce", "smartlead:2"), ("spam", "smartlead:1")]
    async with state_store.transaction() as tx:
        await tx.set_window("spam", "smartlead:1", {"seq": "n"}, NOW)          # this transaction's own write
        assert await tx.take_windows(pairs) == {pairs[0]: {"seq": "dd"}, pairs[1]: None, pairs[2]: {"seq": "n"}}
        await tx.set_windows({pairs[0]: {"seq": "ddd"}, pairs[1]: {"seq": "d"}}, NOW)
        assert await tx.take_windows(pairs[:2]) == {pairs[0]: {"seq": "ddd"}, pairs[1]: {"seq": "d"}}
    async with state_store.transaction() as tx:                 # committed; a later transaction reads them
        assert await tx.take_windows(pairs) == {pairs[0]: {"seq": "ddd"}, pairs[1]: {"seq": "d"},
                                                pairs[2]: {"seq": "n"}}
    with pytest.raises(RuntimeError):
        async with state_store.transaction() as tx:
            await tx.take_windows(pairs[:1])
            await tx.set_windows({pairs[0]: {"seq": "lost"}}, NOW)
            raise RuntimeError("rolled back")
    async with state_store.transaction() as tx:
        assert await tx.window(*pairs[0]) == {"seq": "ddd"}


async def test_the_campaign_lists(state_store: StateStore) -> None:
    async with state_store.transaction() as tx:
        await tx.add_hold(_hold("smartlead:1", "rule:x"))                    # active holds: watched
        await tx.add_hold(_hold("smartlead:1", "alert:f1", HoldKind.ALERT))
        await tx.add_hold(_hold("smartlead:2", "rule:x", HoldKind.SHADOW))    # passive only: not watched
        await tx.add_hold(_hold("smartlead:3", "pending:rule:x", HoldKind.PENDING))
        await tx.add_hold(_hold("smartlead:4", "user:U1", HoldKind.PERSON))
        await tx.add_hold(_hold("smartlead:5", "vendor", HoldKind.VENDOR))
        await tx.set_campaign(CampaignRecord("smartlead:6", bot_paused=True), NOW)   # paused by the bot: watched
        await tx.set_campaign(CampaignRecord("smartlead:7", dry_paused=True), NOW)   # a dry run's pause: not
        await tx.set_campaign(CampaignRecord("smartlead:8", pending=Pending.RESUME_SENT), NOW)
        await tx.set_campaign(CampaignRecord("smartlead:9", vendor_status="active"), NOW)
        await tx.set_campaign(CampaignRecord("smartlead:1", bot_paused=True), NOW)
        assert await tx.held_or_paused() == [f"smartlead:{n}" for n in (1, 2, 3, 4, 5, 6, 7)]
    assert await state_store.watched_campaigns() == ["smartlead:1", "smartlead:4", "smartlead:5", "smartlead:6"]
    assert await state_store.dry_paused_campaigns() == ["smartlead:7"]
    assert await state_store.pending_campaigns() == ["smartlead:8"]
    async with state_store.transaction() as tx:
        await tx.remove_hold("smartlead:4", "user:U1")
        await tx.set_campaign(CampaignRecord("smartlead:6", version=1), NOW)      # resumed
    assert await state_store.watched_campaigns() == ["smartlead:1", "smartlead:5"]
