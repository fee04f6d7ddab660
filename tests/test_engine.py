"""The pure rule engine: conditions, the sliding window of sends, thresholds, decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.engine import Target, compare, evaluate, field_value, matches
from bot.events import Event
from bot.rulespec import Comparison, Rule

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _rule(**overrides: Any) -> Rule:
    spec: dict[str, Any] = {
        "name": "bounce", "description": "d", "on": ["email.sent", "email.bounced"],
        "window": {"last": 20, "of": "email.sent"},
        "measure": {"ratio": ["email.bounced", "email.sent"], "min_sample": 10},
        "pause": {"when": {"gte": 0.1}}, "digest": "abc",
    }
    spec.update(overrides)
    return Rule.model_validate(spec)


def _event(kind: str, n: int, campaign: str | None = "smartlead:1", **data: Any) -> Event:
    return Event(id=f"{kind}-{n}", type=kind, source="smartlead", occurred_at=T0, campaign=campaign, data=data)


def _feed(rule: Rule, kinds: list[str]) -> tuple[dict[str, Any] | None, list[Any]]:
    window: dict[str, Any] | None = None
    decisions = []
    for n, kind in enumerate(kinds):
        result = evaluate(rule, _event(kind, n), window, T0)
        window = result.window if result.window is not None else window
        decisions.extend(result.decisions)
    return window, decisions


@pytest.mark.parametrize(
    ("op", "operand", "value", "expected"),
    [
        ("eq", "a", "a", True), ("eq", "a", "b", False), ("ne", "a", "b", True),
        ("in", ["a", "b"], "b", True), ("in", ["a"], "c", False), ("not_in", ["a"], "c", True),
        ("gt", 1, 2, True), ("gt", 2, 2, False), ("gte", 2, 2, True), ("lt", 2, 1, True),
        ("lte", 2, 3, False), ("gt", 1, "5", False), ("gt", 0, True, False),
        ("matches", "^hard", "hard bounce", True), ("matches", "^hard", "soft", False), ("matches", "x", 1, False),
    ],
)
def test_operators(op: str, operand: Any, value: Any, expected: bool) -> None:
    assert compare(Comparison.model_validate({op: operand}), value) is expected


def test_missing_fields_satisfy_only_negative_operators() -> None:
    event = _event("email.sent", 1)
    missing = field_value(event, "data.nope")
    assert compare(Comparison.model_validate({"exists": False}), missing)
    assert not compare(Comparison.model_validate({"exists": True}), missing)
    assert compare(Comparison.model_validate({"ne": 1}), missing)
    assert not compare(Comparison.model_validate({"eq": 1}), missing)
    assert not compare(Comparison.model_validate({"gte": 0}), missing)


def test_field_values_reach_campaign_parts_and_nested_data() -> None:
    event = _event("email.bounced", 1, bounce={"type": "hard"})
    assert field_value(event, "campaign") == "smartlead:1"
    assert field_value(event, "campaign.vendor") == "smartlead"
    assert field_value(event, "campaign.id") == "1"
    assert field_value(event, "data.bounce.type") == "hard"


def test_when_clauses_must_all_hold() -> None:
    rule = _rule(when={"campaign.vendor": {"eq": "smartlead"}, "data.bounce_type": {"eq": "hard"}})
    assert matches(rule, _event("email.bounced", 1, bounce_type="hard"))
    assert not matches(rule, _event("email.bounced", 1, bounce_type="soft"))
    assert not matches(rule, _event("email.bounced", 1, campaign="leadterra:camp_1", bounce_type="hard"))
    assert not matches(rule, _event("email.replied", 1, bounce_type="hard"))


def test_no_decision_below_the_minimum_sample() -> None:
    _, decisions = _feed(_rule(), ["email.sent"] * 9 + ["email.bounced"] * 5)
    assert decisions == []


def test_decision_when_ratio_reaches_threshold_with_inputs() -> None:
    _, decisions = _feed(_rule(), ["email.sent"] * 10 + ["email.bounced"])
    assert len(decisions) == 1
    decision = decisions[0]
    assert decision.action == "pause" and decision.targets == (Target("campaign", "smartlead:1"),)
    assert decision.inputs["numerator"] == 1 and decision.inputs["denominator"] == 10
    assert decision.inputs["value"] == 0.1 and decision.inputs["threshold"] == {"gte": 0.1}
    assert decision.inputs["rule_digest"] == "abc"
    assert decision.event_ids == ("email.bounced-10",)


def test_below_threshold_no_decision() -> None:
    _, decisions = _feed(_rule(), ["email.sent"] * 11 + ["email.bounced"])
    assert decisions == []


def test_window_keeps_only_the_last_n_sends_and_later_bounces() -> None:
    rule = _rule()
    # 2 early bounces, then 20 sends push them out of the window: ratio 0 → no decision afterwards.
    window, decisions = _feed(rule, ["email.sent"] * 10 + ["email.bounced"] * 2 + ["email.sent"] * 20)
    assert window is not None and window["seq"] == "d" * 20
    # level-triggered: every measured event while at or over the threshold decides (the executor's hold
    # dedupes); once the bounces slid out of the window, nothing more.
    assert [d.inputs["numerator"] for d in decisions] == [1, 2] + [2] * 19
    assert decisions[-1].inputs["denominator"] == 20
    _, later = _feed(rule, ["email.sent"] * 40 + ["email.bounced"])
    assert later == []                   # 1/20 = 5% < 10%


def test_shadow_rule_decisions_are_marked() -> None:
    _, decisions = _feed(_rule(mode="shadow"), ["email.sent"] * 10 + ["email.bounced"])
    assert decisions[0].shadow


def test_events_the_rule_does_not_measure_leave_the_window_alone() -> None:
    result = evaluate(_rule(), _event("email.replied", 1), {"seq": "dd", "ids": []}, T0)
    assert result.window is None and result.decisions == ()


def test_numerators_without_sends_stay_bounded() -> None:
    window, _ = _feed(_rule(), ["email.bounced"] * 100)
    assert window is not None and len(window["seq"]) == 40 and len(window["ids"]) == 10


def test_duration_window_counts_only_events_within_it() -> None:
    rule = _rule(window={"duration": "1h"}, measure={"count": "email.bounced"}, on=["email.bounced"],
                 pause={"when": {"gte": 3}})
    window: dict[str, Any] | None = None
    decided = []
    for minutes in (0, 10, 70, 75):           # the first two leave the window before the last two arrive
        now = T0 + timedelta(minutes=minutes)
        result = evaluate(rule, _event("email.bounced", minutes), window, now)
        window = result.window
        decided += [d.inputs["value"] for d in result.decisions]
    assert decided == [] and window is not None and len(window["ts"]) == 2  # 70 and 75: within 1 h of 75
    result = evaluate(rule, _event("email.bounced", 99), window, T0 + timedelta(minutes=76))
    assert [d.inputs["value"] for d in result.decisions] == [3.0]


def test_count_measure_in_a_count_window() -> None:
    rule = _rule(on=["email.complained"], window={"last": 3, "of": "email.complained"},
                 measure={"count": "email.complained", "min_sample": 2}, pause={"when": {"gte": 2}})
    _, decisions = _feed(rule, ["email.complained"] * 4)
    assert [d.inputs["value"] for d in decisions] == [2.0, 3.0, 3.0]


def test_windows_per_sender_domain_and_scope_targets() -> None:
    rule = _rule(window={"per": "sender_domain", "last": 20, "of": "email.sent"}, scope="sender_domain")
    result = evaluate(rule, _event("email.sent", 1, from_email="Ana@Mail.Example"), None, T0)
    assert result.window is not None
    event = _event("email.bounced", 2, from_email="bo@mail.example")
    window = {"seq": "d" * 10, "ids": []}
    (decision,) = evaluate(rule, event, window, T0).decisions
    assert decision.targets == (Target("sender_domain", "mail.example"),)
    assert decision.inputs["key"] == "mail.example"


def test_event_rule_actions_and_label_scopes() -> None:
    pause = _rule(on=["alert.firing"], window=None, measure=None, pause=None, scope="labels",
                  action={"do": "pause", "owner": "alert", "reason": "{data[alertname]}"})
    alert = Event(id="a1", type="alert.firing", source="alertmanager", occurred_at=T0,
                  data={"fingerprint": "f00d", "alertname": "Blacklisted",
                        "labels": {"campaign": "smartlead:1, inbox:abc", "sender_domain": "Mail.Example"}})
    (decision,) = evaluate(pause, alert, None, T0).decisions
    assert decision.owner == "alert:f00d" and decision.reason == "Blacklisted"
    assert decision.targets == (Target("campaign", "smartlead:1"), Target("campaign", "inbox:abc"),
                                Target("sender_domain", "mail.example"))
    release = _rule(on=["alert.resolved"], window=None, measure=None, pause=None, scope="labels",
                    action={"do": "release", "holds": ["alert", "rule:bounce"]})
    resolved = alert.model_copy(update={"type": "alert.resolved", "id": "a2"})
    (decision,) = evaluate(release, resolved, None, T0).decisions
    assert decision.releases == ("alert:f00d", "rule:bounce")
    notify = _rule(window=None, measure=None, pause=None, action={"do": "notify", "reason": "{type} on {campaign}"})
    (decision,) = evaluate(notify, _event("email.bounced", 3), None, T0).decisions
    assert decision.action == "notify" and decision.reason == "email.bounced on smartlead:1"


def test_event_rule_cooldown_per_key() -> None:
    rule = _rule(window=None, measure=None, pause=None, action={"do": "pause"}, cooldown=["1h", "1d"])
    first = evaluate(rule, _event("email.bounced", 1), None, T0)
    assert len(first.decisions) == 1 and first.window is not None
    assert evaluate(rule, _event("email.bounced", 2), first.window, T0 + timedelta(minutes=30)).decisions == ()
    second = evaluate(rule, _event("email.bounced", 3), first.window, T0 + timedelta(minutes=61))
    assert len(second.decisions) == 1 and second.window is not None
    assert evaluate(rule, _event("email.bounced", 4), second.window, T0 + timedelta(hours=20)).decisions == ()


def test_release_is_only_for_rules_that_paused_and_after_the_hold_time() -> None:
    rule = _rule(on=["campaign.metrics"], window=None,
                 measure={"value": "data.rate"}, pause={"when": {"lt": 0.2}},
                 release={"when": {"gte": 0.5}, "after": "1h"})
    metric = lambda n, rate: _event("campaign.metrics", n, rate=rate)
    assert evaluate(rule, metric(0, 0.9), None, T0).decisions == ()          # never paused: no release
    paused = evaluate(rule, metric(1, 0.1), None, T0)
    assert [d.action for d in paused.decisions] == ["pause"]
    early = evaluate(rule, metric(2, 0.6), paused.window, T0 + timedelta(minutes=1))
    assert early.decisions == ()
    dip = evaluate(rule, metric(3, 0.3), early.window, T0 + timedelta(minutes=30))   # back under: clock resets
    later = evaluate(rule, metric(4, 0.6), dip.window, T0 + timedelta(minutes=70))
    assert later.decisions == ()
    done = evaluate(rule, metric(5, 0.7), later.window, T0 + timedelta(minutes=131))
    assert [d.action for d in done.decisions] == ["release"] and done.decisions[0].releases == ("rule:bounce",)
