"""Worker + executor against a real SQLite store and a recording fake vendor (no broker needed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.broker.base import Delivery, Verdict
from bot.errors import VendorNotFound
from bot.events import CampaignRef, Event
from bot.executor import Executor
from bot.ruleset import load_rules
from bot.state.base import CampaignRecord, Hold, Pending
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignStatus
from bot.worker import Worker
from tests.conftest import REPO, FakeVendor, FrozenClock

REF = CampaignRef.parse("smartlead:42")
T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _delivery(event_type: str, n: int, campaign: str = "smartlead:42") -> Delivery:
    event = Event(id=f"{event_type}:{n}", type=event_type, source=campaign.split(":")[0], occurred_at=T0,
                  campaign=campaign)
    return Delivery(event.model_dump_json().encode(), event.id, event.routing_key, 0, False)


def _spike(sends: int = 100, bounces: int = 3, campaign: str = "smartlead:42") -> list[Delivery]:
    return ([_delivery("email.sent", n, campaign) for n in range(sends)]
            + [_delivery("email.bounced", n, campaign) for n in range(bounces)])


def _worker(store: SqliteStateStore, vendors: dict[str, FakeVendor], clock: FrozenClock,
            dry: frozenset[str] = frozenset()) -> tuple[Worker, Executor]:
    executor = Executor(store, vendors, dry_run_vendors=dry, clock=clock)
    return Worker(store=store, rules=load_rules(REPO / "rules"), executor=executor, clock=clock), executor


@pytest.fixture
def vendors(fake_vendor: FakeVendor) -> dict[str, FakeVendor]:
    fake_vendor.statuses["42"] = CampaignStatus.ACTIVE
    return {"smartlead": fake_vendor, "leadterra": FakeVendor("leadterra", can_read_state=False),
            "inbox": FakeVendor("inbox")}


async def _play(worker: Worker, deliveries: list[Delivery]) -> list[Verdict]:
    return [(await worker.handle(d)).verdict for d in deliveries]


async def test_bounce_spike_pauses_once_with_the_numbers(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    verdicts = await _play(worker, _spike(sends=100, bounces=5))
    assert set(verdicts) == {Verdict.ACK}
    assert vendors["smartlead"].writes() == [("pause", "42")]
    decision = next(r for r in await store.audit(campaign="smartlead:42") if r.kind == "decision" and r.action == "pause")
    assert decision.rule == "bounce-guard" and decision.outcome == "hold_placed"
    assert decision.inputs["numerator"] == 3 and decision.inputs["denominator"] == 100
    assert decision.inputs["threshold"] == {"gte": 0.03} and decision.inputs["rule_digest"]
    assert decision.event_ids == ("email.bounced:0", "email.bounced:1", "email.bounced:2")
    actions = [(r.action, r.outcome) for r in await store.audit() if r.kind == "action"]
    assert actions == [("pause", "paused")]


async def test_redelivered_events_change_nothing(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    await _play(worker, _spike())
    calls_before, audit_before = list(vendors["smartlead"].calls), await store.audit()
    await _play(worker, _spike())
    assert vendors["smartlead"].calls == calls_before
    assert await store.audit() == audit_before


async def test_below_threshold_nothing_happens(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    await _play(worker, _spike(sends=200, bounces=5))      # 2.5 %: under the pause, over the warning
    assert vendors["smartlead"].calls == []
    assert [(r.action, r.outcome) for r in await store.audit()] == [("notify", "warned")]


async def test_below_minimum_sample_nothing_happens(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    await _play(worker, _spike(sends=49, bounces=10))
    assert vendors["smartlead"].calls == []


async def test_campaign_paused_by_someone_else_is_not_claimed_and_never_resumed(store, vendors, clock) -> None:
    vendors["smartlead"].statuses["42"] = CampaignStatus.PAUSED
    worker, executor = _worker(store, vendors, clock)
    await _play(worker, _spike())
    assert vendors["smartlead"].writes() == []
    async with store.transaction() as tx:
        assert not (await tx.campaign("smartlead:42")).bot_paused
        assert not await executor.release(tx, REF, "rule:bounce-guard", clock(), why="test")
    async with executor.lock(REF):
        await executor.reconcile(REF)
    assert vendors["smartlead"].writes() == []


@pytest.mark.parametrize("status", [CampaignStatus.DRAFT, CampaignStatus.STOPPED, CampaignStatus.UNKNOWN])
async def test_campaign_in_other_states_is_left_alone(store, vendors, clock, status) -> None:
    vendors["smartlead"].statuses["42"] = status
    worker, _ = _worker(store, vendors, clock)
    await _play(worker, _spike())
    assert vendors["smartlead"].writes() == []
    skipped = [r for r in await store.audit() if r.kind == "action"]
    assert skipped[0].outcome == "skipped" and str(status) in skipped[0].detail


async def test_vendor_outage_retries_then_pauses_exactly_once(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    deliveries = _spike()
    await _play(worker, deliveries[:-1])
    vendors["smartlead"].fail_next(2)
    assert (await worker.handle(deliveries[-1])).verdict is Verdict.RETRY
    assert (await worker.handle(deliveries[-1])).verdict is Verdict.RETRY   # redelivery: seen, still pending
    assert (await worker.handle(deliveries[-1])).verdict is Verdict.ACK
    assert vendors["smartlead"].writes() == [("pause", "42")]


async def test_crash_after_the_vendor_call_is_recognised_as_ours(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    async with store.transaction() as tx:       # state left by a worker killed right after POST /status
        await tx.set_campaign(CampaignRecord("smartlead:42", pending=Pending.PAUSE_SENT), clock())
        await tx.add_hold(Hold("smartlead:42", "rule:bounce-guard", "rule", "r", clock()))
    vendors["smartlead"].statuses["42"] = CampaignStatus.PAUSED
    assert await worker.recover() == 1
    assert vendors["smartlead"].writes() == []
    async with store.transaction() as tx:
        record = await tx.campaign("smartlead:42")
    assert record.bot_paused and record.pending is None


async def test_release_of_the_last_hold_resumes_once(store, vendors, clock) -> None:
    worker, executor = _worker(store, vendors, clock)
    await _play(worker, _spike())
    async with store.transaction() as tx:
        await tx.add_hold(Hold("smartlead:42", "user:U1", "person", "manual", clock()))
        assert not await executor.release(tx, REF, "rule:bounce-guard", clock(), why="test")
    async with executor.lock(REF):
        await executor.reconcile(REF)
    assert vendors["smartlead"].writes() == [("pause", "42")]          # a hold remains
    async with store.transaction() as tx:
        assert await executor.release(tx, REF, "user:U1", clock(), why="test")
    async with executor.lock(REF):
        await executor.reconcile(REF)
    async with executor.lock(REF):
        await executor.reconcile(REF)
    assert vendors["smartlead"].writes() == [("pause", "42"), ("resume", "42")]


async def test_resume_never_launches_a_campaign_that_became_a_draft(store, vendors, clock) -> None:
    worker, executor = _worker(store, vendors, clock)
    await _play(worker, _spike())
    vendors["smartlead"].statuses["42"] = CampaignStatus.DRAFT
    async with store.transaction() as tx:
        assert await executor.release(tx, REF, "rule:bounce-guard", clock(), why="test")
    async with executor.lock(REF):
        await executor.reconcile(REF)
    assert vendors["smartlead"].writes() == [("pause", "42")]


async def test_dry_run_records_without_vendor_calls(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock, dry=frozenset({"smartlead"}))
    await _play(worker, _spike())
    assert vendors["smartlead"].calls == []
    action = next(r for r in await store.audit() if r.kind == "action")
    assert action.outcome == "dry_run" and "would have paused smartlead:42" in action.detail


async def test_vendor_without_read_endpoint_is_paused_and_resumed_from_own_state(store, vendors, clock) -> None:
    worker, executor = _worker(store, vendors, clock)
    vendors["leadterra"].statuses["camp_7"] = CampaignStatus.ACTIVE
    await _play(worker, _spike(campaign="leadterra:camp_7"))
    assert vendors["leadterra"].writes() == [("pause", "camp_7")]
    async with store.transaction() as tx:
        assert await executor.release(tx, CampaignRef.parse("leadterra:camp_7"), "rule:bounce-guard", clock(),
                                      why="test")
    async with executor.lock(CampaignRef.parse("leadterra:camp_7")):
        await executor.reconcile(CampaignRef.parse("leadterra:camp_7"))
    assert vendors["leadterra"].writes() == [("pause", "camp_7"), ("resume", "camp_7")]


async def test_vendor_rejection_is_recorded_and_acked(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    deliveries = _spike()
    await _play(worker, deliveries[:-1])
    vendors["smartlead"].fail_next(1, VendorNotFound("smartlead", 404, "GET /campaigns/42"))
    assert (await worker.handle(deliveries[-1])).verdict is Verdict.ACK
    failure = next(r for r in await store.audit() if r.kind == "failure")
    assert "404" in failure.detail and failure.outcome == "failed"


async def test_invalid_message_is_dead_lettered_with_a_reason(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    bad = [b"not json", b'{"id": "x"}', _delivery("email.sent", 1).body.replace(b'"version":1', b'"version":9')]
    for body in bad:
        outcome = await worker.handle(Delivery(body, None, "x", 0, False))
        assert outcome.verdict is Verdict.DEAD and outcome.reason.startswith("invalid event:")


async def test_unknown_event_types_are_recorded_not_fatal(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    assert (await worker.handle(_delivery("vendor.other", 1))).verdict is Verdict.ACK
    recorded = [line async for line in store.events()]
    assert len(recorded) == 1 and recorded[0].startswith('{"version":1,"id":"vendor.other:1"')


async def test_shadow_rule_records_would_pause_and_calls_nothing(store, vendors, clock, tmp_path) -> None:
    text = (REPO / "rules" / "bounce-guard.yaml").read_text().replace("mode: enforce", "mode: shadow")
    (tmp_path / "bounce-shadow.yaml").write_text(text)
    executor = Executor(store, vendors, clock=clock)
    worker = Worker(store=store, rules=load_rules(tmp_path), executor=executor, clock=clock)
    await _play(worker, _spike())
    assert vendors["smartlead"].calls == []
    rows = await store.audit()
    assert [(r.kind, r.outcome) for r in rows] == [("decision", "would_notify"), ("decision", "would_pause")]
    assert rows[1].detail.startswith("shadow: would have paused smartlead:42: bounce rate 3.0%")


class _Notices:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    async def notify(self, notice) -> None:
        self.seen.append((notice.kind, notice.campaign))


async def test_every_action_is_notified_after_it_is_recorded(store, vendors, clock) -> None:
    notices = _Notices()
    executor = Executor(store, vendors, clock=clock, notifier=notices)
    worker = Worker(store=store, rules=load_rules(REPO / "rules"), executor=executor, clock=clock)
    await _play(worker, _spike())
    assert notices.seen == [("warning", "smartlead:42"), ("paused", "smartlead:42")]


async def test_a_person_override_suppresses_the_rule_and_is_recorded_once(store, vendors, clock) -> None:
    worker, executor = _worker(store, vendors, clock)
    async with store.transaction() as tx:
        await executor.override(tx, REF, by="user:U1", now=clock(), until=clock() + timedelta(days=7))
    await _play(worker, _spike(bounces=10))
    assert vendors["smartlead"].calls == []
    suppressed = [r for r in await store.audit() if r.outcome == "suppressed"]
    assert len(suppressed) == 1 and "user:U1 overrode campaign-guard" in suppressed[0].detail
    clock.advance(days=8)                      # the override expired: the rule may pause again
    await _play(worker, [_delivery("email.bounced", 100)])
    assert vendors["smartlead"].writes() == [("pause", "42")]


async def test_a_person_hold_pauses_and_keeps_the_campaign_paused(store, vendors, clock) -> None:
    _, executor = _worker(store, vendors, clock)
    async with store.transaction() as tx:
        assert await executor.hold(tx, Hold("smartlead:42", "user:U1", "person", "checking copy", clock()))
        assert not await executor.hold(tx, Hold("smartlead:42", "user:U1", "person", "again", clock()))
    async with executor.lock(REF):
        await executor.reconcile(REF)
    assert vendors["smartlead"].writes() == [("pause", "42")]


async def test_spent_retry_budget_is_recorded_and_notified_and_the_intent_survives(store, vendors, clock) -> None:
    notices = _Notices()
    executor = Executor(store, vendors, clock=clock, notifier=notices)
    worker = Worker(store=store, rules=load_rules(REPO / "rules"), executor=executor, clock=clock, max_retries=2)
    deliveries = _spike()
    await _play(worker, deliveries[:-1])
    vendors["smartlead"].fail_next(3)
    last = deliveries[-1]
    for attempt in range(3):
        redelivery = Delivery(last.body, last.message_id, last.routing_key, attempt, attempt > 0)
        assert (await worker.handle(redelivery)).verdict is Verdict.RETRY   # the broker dead-letters the 3rd
    failure = [r for r in await store.audit() if r.kind == "failure"]
    assert len(failure) == 1 and "after 3 deliveries" in failure[0].detail and failure[0].action == "pause"
    assert ("failed", "smartlead:42") in notices.seen
    await worker.sweep()                      # the vendor is back: the pending pause is applied, once
    assert vendors["smartlead"].writes() == [("pause", "42")]


async def test_an_absence_is_decided_on_the_clock_when_its_age_is_reached(store, vendors, clock, tmp_path) -> None:
    # no-outcome's semantics in enforce mode: 0 replies after 500 sends and 48 hours since the first send;
    # nothing arrives after the sends, so only the sweep (Worker.tick over `due` windows) can decide it
    text = (REPO / "rules" / "no-outcome.yaml").read_text().replace("mode: shadow", "mode: enforce")
    (tmp_path / "no-outcome.yaml").write_text(text)
    executor = Executor(store, vendors, clock=clock)
    worker = Worker(store=store, rules=load_rules(tmp_path), executor=executor, clock=clock)
    await _play(worker, [_delivery("email.sent", n) for n in range(500)])
    clock.advance(hours=47, minutes=59)
    await worker.sweep()
    assert vendors["smartlead"].writes() == []
    clock.advance(minutes=1)
    await worker.sweep()
    assert vendors["smartlead"].writes() == [("pause", "42")]


def _observed() -> float:
    from bot.metrics import DECISION_SECONDS
    return next(s.value for m in DECISION_SECONDS.collect() for s in m.samples if s.name.endswith("_count"))


async def test_each_message_observes_its_decision_time(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    before = _observed()
    await worker.handle_batch(_spike(sends=3, bounces=0))
    await worker.handle(_delivery("vendor.other", 1))
    assert _observed() - before == 4


class _StuckStore:
    """The store, with transactions that wait for `go` before they begin."""

    def __init__(self, store: SqliteStateStore) -> None:
        self._store, self.go, self.waiting = store, asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        self.waiting.set()
        await self.go.wait()
        async with self._store.transaction() as tx:
            yield tx


async def test_a_batch_whose_judgement_is_cancelled_is_never_acked(store, vendors, clock) -> None:
    stuck = _StuckStore(store)
    executor = Executor(store, vendors, clock=clock)
    worker = Worker(store=stuck, rules=load_rules(REPO / "rules"), executor=executor, clock=clock)  # type: ignore[arg-type]
    handling = asyncio.create_task(worker.handle_batch(_spike(sends=2, bounces=0)))
    await asyncio.wait_for(stuck.waiting.wait(), 5)
    [judging] = worker._judging                           # shutting down: the judgement is cancelled
    judging.cancel()
    with pytest.raises(asyncio.CancelledError):           # no outcome: the broker returns the messages
        await asyncio.wait_for(handling, 5)
    assert [line async for line in store.events()] == []


async def test_the_same_event_twice_in_one_batch_is_recorded_and_counted_once(store, vendors, clock) -> None:
    worker, _ = _worker(store, vendors, clock)
    twice = _delivery("email.sent", 7)
    assert [o.verdict for o in await worker.handle_batch([twice, _delivery("email.sent", 8), twice])] == [
        Verdict.ACK] * 3
    assert (worker.handled["ack"], worker.handled["duplicate"]) == (2, 1)
    async with store.transaction() as tx:
        window = await tx.window("bounce-guard", "smartlead:42")
    assert window is not None and window["seq"] == "dd"             # two sends in the window, not three
