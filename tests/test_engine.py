"""The pure rule engine: conditions, the sliding window of sends, thresholds, decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from bot.engine import (
    Evaluation,
    Target,
    compare,
    evaluate,
    field_value,
    matches,
    owner_rule,
    rule_owner,
    tick,
    ticking,
)
from bot.events import Event
from bot.rulespec import Comparison, Rule

T0 = datetime(2026, 11, 23, tzinfo=UTC)

from tests.virtual_window import VirtualWindow


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
    assert decision.action == "pause" and decision.targets == (Target("campaign", "smartlead:1", "smartlead"),)
    assert decision.owner == "rule:bounce@smartlead:1" and decision.releases == ()
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
    assert decision.targets == (Target("sender_domain", "mail.example", "smartlead"),)
    assert decision.inputs["key"] == "mail.example" and decision.owner == "rule:bounce@mail.example"


def test_event_rule_actions_and_label_scopes() -> None:
    pause = _rule(on=["alert.firing"], window=None, measure=None, pause=None, scope="labels",
                  action={"do": "pause", "owner": "alert", "reason": "{data[alertname]}"})
    alert = Event(id="a1", type="alert.firing", source="alertmanager", occurred_at=T0,
                  data={"fingerprint": "f00d", "alertname": "Blacklisted",
                        "labels": {"campaign": "smartlead:1, inbox:abc", "sender_domain": "Mail.Example"}})
    (decision,) = evaluate(pause, alert, None, T0).decisions
    assert decision.owner == "alert:f00d" and decision.reason == "Blacklisted"
    assert decision.targets == (Target("campaign", "smartlead:1", "smartlead"), Target("campaign", "inbox:abc", "inbox"),
                                Target("sender_domain", "mail.example", None))     # no vendor label: any vendor
    release = _rule(on=["alert.resolved"], window=None, measure=None, pause=None, scope="labels",
                    action={"do": "release", "holds": ["alert", "rule:bounce"]})
    resolved = alert.model_copy(update={"type": "alert.resolved", "id": "a2"})
    (decision,) = evaluate(release, resolved, None, T0).decisions
    assert decision.releases == ("alert:f00d", "rule:bounce")
    notify = _rule(window=None, measure=None, pause=None, action={"do": "notify", "reason": "{type} on {campaign}"})
    (decision,) = evaluate(notify, _event("email.bounced", 3), None, T0).decisions
    assert decision.action == "notify" and decision.reason == "email.bounced on smartlead:1"


def test_event_rules_have_no_cooldown_and_pause_under_a_hold_per_key() -> None:
    with pytest.raises(ValidationError, match="an event rule has no `release`"):
        _rule(window=None, measure=None, pause=None, action={"do": "pause"}, cooldown=["1h", "1d"])
    rule = _rule(window=None, measure=None, pause=None, action={"do": "pause"})
    for n in range(3):                                # every matching event pauses: nothing is dropped
        result = evaluate(rule, _event("email.bounced", n), None, T0)
        assert result.window is None and [d.owner for d in result.decisions] == ["rule:bounce@smartlead:1"]
    sender = _rule(on=["account.disconnected"], window=None, measure=None, pause=None, scope="sender_account",
                   action={"do": "pause"})
    event = _event("account.disconnected", 1, campaign=None, email="Ann@Acme.com")
    (decision,) = evaluate(sender, event, None, T0).decisions
    assert decision.owner == "rule:bounce@ann@acme.com" and owner_rule(decision.owner) == "bounce"
    assert decision.targets == (Target("sender_account", "ann@acme.com", "smartlead"),)


def test_a_counting_window_releases_on_the_events_that_show_it_recovered() -> None:
    """A ratio over a window, with no warning and no age: once paused, every event is judged for the release
    too (the engine's short path is only for a window that is not paused)."""
    rule = _rule(release={"when": {"lt": 0.05}, "after": "5m"})
    window: dict[str, Any] | None = None

    def feed(kind: str, n: int, at: datetime) -> Evaluation:
        nonlocal window
        result = evaluate(rule, _event(kind, n), window, at)
        window = result.window if result.window is not None else window
        return result

    for n in range(10):
        feed("email.sent", n, T0)
    assert [d.action for d in feed("email.bounced", 10, T0).decisions] == ["pause"]        # 1 in 10
    assert window is not None and window["active"]
    for n in range(11, 31):                 # 20 more sends: the bounce slides out, the rate is 0 from here on
        assert feed("email.sent", n, T0 + timedelta(minutes=1)).decisions == ()          # held under 5 minutes
    (release,) = feed("email.sent", 31, T0 + timedelta(minutes=7)).decisions
    assert release.action == "release" and release.releases == ("rule:bounce@smartlead:1",)
    assert release.inputs["value"] == 0.0 and not window["active"]


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
    assert [d.action for d in done.decisions] == ["release"]
    assert done.decisions[0].releases == ("rule:bounce@smartlead:1",) == (done.decisions[0].owner,)


# Owners per rule and key ---------------------------------------------------------------------------------


def test_rule_owner_and_owner_rule() -> None:
    assert rule_owner("reply-rate-floor", "smartlead:42") == "rule:reply-rate-floor@smartlead:42"
    assert rule_owner("x", "ann@acme.com") == "rule:x@ann@acme.com"
    assert rule_owner("x", None) == "rule:x"
    assert owner_rule("rule:x@ann@acme.com") == "x" and owner_rule("rule:x") == "x"
    assert owner_rule("alert:f00d") is None and owner_rule("vendor") is None and owner_rule("user:U1") is None


def _floor(**overrides: Any) -> Rule:
    """A value-measured rule with hysteresis (reply-rate-floor's shape), 1h release hold."""
    spec: dict[str, Any] = {"on": ["campaign.metrics"], "window": None, "measure": {"value": "data.rate"},
                            "pause": {"when": {"lt": 0.2}}, "release": {"when": {"gte": 0.5}, "after": "1h"}}
    spec.update(overrides)
    return _rule(**spec)


def _metric(n: int, rate: float, campaign: str = "smartlead:1") -> Event:
    return _event("campaign.metrics", n, campaign=campaign, rate=rate)


def test_a_release_frees_only_its_own_key_with_its_own_numbers() -> None:
    rule = _floor()
    windows: dict[str, dict[str, Any] | None] = {"smartlead:1": None, "smartlead:2": None}
    for n, ref in enumerate(windows):
        (pause,) = (result := evaluate(rule, _metric(n, 0.001, ref), None, T0)).decisions
        windows[ref] = result.window
        assert pause.owner == f"rule:bounce@{ref}"
    evaluate(rule, _metric(5, 0.9, "smartlead:1"), windows["smartlead:1"], T0)     # 1 recovers, 2 does not
    first = evaluate(rule, _metric(6, 0.9, "smartlead:1"), windows["smartlead:1"], T0 + timedelta(minutes=1))
    first = evaluate(rule, _metric(7, 0.8, "smartlead:1"), first.window, T0 + timedelta(minutes=62))
    (release,) = first.decisions
    assert release.releases == ("rule:bounce@smartlead:1",) and release.owner == "rule:bounce@smartlead:1"
    assert release.targets == (Target("campaign", "smartlead:1", "smartlead"),)
    assert release.inputs["key"] == "smartlead:1" and release.inputs["value"] == 0.8
    assert release.event_ids == ("campaign.metrics-7",)


# count measures honour `of` ------------------------------------------------------------------------------


def _complaints(min_sample: int = 1) -> Rule:
    return _rule(on=["email.sent", "email.complained"], window={"last": 100, "of": "email.sent"},
                 measure={"count": "email.complained", "min_sample": min_sample}, pause={"when": {"gte": 3}})


def test_count_counts_only_among_the_last_n_of_events() -> None:
    kinds = []
    for _ in range(3):                                     # 3 complaints spread over 10,000 sends
        kinds += ["email.sent"] * 3333 + ["email.complained"]
    window, decisions = _feed(_complaints(), kinds)
    assert decisions == []
    assert window is not None and window["seq"].count("n") == 1 and window["seq"].count("d") == 100


def test_count_pauses_on_three_within_the_last_n_of_events() -> None:
    kinds = ["email.sent"] * 500 + ["email.complained"] + ["email.sent"] * 40 + ["email.complained"] \
        + ["email.sent"] * 40 + ["email.complained"]
    _, decisions = _feed(_complaints(), kinds)
    (decision,) = decisions
    assert decision.inputs["value"] == 3.0 and decision.inputs["numerator"] == 3
    assert decision.inputs["denominator"] == 100 and decision.inputs["window"] == {"last": 100, "of": "email.sent"}
    # the first of the three slides out 100 sends after it: under the threshold again
    more, later = _feed(_complaints(), [*kinds, *["email.sent"] * 20])
    assert [d.inputs["value"] for d in later] == [3.0] * 20                # 19 more sends keep it in the window
    assert more is not None and more["seq"].count("n") == 2 and more["seq"].count("d") == 100


# Cooldowns, hysteresis and the clock -----------------------------------------------------------------------


def _cooling() -> Rule:
    return _floor(cooldown=["24h", "72h", "7d"])


class Run(VirtualWindow):
    """One key's window driven by metric events and ticks on a virtual clock."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule, T0)

    def metric(self, rate: float) -> Evaluation:
        self.n += 1
        return self.feed(_metric(self.n, rate))


def _actions(result: Evaluation) -> list[str]:
    return [d.action for d in result.decisions]


def test_ticking_names_rules_with_release() -> None:
    assert ticking(_floor()) and ticking(_cooling())
    assert not ticking(_rule()) and not ticking(_rule(window=None, measure=None, pause=None,
                                                      action={"do": "pause"}))


def test_tick_releases_after_the_hold_time_with_no_event() -> None:
    run = Run(_floor())
    assert _actions(run.metric(0.1)) == ["pause"]
    assert run.window is not None and run.window["active"] and run.window["targets"] == [
        ["campaign", "smartlead:1", "smartlead"]]
    assert run.at(minutes=10).metric(0.6).decisions == ()                  # recovered: the 1h clock starts
    assert run.at(minutes=30).tick() == Evaluation(None)                   # nothing changes yet
    (release,) = run.at(minutes=70).tick().decisions
    assert release.action == "release" and release.owner == "rule:bounce@smartlead:1"
    assert release.releases == ("rule:bounce@smartlead:1",)
    assert release.targets == (Target("campaign", "smartlead:1", "smartlead"),)
    assert release.inputs["trigger"] == "clock" and release.inputs["held_below_s"] == 3600
    assert release.event_ids == ("campaign.metrics-2",) and release.inputs["value"] == 0.6
    assert run.window is not None and not run.window["active"]
    assert run.at(minutes=80).tick() == Evaluation(None)                   # inactive: nothing to do


def test_tick_does_not_release_a_value_that_never_recovered() -> None:
    run = Run(_floor())
    run.metric(0.1)
    run.at(minutes=10).metric(0.3)                                          # better, not at the release threshold
    assert run.at(days=3).tick() == Evaluation(None)


def test_a_cooldown_holds_the_release_back_and_says_so_once() -> None:
    run = Run(_cooling())
    run.metric(0.1)
    assert run.window is not None and run.window["held_until"] == (T0 + timedelta(hours=24)).isoformat()
    run.at(minutes=1).metric(0.9)
    declined = run.at(hours=2).tick()
    assert declined.decisions == () and [d.action for d in declined.declined] == ["release"]
    (note,) = declined.declined
    assert note.declined.startswith("cooldown: trip 1 of this chain is held at least 1 day")
    assert note.owner == "rule:bounce@smartlead:1" and note.inputs["held_until"] == run.window["held_until"]
    assert run.at(hours=3).tick() == Evaluation(None)                      # reported once, not every sweep
    assert run.at(hours=23, minutes=59).metric(0.9).declined == ()
    assert _actions(run.at(hours=24).tick()) == ["release"]


def test_a_cooldown_never_drops_or_delays_a_pause() -> None:
    run = Run(_cooling())
    run.metric(0.1)
    run.at(minutes=1).metric(0.9)
    assert _actions(run.at(hours=24).tick()) == ["release"]
    assert _actions(run.at(hours=24, minutes=1).metric(0.1)) == ["pause"]   # right after: paused at once
    assert _actions(run.at(hours=24, minutes=2).metric(0.1)) == ["pause"]   # level-triggered, as always
    assert run.window is not None and run.window["fires"] == 2


def _trip_and_release(run: Run, start: timedelta) -> timedelta:
    """Trip at `start`, recover a minute later; return how long after the trip the clock released it."""
    run.now = T0 + start
    assert _actions(run.metric(0.1)) == ["pause"]
    run.now = T0 + start + timedelta(minutes=1)
    run.metric(0.9)
    for hours in range(1, 1000):
        run.now = T0 + start + timedelta(hours=hours)
        result = run.tick()
        if result.decisions:
            assert _actions(result) == ["release"]
            return run.now - (T0 + start)
    raise AssertionError("never released")


def test_cooldown_escalates_over_re_trips_and_resets_after_the_last_step() -> None:
    run = Run(_cooling())
    held = []
    start = timedelta(0)
    for _ in range(4):
        held.append(_trip_and_release(run, start))
        start += held[-1] + timedelta(hours=1)                              # re-trips an hour after each release
    assert held == [timedelta(hours=24), timedelta(hours=72), timedelta(days=7), timedelta(days=7)]
    assert run.window is not None and run.window["fires"] == 4
    # 7 days released without a new trip: the chain starts over
    restart = start - timedelta(hours=1) + timedelta(days=7)
    assert _trip_and_release(run, restart) == timedelta(hours=24)
    assert run.window is not None and run.window["fires"] == 1
    # just under 7 days would have escalated
    run2 = Run(_cooling())
    first = _trip_and_release(run2, timedelta(0))
    assert _trip_and_release(run2, first + timedelta(days=7) - timedelta(hours=1)) == timedelta(hours=72)


def test_tick_ages_a_duration_window_out_and_releases_a_count() -> None:
    rule = _rule(on=["email.bounced"], window={"duration": "1h"}, measure={"count": "email.bounced"},
                 pause={"when": {"gte": 3}}, release={"when": {"lte": 0}, "after": "30m"})
    window: dict[str, Any] | None = None
    for minute in range(3):
        result = evaluate(rule, _event("email.bounced", minute), window, T0 + timedelta(minutes=minute))
        window = result.window
    assert window is not None and window["active"] and _actions(result) == ["pause"]
    assert tick(rule, "smartlead:1", window, T0 + timedelta(minutes=30)) == Evaluation(None)
    aged = tick(rule, "smartlead:1", window, T0 + timedelta(minutes=65))     # all three left the window
    assert aged.decisions == () and aged.window is not None and aged.window["ts"] == []
    assert aged.window["release_since"] == (T0 + timedelta(minutes=65)).isoformat()
    (release,) = tick(rule, "smartlead:1", aged.window, T0 + timedelta(minutes=95)).decisions
    assert release.inputs["value"] == 0 and release.releases == ("rule:bounce@smartlead:1",)


def test_a_ratio_below_its_minimum_sample_is_not_a_recovery() -> None:
    rule = _rule(window={"duration": "1h"}, release={"when": {"lt": 0.05}, "after": "10m"})
    window: dict[str, Any] | None = None
    for n, kind in enumerate(["email.sent"] * 10 + ["email.bounced"]):
        window = evaluate(rule, _event(kind, n), window, T0).window
    assert window is not None and window["active"]
    # the paused campaign sends nothing: its sends age out, leaving no sample to call it recovered
    for hours in (2, 3, 30):
        result = tick(rule, "smartlead:1", window, T0 + timedelta(hours=hours))
        assert result.decisions == () and result.declined == ()
        window = result.window or window
    assert window["active"] and "release_since" not in window


def test_tick_ignores_rules_without_release_and_inactive_windows() -> None:
    assert tick(_rule(), "smartlead:1", {"seq": "d" * 20, "active": True}, T0) == Evaluation(None)
    assert tick(_floor(), "smartlead:1", {"active": False, "value": 0.9, "sample": 1}, T0) == Evaluation(None)
    assert tick(_floor(), "smartlead:1", {}, T0) == Evaluation(None)


def test_a_window_stored_before_targets_were_releases_its_key() -> None:
    legacy = {"active": True, "fired_at": T0.isoformat(), "fires": 1, "value": 0.9, "sample": 1,
              "release_since": T0.isoformat()}
    (release,) = tick(_floor(), "smartlead:1", legacy, T0 + timedelta(hours=2)).decisions
    assert release.targets == (Target("campaign", "smartlead:1", "smartlead"),)


# Declined decisions are visible ------------------------------------------------------------------------------


def test_declined_event_rule_decisions_say_why() -> None:
    pause = _rule(on=["alert.firing"], window=None, measure=None, pause=None, scope="labels",
                  action={"do": "pause", "owner": "alert"})
    bare = Event(id="a1", type="alert.firing", source="grafana", occurred_at=T0,
                 data={"fingerprint": "f", "labels": {"severity": "page"}})
    result = evaluate(pause, bare, None, T0)
    assert result.decisions == () and "names no campaign, sender_email" in result.declined[0].declined
    no_fingerprint = bare.model_copy(update={"data": {"labels": {"campaign": "smartlead:1"}}})
    (declined,) = evaluate(pause, no_fingerprint, None, T0).declined
    assert declined.action == "pause" and "no fingerprint" in declined.declined
    sender = _rule(on=["account.disconnected"], window=None, measure=None, pause=None, scope="sender_account",
                   action={"do": "pause"})
    (declined,) = evaluate(sender, _event("account.disconnected", 1, campaign=None), None, T0).declined
    assert declined.declined == "the event names no sender account: nothing to pause"


def test_a_measured_pause_without_a_target_is_declined() -> None:
    rule = _rule(scope="sender_domain")
    result = evaluate(rule, _event("email.bounced", 1), {"seq": "d" * 10}, T0)
    assert result.decisions == () and result.window is not None and not result.window.get("active")
    (declined,) = result.declined
    assert declined.action == "pause" and declined.declined == "the event names no sender domain: nothing to pause"


def test_evaluate_never_modifies_the_stored_window() -> None:
    rule = _cooling()
    paused = evaluate(rule, _metric(1, 0.1), None, T0).window
    assert paused is not None
    stored = {k: (list(v) if isinstance(v, list) else v) for k, v in paused.items()}
    evaluate(rule, _metric(2, 0.9), paused, T0 + timedelta(hours=30))
    evaluate(rule, _metric(3, 0.9), paused, T0 + timedelta(hours=40))
    assert paused == stored


# Targets carry the event's vendor ---------------------------------------------------------------------------


def test_sender_targets_carry_the_events_vendor() -> None:
    rule = _rule(on=["account.disconnected"], window=None, measure=None, pause=None, scope="sender_domain",
                 action={"do": "pause"})
    leadterra = Event(id="x", type="account.disconnected", source="leadterra", occurred_at=T0,
                      data={"email": "ann@acme.com"})
    assert evaluate(rule, leadterra, None, T0).decisions[0].targets == (Target("sender_domain", "acme.com",
                                                                               "leadterra"),)
    labelled = Event(id="y", type="account.disconnected", source="events", occurred_at=T0,
                     data={"email": "ann@acme.com", "labels": {"vendor": "Inbox"}})
    assert evaluate(rule, labelled, None, T0).decisions[0].targets[0].vendor == "inbox"
    unknown = labelled.model_copy(update={"data": {"email": "ann@acme.com"}})
    assert evaluate(rule, unknown, None, T0).decisions[0].targets[0].vendor is None


def test_tick_waits_for_an_event_when_no_value_was_kept() -> None:
    legacy = {"active": True, "fired_at": T0.isoformat(), "fires": 1, "release_since": T0.isoformat()}
    assert tick(_floor(), "smartlead:1", legacy, T0 + timedelta(hours=2)) == Evaluation(None)
