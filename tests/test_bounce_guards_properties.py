"""Property: the two shipped bounce guards (bounce-guard on webhooks, bounce-guard-analytics on polled
analytics) never pause a campaign twice and never fight: over any interleaving of sends, bounces and polls
(the vendor counting more or fewer than the webhooks said), through the worker and a fake vendor:

- the campaign is paused at the vendor at most once, and exactly when a naive recount says either rule's
  threshold was crossed (webhooks: >= 3% of the last 200 sends from 50 sends; analytics: the vendor's rate,
  else bounced / sent, >= 3% from 50 sent);
- it carries at most one hold, `rule:bounce-guard@<campaign>`, recorded placed once, and nothing is ever
  released (neither rule releases, so neither lifts the other's hold).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.broker.base import Delivery, Verdict
from bot.events import Event
from bot.executor import Executor
from bot.polling import metrics_event
from bot.ruleset import RuleSet, load_rule
from bot.state.base import active
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignMetrics, CampaignStatus
from bot.worker import Worker
from tests.conftest import REPO, FakeVendor

T0 = datetime(2026, 11, 23, tzinfo=UTC)
REF = "smartlead:1"
RULES = RuleSet([load_rule(REPO / "rules" / "bounce-guard.yaml"),
                 load_rule(REPO / "rules" / "bounce-guard-analytics.yaml")])


@dataclass(frozen=True)
class Webhooks:
    sends: int
    bounces: int


@dataclass(frozen=True)
class Poll:
    extra_sent: int          # the vendor's totals: what the webhooks said, plus this
    extra_bounced: int
    rate: bool               # the vendor gives its own bounce_rate


STEPS = st.lists(st.one_of(
    st.builds(Webhooks, st.integers(0, 60), st.integers(0, 3)),
    st.builds(Poll, st.integers(-20, 40), st.integers(-2, 4), st.booleans()),
), min_size=1, max_size=12)


def _crossed(steps: list[Webhooks | Poll]) -> bool:
    """The naive recount: does either rule's pause condition hold after some event?"""
    entries: list[str] = []
    sent = bounced = 0
    for step in steps:
        if isinstance(step, Webhooks):
            for kind in ["send"] * step.sends + ["bounce"] * step.bounces:
                entries.append(kind)
                sends = [i for i, e in enumerate(entries) if e == "send"]
                window = entries[sends[-200]:] if len(sends) >= 200 else entries
                d, n = window.count("send"), window.count("bounce")
                if d >= 50 and n / d >= 0.03:
                    return True
            sent, bounced = sent + step.sends, bounced + step.bounces
        else:
            total, bad = max(0, sent + step.extra_sent), max(0, bounced + step.extra_bounced)
            rate = round(bad / total, 4) if step.rate and total else None
            value = rate if rate is not None else (bad / total if total else None)
            if value is not None and total >= 50 and value >= 0.03:
                return True
    return False


async def _play(steps: list[Webhooks | Poll]) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, str]]]:
    vendor = FakeVendor("smartlead")
    vendor.statuses["1"] = CampaignStatus.ACTIVE
    async with SqliteStateStore.open(":memory:") as store:
        now = T0
        executor = Executor(store, {"smartlead": vendor}, clock=lambda: now)
        worker = Worker(store=store, rules=RULES, executor=executor, clock=lambda: now)
        n = sent = bounced = 0

        async def deliver(event: Event) -> None:
            outcome = await worker.handle(Delivery(event.model_dump_json().encode(), event.id, "k", 0, False))
            assert outcome.verdict is Verdict.ACK

        for period, step in enumerate(steps):
            now += timedelta(minutes=15)
            if isinstance(step, Webhooks):
                for kind in ["email.sent"] * step.sends + ["email.bounced"] * step.bounces:
                    n += 1
                    await deliver(Event(id=f"w{n}", type=kind, source="smartlead", occurred_at=now, campaign=REF))
                sent, bounced = sent + step.sends, bounced + step.bounces
            else:
                total, bad = max(0, sent + step.extra_sent), max(0, bounced + step.extra_bounced)
                rate = round(bad / total, 4) if step.rate and total else None
                await deliver(metrics_event("smartlead", CampaignMetrics("1", sent=total, bounced=bad, bounce_rate=rate),
                                            now, period))
        async with store.transaction() as tx:
            holds = [h.owner for h in active(await tx.holds(REF))]
        decided = [(r.rule or "", r.outcome) for r in await store.audit(limit=10_000) if r.kind == "decision"]
    return vendor.writes(), holds, decided


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
def test_the_two_bounce_guards_never_double_pause_and_never_fight(steps: list[Webhooks | Poll]) -> None:
    writes, holds, decided = asyncio.run(_play(steps))
    crossed = _crossed(steps)
    assert writes == ([("pause", "1")] if crossed else [])
    assert holds == ([f"rule:bounce-guard@{REF}"] if crossed else [])
    assert sum(outcome == "hold_placed" for _, outcome in decided) == (1 if crossed else 0)
    assert not any(outcome == "hold_removed" for _, outcome in decided)


def test_the_property_sees_both_orders() -> None:
    """The recount and the worker agree on hand-picked runs where each rule is first."""
    webhooks_first = [Webhooks(60, 2), Poll(0, 1, True)]
    analytics_first = [Poll(100, 4, False), Webhooks(60, 3)]
    for steps in (webhooks_first, analytics_first):
        assert _crossed(steps)
        writes, holds, decided = asyncio.run(_play(steps))
        assert writes == [("pause", "1")] and holds == [f"rule:bounce-guard@{REF}"]
        assert [rule for rule, outcome in decided if outcome == "hold_placed"] == [
            "bounce-guard" if steps is webhooks_first else "bounce-guard-analytics"]
