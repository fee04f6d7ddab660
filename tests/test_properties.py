"""Property-based invariants over random event streams (hypothesis).

- never a resume of a campaign campaign-guard did not pause (or that is not paused right now);
- never a resume while a hold remains;
- at most one vendor pause per hold placed;
- hysteresis never releases outside the release threshold.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.broker.base import Delivery, Verdict
from bot.engine import compare, evaluate
from bot.events import CampaignRef, Event
from bot.executor import Executor
from bot.ruleset import RuleSet
from bot.rulespec import Rule
from bot.state.base import Hold
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignStatus, WriteResult
from bot.worker import Worker
from tests.conftest import FakeVendor

T0 = datetime(2026, 11, 23, tzinfo=UTC)
CAMPAIGNS = ("1", "2", "3")

BOUNCE = Rule.model_validate({
    "name": "bounce", "description": "d", "on": ["email.sent", "email.bounced"],
    "window": {"last": 10, "of": "email.sent"}, "measure": {"ratio": ["email.bounced", "email.sent"], "min_sample": 5},
    "pause": {"when": {"gte": 0.3}},
})
FLOOR = Rule.model_validate({
    "name": "floor", "description": "d", "on": ["campaign.metrics"],
    "measure": {"value": "data.rate", "sample": "data.sent", "min_sample": 10},
    "pause": {"when": {"lt": 0.2}}, "release": {"when": {"gte": 0.5}, "after": "1h"},
})


class CheckingVendor(FakeVendor):
    """A fake vendor that knows who paused what, and checks every resume against the invariants."""

    def __init__(self, store: SqliteStateStore) -> None:
        super().__init__("smartlead")
        self.store = store
        self.by_bot: set[str] = set()
        self.violations: list[str] = []

    async def pause(self, campaign_id: str, **kwargs: Any) -> WriteResult:
        if self.statuses.get(campaign_id) is CampaignStatus.ACTIVE:
            self.by_bot.add(campaign_id)
        return await super().pause(campaign_id, **kwargs)

    async def resume(self, campaign_id: str, **kwargs: Any) -> WriteResult:
        if self.statuses.get(campaign_id) is not CampaignStatus.PAUSED:
            self.violations.append(f"resume of {campaign_id} while {self.statuses.get(campaign_id)}")
        if campaign_id not in self.by_bot:
            self.violations.append(f"resume of {campaign_id}, which campaign-guard did not pause")
        async with self.store.transaction() as tx:
            holds = [h.owner for h in await tx.holds(f"smartlead:{campaign_id}")
                     if h.kind not in ("shadow", "suppressed", "pending")]
        if holds:
            self.violations.append(f"resume of {campaign_id} while held by {holds}")
        self.by_bot.discard(campaign_id)
        return await super().resume(campaign_id, **kwargs)

    def external(self, campaign_id: str, status: CampaignStatus) -> bool:
        """A person (or the vendor) changes the status outside campaign-guard; True if it changed."""
        if self.statuses.get(campaign_id) is status:
            return False
        self.set(campaign_id, status)
        self.by_bot.discard(campaign_id)
        return True


step = st.one_of(
    st.tuples(st.just("sent"), st.sampled_from(CAMPAIGNS), st.integers(1, 6)),
    st.tuples(st.just("bounced"), st.sampled_from(CAMPAIGNS), st.integers(1, 3)),
    st.tuples(st.just("metrics"), st.sampled_from(CAMPAIGNS), st.floats(0, 1)),
    st.tuples(st.just("person_hold"), st.sampled_from(CAMPAIGNS), st.just(0)),
    st.tuples(st.just("person_release"), st.sampled_from(CAMPAIGNS), st.just(0)),
    st.tuples(st.just("release_rules"), st.sampled_from(CAMPAIGNS), st.just(0)),
    st.tuples(st.just("external"), st.sampled_from(CAMPAIGNS), st.sampled_from(list(CampaignStatus)[:3])),
    st.tuples(st.just("wait"), st.just("1"), st.integers(1, 120)),
)


async def _run(steps: list[tuple[str, str, Any]]) -> tuple[CheckingVendor, int, int]:
    clock = [T0]
    async with SqliteStateStore.open(":memory:") as store:
        vendor = CheckingVendor(store)
        for campaign_id in CAMPAIGNS:
            vendor.statuses[campaign_id] = CampaignStatus.ACTIVE
        executor = Executor(store, {"smartlead": vendor}, clock=lambda: clock[0])
        worker = Worker(store=store, rules=RuleSet([BOUNCE, FLOOR]), executor=executor, clock=lambda: clock[0])
        n = 0
        for kind, campaign_id, arg in steps:
            ref = CampaignRef(vendor="smartlead", id=campaign_id)
            if kind == "external" and vendor.external(campaign_id, arg) and arg is CampaignStatus.ACTIVE:
                # a resume outside campaign-guard is seen through the vendor's campaign.started webhook
                # (a resume then pause that no webhook reports cannot be told apart: see README limits)
                kind, arg = "started", 1
            if kind in ("sent", "bounced", "metrics", "started"):
                for _ in range(arg if kind != "metrics" else 1):
                    n += 1
                    data = {"rate": arg, "sent": 50} if kind == "metrics" else {}
                    event_type = {"metrics": "campaign.metrics", "started": "campaign.started"}.get(kind, f"email.{kind}")
                    event = Event(id=f"e{n}", type=event_type,
                                  source="smartlead", occurred_at=clock[0], campaign=ref, data=data)
                    outcome = await worker.handle(Delivery(event.model_dump_json().encode(), event.id, "k", 0, False))
                    assert outcome.verdict is Verdict.ACK
            elif kind == "external":
                pass
            elif kind == "wait":
                clock[0] += timedelta(minutes=arg)
            else:
                async with store.transaction() as tx:
                    if kind == "person_hold":
                        await executor.hold(tx, Hold(str(ref), "user:U1", "person", "manual", clock[0]))
                    else:
                        owners = ["user:U1"] if kind == "person_release" else ["rule:bounce", "rule:floor"]   # every key of each rule
                        for owner in owners:
                            await executor.release(tx, ref, owner, clock[0], why="test")
                async with executor.lock(ref):
                    await executor.reconcile(ref)
        placed = [r for r in await store.audit(limit=100_000) if r.outcome == "hold_placed"]
        return vendor, len(placed), len([c for c in vendor.calls if c[0] == "pause"])


@settings(max_examples=int(os.environ.get("BOT_HYPOTHESIS_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=40))
def test_resume_and_pause_invariants_hold_for_any_stream(steps: list[tuple[str, str, Any]]) -> None:
    vendor, holds_placed, pauses = asyncio.run(_run(steps))
    assert vendor.violations == []
    assert pauses <= holds_placed


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 180)), min_size=1, max_size=60))
def test_hysteresis_never_releases_outside_the_release_threshold(points: list[tuple[float, int]]) -> None:
    assert FLOOR.release is not None and FLOOR.pause is not None
    window: dict[str, Any] | None = None
    now = T0
    active = False
    for n, (rate, minutes) in enumerate(points):
        now += timedelta(minutes=minutes)
        event = Event(id=f"m{n}", type="campaign.metrics", source="events", occurred_at=now,
                      campaign="smartlead:1", data={"rate": rate, "sent": 50})
        result = evaluate(FLOOR, event, window, now)
        window = result.window if result.window is not None else window
        for decision in result.decisions:
            if decision.action == "release":
                assert active, "released without having paused"
                assert compare(FLOOR.release.when, rate), f"released at {rate}, outside the release threshold"
                assert decision.inputs["held_below_s"] >= FLOOR.release.after.total_seconds()
                active = False
            else:
                assert compare(FLOOR.pause.when, rate)
                active = True
