"""The rule language of issue 13 in the pure engine: warning tiers, value sources, `any` measures, absences
over `since` windows, ages judged on the clock (`due` windows), stale figures (`max_age`), shared holds, and
sender scopes narrowed by a polled event's route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.engine import TICK_FLAGS, Decision, Evaluation, Target, evaluate, ticking
from bot.events import Event
from bot.rulespec import Rule
from tests.virtual_window import VirtualWindow

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _rule(**spec: Any) -> Rule:
    return Rule.model_validate({"name": "r", "description": "d", "digest": "abc", **spec})


def _event(kind: str, n: int, campaign: str | None = "smartlead:1", source: str = "smartlead",
           **data: Any) -> Event:
    return Event(id=f"{kind}-{n}", type=kind, source=source, occurred_at=T0, campaign=campaign, data=data)


class Key(VirtualWindow):
    """One rule's window for one key, driven by events and ticks on a virtual clock."""

    def __init__(self, rule: Rule, key: str = "smartlead:1") -> None:
        super().__init__(rule, T0, key)

    def send(self, kind: str, count: int = 1, campaign: str | None = "smartlead:1", **data: Any) -> list[Decision]:
        decisions: list[Decision] = []
        for _ in range(count):
            self.n += 1
            decisions += self.feed(_event(kind, self.n, campaign, **data)).decisions
        return decisions


def _kinds(decisions: list[Decision] | tuple[Decision, ...]) -> list[str]:
    return [("warn" if d.warning else d.action) for d in decisions]


# Warning tier ---------------------------------------------------------------------------------------------


def _bounces(scope: str = "campaign", **warn: Any) -> Rule:
    return _rule(on=["email.sent", "email.bounced"], window={"last": 100, "of": "email.sent"}, scope=scope,
                 measure={"ratio": ["email.bounced", "email.sent"], "min_sample": 10},
                 pause={"when": {"gte": 0.03}},
                 warn={"when": {"gte": 0.02}, "reason": "{value:.1%} of {denominator}", **warn})


def test_a_warning_goes_out_once_per_episode_not_on_every_event() -> None:
    key = Key(_bounces())
    key.send("email.sent", 100)
    (warning,) = key.send("email.bounced", 2)                         # 2/100 = 2%: warned on the second bounce
    assert warning.warning and warning.action == "notify" and warning.owner == "" and warning.releases == ()
    assert warning.reason == "2.0% of 100" and warning.targets == (Target("campaign", "smartlead:1", "smartlead"),)
    assert warning.inputs["threshold"] == {"gte": 0.02} and warning.inputs["pause_threshold"] == {"gte": 0.03}
    assert warning.inputs["tier"] == "warn" and warning.event_ids == ("email.bounced-101", "email.bounced-102")
    assert key.send("email.sent", 20) == []                           # still at 2%: no second warning
    assert key.window is not None and key.window["warned"] is True


def _two_bounces_50_sends_apart(key: Key) -> None:
    key.send("email.sent", 100)
    key.send("email.bounced")
    key.send("email.sent", 50)
    assert _kinds(key.send("email.bounced")) == ["warn"]             # 2 of the last 100 sends: 2%


def test_the_episode_ends_when_the_value_drops_back_below_the_warning() -> None:
    key = Key(_bounces())
    _two_bounces_50_sends_apart(key)
    key.send("email.sent", 50)                                        # the 1st bounce slides out: 1% → episode over
    assert key.window is not None and "warned" not in key.window
    assert _kinds(key.send("email.bounced")) == ["warn"]             # 2% again: a new episode, a new warning


def test_clear_keeps_the_episode_open_until_the_value_is_well_back() -> None:
    key = Key(_bounces(clear={"lt": 0.01}))
    _two_bounces_50_sends_apart(key)
    key.send("email.sent", 50)                                        # 1%: not under 1%, the episode goes on
    assert key.window is not None and key.window["warned"]
    assert key.send("email.bounced") == []                            # 2%: no second warning
    key.send("email.sent", 100)                                       # 0%: under 1%, over
    assert key.window is not None and "warned" not in key.window
    assert _kinds(key.send("email.bounced", 2)) == ["warn"]


def test_a_warning_needs_its_own_sample_and_the_pause_ends_the_episode() -> None:
    key = Key(_bounces(min_sample=50))
    key.send("email.sent", 49)
    assert key.send("email.bounced") == []                            # 1/49 ≥ 2% but under 50 sends: no warning
    assert _kinds(key.send("email.sent")) == ["warn"]                 # 1/50 = 2%
    assert _kinds(key.send("email.bounced")) == ["pause"]             # 2/50 = 4%: the pause, no warning
    assert key.window is not None and key.window["active"] and "warned" not in key.window
    assert set(_kinds(key.send("email.sent", 40))) == {"pause"}        # held: pauses repeat, no warning


def test_a_released_rule_warns_again_in_a_new_episode() -> None:
    rule = _rule(on=["campaign.metrics"], measure={"value": "data.rate"}, pause={"when": {"gte": 0.3}},
                 warn={"when": {"gte": 0.2}}, release={"when": {"lt": 0.1}})
    key = Key(rule)
    assert _kinds(key.send("campaign.metrics", rate=0.25)) == ["warn"]
    assert _kinds(key.send("campaign.metrics", rate=0.35)) == ["pause"]
    assert _kinds(key.send("campaign.metrics", rate=0.05)) == ["release"]
    assert _kinds(key.send("campaign.metrics", rate=0.25)) == ["warn"]


def test_a_shadow_warning_is_marked_and_a_warning_without_target_is_declined() -> None:
    key = Key(_bounces().model_copy(update={"mode": "shadow"}))
    key.send("email.sent", 100)
    (warning,) = key.send("email.bounced", 2)
    assert warning.shadow and warning.warning
    result = evaluate(_bounces("sender_domain"), _event("email.bounced", 1), {"seq": "d" * 100 + "n"}, T0)
    (declined,) = result.declined
    assert result.decisions == () and declined.warning and declined.declined.endswith("nobody to warn")
    assert result.window is not None and "warned" not in result.window   # it warns once it can


# Value sources ---------------------------------------------------------------------------------------------


def _analytics() -> Rule:
    return _rule(on=["campaign.metrics"], pause={"when": {"gte": 0.03}},
                 measure={"value": ["data.bounce_rate", {"ratio": ["data.bounced", "data.sent"]}],
                          "sample": "data.sent", "min_sample": 50})


@pytest.mark.parametrize(
    ("data", "value"),
    [
        ({"bounce_rate": 0.04, "bounced": 1, "sent": 100}, 0.04),          # the vendor's own rate first
        ({"bounce_rate": None, "bounced": 4, "sent": 100}, 0.04),          # else bounced / sent
        ({"bounced": 6, "sent": 200}, 0.03),
        ({"bounce_rate": True, "bounced": 3, "sent": 60}, 0.05),           # a boolean is not a number
    ],
)
def test_a_value_is_the_first_source_the_event_carries(data: dict[str, Any], value: float) -> None:
    (pause,) = evaluate(_analytics(), _event("campaign.metrics", 1, **data), None, T0).decisions
    assert pause.inputs["value"] == value and pause.inputs["sample"] == data["sent"]


@pytest.mark.parametrize(
    "data",
    [{"bounced": 4, "sent": 0}, {"bounced": 4}, {"bounce_rate": "4%", "sent": 100}, {"bounce_rate": 0.1, "sent": 49},
     {"bounce_rate": 0.1}],
)
def test_no_value_or_no_sample_decides_nothing(data: dict[str, Any]) -> None:
    assert evaluate(_analytics(), _event("campaign.metrics", 1, **data), None, T0).decisions == ()


# Shared holds -----------------------------------------------------------------------------------------------


def test_a_shared_hold_pauses_under_the_other_rules_owner() -> None:
    rule = _analytics().model_copy(update={"shared_hold": "bounce-guard"})
    (pause,) = evaluate(rule, _event("campaign.metrics", 1, bounce_rate=0.05, sent=80), None, T0).decisions
    assert pause.rule == "r" and pause.owner == "rule:bounce-guard@smartlead:1"
    assert pause.inputs["shared_hold"] == "bounce-guard"


# `any` measures, sender scopes by route, max_age --------------------------------------------------------------


def _mailbox(**release: Any) -> Rule:
    return _rule(on=["account.health"], scope="sender_account",
                 measure={"any": [{"data.smtp_ok": {"eq": False}}, {"data.imap_ok": {"eq": False}},
                                  {"data.reputation": {"lt": 70}, "data.warmup": {"eq": "on"}}], "max_age": "1h"},
                 pause={"when": {"eq": 1}, "reason": "{key}: {matched} ({data[reputation]})"},
                 release={"when": {"eq": 0}, "after": "6h", **release})


def _health(route: str | None = "smartlead@acme", **data: Any) -> dict[str, Any]:
    return {"email": "Ana@Acme.example", **({"route": route} if route else {}), **data}


def test_any_is_one_when_an_alternative_holds_with_the_alternatives_in_words() -> None:
    key = Key(_mailbox(), "ana@acme.example")
    assert key.send("account.health", campaign=None, **_health(smtp_ok=True, reputation=60, warmup="off")) == []
    (pause,) = key.send("account.health", campaign=None, **_health(smtp_ok=False, reputation=60, warmup="on"))
    assert pause.reason == "ana@acme.example: smtp_ok eq false, reputation lt 70 and warmup eq \"on\" (60)"
    assert pause.inputs["matched"] == ["smtp_ok eq false", 'reputation lt 70 and warmup eq "on"']
    assert pause.inputs["value"] == 1 and pause.owner == "rule:r@ana@acme.example"


@pytest.mark.parametrize(
    ("route", "source", "vendor"),
    [
        ("smartlead@acme", "smartlead", "smartlead@acme"),
        ("Smartlead@Acme", "smartlead", "smartlead@acme"),
        ("smartlead", "smartlead", "smartlead@default"),      # the default account's mailbox: its campaigns only
        ("instantly@acme", "smartlead", "smartlead"),         # another vendor's route: the event's vendor
        ("smartlead@Not An Account", "smartlead", "smartlead"),
        (None, "smartlead", "smartlead"),
    ],
)
def test_a_campaign_less_events_route_narrows_its_sender_targets(route: str | None, source: str, vendor: str) -> None:
    event = _event("account.health", 1, campaign=None, source=source, **_health(route, smtp_ok=False))
    (pause,) = evaluate(_mailbox(), event, None, T0).decisions
    assert pause.targets == (Target("sender_account", "ana@acme.example", vendor),)


def test_a_mailbox_is_released_after_healthy_polls_spanning_the_hold_time_on_the_clock() -> None:
    key = Key(_mailbox(), "ana@acme.example")
    key.send("account.health", campaign=None, **_health(smtp_ok=False))
    for minutes in range(15, 6 * 60, 15):                               # healthy polls every 15 min
        assert key.at(minutes=minutes).send("account.health", campaign=None, **_health(smtp_ok=True)) == []
        assert key.at(minutes=minutes, seconds=30).tick().decisions == ()
    (release,) = key.at(minutes=6 * 60 + 15).tick().decisions         # 6 h after the first healthy poll
    assert release.action == "release" and release.inputs["trigger"] == "clock"
    assert release.releases == ("rule:r@ana@acme.example",)
    assert release.targets == (Target("sender_account", "ana@acme.example", "smartlead@acme"),)


def test_a_gap_in_the_polls_starts_the_hold_time_again() -> None:
    key = Key(_mailbox(), "ana@acme.example")
    key.send("account.health", campaign=None, **_health(smtp_ok=False))
    key.at(minutes=15).send("account.health", campaign=None, **_health(smtp_ok=True))
    key.at(hours=1, minutes=15).tick()                                  # exactly 1 h old: still counts
    assert key.window is not None and key.window["release_since"] == (T0 + timedelta(minutes=15)).isoformat()
    key.at(hours=1, minutes=16).tick()                                  # older: unknown, the clock restarts
    assert key.window is not None and "release_since" not in key.window
    assert key.at(hours=7).tick() == Evaluation(None)                   # no fresh figure: nothing to release on
    key.at(hours=8).send("account.health", campaign=None, **_health(smtp_ok=True))
    assert key.at(hours=13, minutes=59).tick().decisions == ()
    # the gap itself, seen by the next poll, also restarts it (no tick in between)
    gap = Key(_mailbox(), "ana@acme.example")
    gap.send("account.health", campaign=None, **_health(smtp_ok=False))
    gap.at(minutes=10).send("account.health", campaign=None, **_health(smtp_ok=True))
    gap.at(hours=3).send("account.health", campaign=None, **_health(smtp_ok=True))
    assert gap.window is not None and gap.window["release_since"] == (T0 + timedelta(hours=3)).isoformat()
    for half_hours in range(7, 18):                                   # polls every 30 min from 3:30 to 8:30
        assert gap.at(minutes=30 * half_hours).send("account.health", campaign=None, **_health(smtp_ok=True)) == []
    assert _kinds(gap.at(hours=9).send("account.health", campaign=None, **_health(smtp_ok=True))) == ["release"]


# Absences, ages and `due` windows ----------------------------------------------------------------------------


def _no_reply(**window: Any) -> Rule:
    return _rule(on=["email.sent", "email.replied"], window=window or {"since": "email.sent"},
                 measure={"absent": "email.replied", "min_sample": 5, "min_age": "48h"},
                 pause={"when": {"eq": 0}, "reason": "no reply after {denominator} sends in {age}"})


def test_ticking_names_rules_with_release_or_min_age_and_the_flags_it_ticks() -> None:
    assert ticking(_no_reply()) and ticking(_mailbox()) and not ticking(_analytics())
    assert TICK_FLAGS == ("active", "due")


def test_an_absence_pauses_on_the_clock_once_the_first_send_is_old_enough() -> None:
    key = Key(_no_reply())
    key.send("email.replied")                                            # before the window's first send: not in it
    assert key.window is None
    key.send("email.sent", 4)
    assert key.window is not None and "due" not in key.window            # 4 sends: not enough
    assert key.at(hours=1).send("email.sent") == []
    assert key.window is not None and key.window["due"] is True
    assert key.window["due_at"] == (T0 + timedelta(hours=48)).isoformat() and key.window["counts"] == [0, 5]
    assert key.at(hours=47, minutes=59).tick() == Evaluation(None)
    (pause,) = key.at(hours=48).tick().decisions
    assert pause.action == "pause" and pause.inputs["trigger"] == "clock" and pause.owner == "rule:r@smartlead:1"
    assert pause.targets == (Target("campaign", "smartlead:1", "smartlead"),)
    assert pause.reason == "no reply after 5 sends in 48h" and pause.inputs["age_s"] == 48 * 3600
    assert pause.inputs["window"] == {"since": "email.sent"} and pause.inputs["sample"] == 5
    assert key.window is not None and key.window["active"] and "due" not in key.window
    assert key.at(hours=60).tick() == Evaluation(None)                   # no release: a person resumes it


def test_an_event_after_the_age_pauses_too_and_a_reply_disarms_the_absence() -> None:
    key = Key(_no_reply())
    key.send("email.sent", 5)
    assert _kinds(key.at(hours=48).send("email.sent")) == ["pause"]
    replied = Key(_no_reply())
    replied.send("email.sent", 5)
    replied.at(hours=30).send("email.replied")
    assert replied.window is not None and "due" not in replied.window and replied.window["counts"] == [1, 5]
    assert replied.at(hours=49).tick() == Evaluation(None)
    assert replied.at(hours=50).send("email.sent", 100) == []


def test_an_absence_over_the_last_n_sends() -> None:
    rule = _rule(on=["email.sent", "email.replied"], window={"last": 10, "of": "email.sent"},
                 measure={"absent": "email.replied", "min_sample": 10}, pause={"when": {"eq": 0}})
    key = Key(rule)
    key.send("email.sent", 3)
    key.send("email.replied")
    assert key.send("email.sent", 9) == []                               # the reply is among the last 10 sends
    assert _kinds(key.send("email.sent")) == ["pause"]                   # 3 sends later it slid out


def _metrics_no_reply() -> Rule:
    return _rule(on=["campaign.metrics"], pause={"when": {"eq": 0}},
                 measure={"value": "data.replied", "sample": "data.sent", "min_sample": 500, "min_age": "48h",
                          "age_from": "data.started_at", "max_age": "1h"})


def test_a_figure_ages_from_a_time_the_event_carries() -> None:
    key = Key(_metrics_no_reply())
    start = (T0 - timedelta(hours=47)).isoformat()
    assert key.send("campaign.metrics", replied=0, sent=600, started_at=start) == []
    assert key.window is not None and key.window["due_at"] == (T0 + timedelta(hours=1)).isoformat()
    (pause,) = key.at(hours=1).tick().decisions
    assert pause.inputs["trigger"] == "clock" and pause.inputs["value"] == 0 and pause.inputs["sample"] == 600
    naive = Key(_metrics_no_reply())                                     # no zone: UTC
    assert _kinds(naive.send("campaign.metrics", replied=0, sent=600, started_at="2026-11-20T00:00:00")) == ["pause"]


@pytest.mark.parametrize("started_at", [None, "yesterday", 5])
def test_no_start_time_decides_nothing(started_at: Any) -> None:
    key = Key(_metrics_no_reply())
    assert key.send("campaign.metrics", replied=0, sent=600, started_at=started_at) == []
    assert key.window is not None and "due" not in key.window


def test_a_due_figure_gone_stale_pauses_nothing_on_the_clock() -> None:
    key = Key(_metrics_no_reply())
    key.send("campaign.metrics", replied=0, sent=600, started_at=(T0 - timedelta(hours=46)).isoformat())
    result = key.at(hours=2).tick()                                      # the age is reached, the figure is 2 h old
    assert result.decisions == () and key.window is not None and "due" not in key.window
    assert key.at(hours=3).tick() == Evaluation(None)
    assert _kinds(key.send("campaign.metrics", replied=0, sent=610,
                           started_at=(T0 - timedelta(hours=46)).isoformat())) == ["pause"]


def test_the_key_of_a_windowless_rule_is_its_scope() -> None:
    assert _mailbox().key == "sender_account" and _analytics().key == "campaign"
    assert _rule(on=["campaign.metrics"], scope="labels", measure={"value": "data.x"},
                 pause={"when": {"gt": 1}}).key == "campaign"
