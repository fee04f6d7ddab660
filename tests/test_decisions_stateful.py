"""A stateful property test of the decision core (hypothesis RuleBasedStateMachine).

It drives three campaigns (two at a vendor with a read endpoint, one at a vendor without) through random
interleavings of rule events, alerts firing and resolving (several in one notification), Slack pauses
and resumes, people acting in the vendor's UI, vendor calls held in flight behind a gate (as a rate-limit
wait holds them), failing calls, answers lost after the write, drift reads, sweeps, and crashes with a
restart on the same database. Work runs as tasks on one event loop, so a step can land while another
step's vendor call is in flight.

Checked after every step, and at quiescence (everything finished, a sweep run):
- every resume carries the guard that re-reads the holds right before it is sent, and no campaign the bot
  resumed stays running under a hold;
- a pause campaign-guard made (it saw the campaign running, then paused) with no hold left ends resumed;
- no pause is claimed (`bot_paused`) without the evidence, and none is resumed unless it was the bot's
  (as of the bot's last read: a person acting while the write waits for the rate limit races it);
- never STOPPED (the fakes have no such write), never a draft started;
- at most one answered vendor write per intent (resends only after a lost answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.broker.base import Delivery
from bot.errors import VendorUnavailable
from bot.events import CampaignRef, Event
from bot.executor import Executor
from bot.ruleset import RuleSet, load_rules
from bot.rulespec import Rule
from bot.slack import actions
from bot.slack.views import VendorView
from bot.state.base import active
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignStatus, Guard, Observation, WriteResult
from bot.worker import Worker
from tests.conftest import REPO, FakeVendor

T0 = datetime(2026, 11, 23, tzinfo=UTC)
CAMPAIGNS = ("smartlead:1", "smartlead:2", "leadterra:camp_1")
FLOOR = Rule.model_validate({
    "name": "floor", "description": "d", "on": ["campaign.metrics"],
    "measure": {"value": "data.rate", "sample": "data.sent", "min_sample": 10},
    "pause": {"when": {"lt": 0.2}}, "release": {"when": {"gte": 0.5}, "after": "1h"},
})
_SHIPPED = {r.name: r for r in load_rules(REPO / "rules").rules}
RULES = RuleSet([FLOOR, _SHIPPED["alert-pause"], _SHIPPED["alert-release"], _SHIPPED["vendor-paused"]])


class TruthVendor(FakeVendor):
    """The fake vendor, plus the truth the invariants need: who moved each campaign last, whether the
    bot's own write paused it, and every violation seen at the moment of a write."""

    def __init__(self, name: str, machine: DecisionMachine, *, can_read_state: bool) -> None:
        super().__init__(name, can_read_state=can_read_state)
        self.machine = machine
        self.bot_paused_truth: dict[str, bool] = {}
        self.last_actor: dict[str, str] = {}
        self.answered: dict[tuple[str, str, datetime | None], int] = {}
        self.lose_answer = False
        self.paused_for: dict[str, datetime | None] = {}
        self.resumed_for: dict[str, datetime | None] = {}
        #: campaigns a person changed since the bot last read them: a write that waited (rate limit) after
        #: its read races the person, and no vendor offers a conditional write to close that window
        self.person_since_read: set[str] = set()
        #: the send time of the intent each campaign's write belongs to (what the guard stored)
        self.intent: dict[str, datetime | None] = {}

    def _tracked(self, campaign_id: str, guard: Guard | None, sent_at: datetime | None) -> Guard | None:
        """The bot's guard, noting which intent the write belongs to once it lets the write through."""
        self.intent[campaign_id] = sent_at
        if guard is None:
            return None

        async def tracked() -> bool:
            wanted = await guard()
            if wanted and sent_at is None:
                self.intent[campaign_id] = await self.machine.stored_sent_at(f"{self.name}:{campaign_id}")
            return wanted
        return tracked

    async def observe(self, campaign_id: str, *, background: bool = False) -> Observation:
        self.person_since_read.discard(campaign_id)
        return await super().observe(campaign_id, background=background)

    def person(self, campaign_id: str, status: CampaignStatus) -> None:
        self.resumed_for.pop(campaign_id, None)
        self.person_since_read.add(campaign_id)
        self.set(campaign_id, status)
        self.last_actor[campaign_id] = "person"
        self.bot_paused_truth[campaign_id] = False

    async def pause(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                    sent_at: datetime | None = None) -> WriteResult:
        before = self.statuses.get(campaign_id)
        guard = self._tracked(campaign_id, guard, sent_at)
        if not self.can_read_state and before is CampaignStatus.PAUSED and self.paused_for.get(campaign_id) == sent_at \
                and sent_at is not None:
            await self._send("pause", campaign_id, guard)   # a resend after a lost answer: the vendor's pausedAt
            return self._answered("pause", campaign_id,     # is not earlier than the first send
                                  WriteResult(CampaignStatus.PAUSED, sent=True, proven=True))
        result = await super().pause(campaign_id, current=current, guard=guard, sent_at=sent_at)
        if result.sent and before is CampaignStatus.ACTIVE:
            self.bot_paused_truth[campaign_id] = True
            self.last_actor[campaign_id] = "bot"
            self.paused_for[campaign_id] = self.intent.get(campaign_id)
        return self._answered("pause", campaign_id, result) if result.sent else result

    async def resume(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                     sent_at: datetime | None = None) -> WriteResult:
        resend = self.resumed_for.get(campaign_id) == sent_at is not None and \
            self.statuses.get(campaign_id) is CampaignStatus.ACTIVE    # the same intent, its answer lost: a no-op
        guard = self._tracked(campaign_id, guard, sent_at)

        async def checked() -> bool:
            if guard is None:
                self.machine.violations.append(f"resume of {campaign_id} sent without a guard")
                return True
            wanted = await guard()
            if wanted and not resend:
                self.machine.check_resume(self.name, campaign_id)
            return wanted

        before = self.statuses.get(campaign_id)
        result = await super().resume(campaign_id, current=current, guard=checked, sent_at=sent_at)
        if result.sent and before is CampaignStatus.PAUSED:
            self.last_actor[campaign_id] = "bot"
            self.bot_paused_truth[campaign_id] = False
            self.resumed_for[campaign_id] = self.intent.get(campaign_id)
        return self._answered("resume", campaign_id, result) if result.sent else result

    def _answered(self, op: str, campaign_id: str, result: WriteResult) -> WriteResult:
        if self.lose_answer:        # the write went through; its answer is lost (a timeout)
            self.lose_answer = False
            raise VendorUnavailable(self.name, None, f"POST {op}", "TimeoutError")
        sent_at = self.intent.get(campaign_id)
        key = (op, campaign_id, sent_at)
        self.answered[key] = self.answered.get(key, 0) + 1
        if self.answered[key] > 1:
            self.machine.violations.append(f"{op} of {campaign_id} answered twice for one intent ({sent_at})")
        return result


class DecisionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="cg-stateful-"))
        self.now = T0
        self.n = 0
        self.violations: list[str] = []
        self.vendors = {"smartlead": TruthVendor("smartlead", self, can_read_state=True),
                        "leadterra": TruthVendor("leadterra", self, can_read_state=False)}
        for key in CAMPAIGNS:
            ref = CampaignRef.parse(key)
            self.vendors[ref.vendor].statuses[ref.id] = CampaignStatus.ACTIVE
        self.firing: dict[str, list[str]] = {}      # alert fingerprint → campaigns its labels name
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stack: AsyncExitStack | None = None
        self.run(self._start())

    # ------------------------------------------------------------------ plumbing

    def clock(self) -> datetime:
        """Strictly increasing (a millisecond a read), so each write-ahead intent has its own send time."""
        self.now += timedelta(milliseconds=1)
        return self.now

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _start(self) -> None:
        self.stack = AsyncExitStack()
        self.store = await self.stack.enter_async_context(SqliteStateStore.open(self.dir / "state.db"))
        self.executor = Executor(self.store, self.vendors, clock=self.clock)
        self.worker = Worker(store=self.store, rules=RULES, executor=self.executor, clock=self.clock)
        await self.worker.start(frozenset(self.vendors))

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.run(self._idle())

    async def _idle(self) -> None:
        """Let every task run until each waits on something outside the loop's ready work (a gate). A COMMIT
        runs in a thread (its fsync): a read of the store waits for it, then the tasks go on."""
        for _ in range(3):
            for _ in range(50):
                await asyncio.sleep(0)
            await self.store.audit(limit=1)

    async def _swallow(self, coro: Any) -> None:
        with contextlib.suppress(VendorUnavailable):
            await coro

    async def _event(self, event_type: str, *, campaign: str | None, source: str, data: dict[str, Any]) -> None:
        self.n += 1
        event = Event(id=f"e{self.n}", type=event_type, source=source, occurred_at=self.now, campaign=campaign,
                      data=data)
        await self.worker.handle(Delivery(event.model_dump_json().encode(), event.id, event.routing_key, 0, False))

    async def stored_sent_at(self, key: str) -> datetime | None:
        async with self.store.transaction() as tx:
            return (await tx.campaign(key)).sent_at

    def check_resume(self, vendor: str, campaign_id: str) -> None:
        """At the moment a resume is sent, after its guard found no hold: the pause must have been the bot's.

        "No resume while a hold remains" is the guard's own read, the last one before the request (every
        resume must carry one: checked by the caller). A hold committed after that read races the request
        itself; the reconcile then pauses again, which the quiescence check (no bot-resumed campaign left
        running under a hold) proves."""
        key = f"{vendor}:{campaign_id}"
        raced = campaign_id in self.vendors[vendor].person_since_read
        if not self.vendors[vendor].bot_paused_truth.get(campaign_id) and not raced:
            self.violations.append(f"resume of {key}, whose pause was not campaign-guard's")

    def teardown(self) -> None:
        async def close() -> None:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if self.stack is not None:
                await self.stack.aclose()
        self.run(close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ steps

    @rule(campaign=st.sampled_from(CAMPAIGNS), rate=st.sampled_from([0.05, 0.9]))
    def metrics(self, campaign: str, rate: float) -> None:
        self.spawn(self._event("campaign.metrics", campaign=campaign, source="events",
                               data={"rate": rate, "sent": 50}))

    @rule(campaigns=st.lists(st.sampled_from(CAMPAIGNS), min_size=1, max_size=2, unique=True),
          fingerprint=st.sampled_from(["fa", "fb"]))
    def alert_fires(self, campaigns: list[str], fingerprint: str) -> None:
        self.firing[fingerprint] = campaigns
        self.spawn(self._event("alert.firing", campaign=None, source="alertmanager", data={
            "fingerprint": fingerprint, "alertname": "Blacklisted", "summary": "s", "starts_at": self.now.isoformat(),
            "labels": {"alertname": "Blacklisted", "campaign": " ".join(campaigns)}}))

    @precondition(lambda self: bool(self.firing))
    @rule(data=st.data())
    def alert_resolves(self, data: st.DataObject) -> None:
        fingerprint = data.draw(st.sampled_from(sorted(self.firing)))
        campaigns = self.firing.pop(fingerprint)
        self.spawn(self._event("alert.resolved", campaign=None, source="alertmanager", data={
            "fingerprint": fingerprint, "alertname": "Blacklisted", "summary": "s", "starts_at": self.now.isoformat(),
            "labels": {"alertname": "Blacklisted", "campaign": " ".join(campaigns)}}))

    @rule(campaign=st.sampled_from(CAMPAIGNS), pause=st.booleans())
    def slack(self, campaign: str, pause: bool) -> None:
        self.spawn(self._swallow(self._slack(CampaignRef.parse(campaign), pause)))

    async def _slack(self, ref: CampaignRef, pause: bool) -> None:
        """What SlackOperator does for a command: under the lock, one transaction, then the reconcile."""
        async with self.executor.lock(ref):
            async with self.store.transaction() as tx:
                if pause:
                    await actions.pause(tx, self.executor, ref, user="U1", reason="", now=self.now,
                                        event_id=f"slack{self.n}", view=VendorView(None))
                else:
                    await actions.resume(tx, self.executor, ref, user="U1", now=self.now,
                                         override_for=timedelta(days=7), view=VendorView(None))
            await self.executor.reconcile(ref)

    @rule(campaign=st.sampled_from(CAMPAIGNS), status=st.sampled_from([CampaignStatus.ACTIVE, CampaignStatus.PAUSED]))
    def person_in_the_ui(self, campaign: str, status: CampaignStatus) -> None:
        ref = CampaignRef.parse(campaign)
        vendor = self.vendors[ref.vendor]
        if vendor.statuses.get(ref.id) is status:
            return
        vendor.person(ref.id, status)
        if not vendor.can_read_state:      # a vendor without reads is watched through its webhooks only
            kind = "campaign.started" if status is CampaignStatus.ACTIVE else "campaign.paused"
            self.spawn(self._event(kind, campaign=campaign, source=ref.vendor, data={"by": "user"}))

    @rule()
    def drift_watch(self) -> None:
        self.spawn(self.worker.watch())

    @rule()
    def sweep(self) -> None:
        self.spawn(self.worker.sweep())

    @rule(vendor=st.sampled_from(["smartlead", "leadterra"]))
    def calls_wait_at_the_gate(self, vendor: str) -> None:
        if self.vendors[vendor].gate is None:      # calls already waiting keep waiting on the same gate
            self.vendors[vendor].gate = asyncio.Event()

    @rule(vendor=st.sampled_from(["smartlead", "leadterra"]))
    def gate_opens(self, vendor: str) -> None:
        gate = self.vendors[vendor].gate
        self.vendors[vendor].gate = None
        if gate is not None:
            gate.set()
        self.run(self._idle())

    @rule(vendor=st.sampled_from(["smartlead", "leadterra"]))
    def next_call_fails(self, vendor: str) -> None:
        self.vendors[vendor].fail_next(1)

    @rule(vendor=st.sampled_from(["smartlead", "leadterra"]))
    def next_answer_is_lost(self, vendor: str) -> None:
        self.vendors[vendor].lose_answer = True

    @rule(minutes=st.sampled_from([5, 61, 600]))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def crash_and_restart(self) -> None:
        async def crash() -> None:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for vendor in self.vendors.values():
                vendor.gate, vendor.failures = None, []
            assert self.stack is not None
            await self.stack.aclose()
            await self._start()
        self.run(crash())

    # ------------------------------------------------------------------ invariants

    @invariant()
    def nothing_violated(self) -> None:
        assert self.violations == [], self.violations
        for vendor in self.vendors.values():
            assert vendor.launched_drafts == []

    @invariant()
    def claims_have_evidence(self) -> None:
        async def check() -> None:
            for key in CAMPAIGNS:
                ref = CampaignRef.parse(key)
                vendor = self.vendors[ref.vendor]
                async with self.store.transaction() as tx:
                    record = await tx.campaign(key)
                if record.bot_paused and record.pending is None and vendor.last_actor.get(ref.id) == "bot":
                    assert vendor.bot_paused_truth.get(ref.id), f"{key}: a pause claimed without evidence"
        self.run(check())

    @precondition(lambda self: os.environ.get("BOT_STATEFUL_QUIESCE", "1") == "1")
    @rule()
    def quiesce(self) -> None:
        """Open the gates, stop failing, finish everything, sweep: then the holds and the vendor agree."""
        async def settle() -> None:
            for vendor in self.vendors.values():
                if vendor.gate is not None:
                    vendor.gate.set()
                vendor.gate, vendor.failures, vendor.lose_answer = None, [], False
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for _ in range(3):
                await self.worker.sweep()
            for key in CAMPAIGNS:
                ref = CampaignRef.parse(key)
                vendor = self.vendors[ref.vendor]
                async with self.store.transaction() as tx:
                    holds = active(await tx.holds(key))
                    record = await tx.campaign(key)
                status = vendor.statuses.get(ref.id)
                assert record.pending is None, f"{key}: intent {record.pending} left after a sweep"
                if holds and vendor.last_actor.get(ref.id) == "bot":
                    assert status is CampaignStatus.PAUSED, f"{key}: resumed by the bot, still held by {holds}"
                if not holds and vendor.bot_paused_truth.get(ref.id):
                    assert status is CampaignStatus.ACTIVE, f"{key}: the bot's pause outlived its last hold"
        self.run(settle())


DecisionMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("BOT_HYPOTHESIS_EXAMPLES", "60")), stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestDecisions = DecisionMachine.TestCase
