"""Pure rule evaluation: (rule, event, window state, now) → new window state and decisions.

No I/O, no clock reads, no logging: the worker loads and stores window state, resolves targets to
campaigns through the inventory, and hands decisions to the executor.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from bot.events import VENDORS, Event
from bot.rulespec import Comparison, Rule

__all__ = ["Decision", "Evaluation", "Target", "compare", "evaluate", "field_value", "key_value", "matches"]

_MISSING: Final = object()
_RECENT_IDS: Final = 10
_NO_STATE: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Target:
    """Whom an action applies to: one campaign, or every campaign of a sender account, domain or vendor."""

    scope: str          # campaign | sender_account | sender_domain | vendor
    value: str


@dataclass(frozen=True, slots=True)
class Decision:
    """A rule's verdict, with every input that led to it. Nothing is executed here."""

    rule: str
    digest: str
    action: str                     # pause | release | notify | vendor_hold
    targets: tuple[Target, ...]
    reason: str
    shadow: bool
    event_ids: tuple[str, ...]
    inputs: dict[str, Any] = field(default_factory=dict)
    owner: str = ""                 # pause/vendor_hold: the hold's owner (rule:<name>, alert:<fp>, vendor)
    releases: tuple[str, ...] = ()  # release: hold owners to remove


@dataclass(frozen=True, slots=True)
class Evaluation:
    window: dict[str, Any] | None   # state to store; None when the event did not touch it
    decisions: tuple[Decision, ...] = ()


_UNTOUCHED: Final = Evaluation(None)


def field_value(event: Event, name: str) -> Any:
    """The value of a `when` field on an event, or a sentinel when absent."""
    if name in ("type", "source"):
        return getattr(event, name)
    if name.startswith("campaign"):
        if event.campaign is None:
            return _MISSING
        return {"campaign": str(event.campaign), "campaign.vendor": event.campaign.vendor,
                "campaign.id": event.campaign.id}[name]
    value: Any = event.data
    for part in name.split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


_ORDER: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}
_EQUALITY: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": operator.eq, "ne": operator.ne, "in": lambda v, o: v in o, "not_in": lambda v, o: v not in o,
}


def compare(comparison: Comparison, value: Any) -> bool:
    """Apply one operator; a missing value satisfies only `exists: false` and `ne`/`not_in`."""
    op, operand = comparison.operator
    order = _ORDER.get(op)
    if order is not None:
        if value is _MISSING or isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return order(value, operand)
    if op == "exists":
        return (value is not _MISSING) == operand
    if value is _MISSING:
        return op in ("ne", "not_in")
    if op == "matches":
        return isinstance(value, str) and re.search(operand, value) is not None
    return _EQUALITY[op](value, operand)


def matches(rule: Rule, event: Event) -> bool:
    """True when the rule listens for the event's type and every `when` clause holds."""
    if event.type not in rule.on:
        return False
    return not rule.when or all(compare(c, field_value(event, n)) for n, c in rule.when.items())


def _text(event: Event, *names: str) -> str | None:
    for name in names:
        value = field_value(event, name)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return None


def key_value(kind: str, event: Event, memo: dict[str, str | None] | None = None) -> str | None:
    """The event's campaign, sender account, sender domain or vendor, when it has one. `memo`: the keys
    found so far for this event (many rules ask for the same one)."""
    if memo is None:
        return _key_value(kind, event)
    if kind not in memo:
        memo[kind] = _key_value(kind, event)
    return memo[kind]


def _key_value(kind: str, event: Event) -> str | None:
    if kind == "campaign":
        return str(event.campaign) if event.campaign else None
    if kind == "vendor":
        if event.campaign:
            return event.campaign.vendor
        vendor = _text(event, "data.vendor", "data.labels.vendor") or (event.source if event.source in VENDORS else None)
        return vendor if vendor in VENDORS else None
    sender = _text(event, "data.sender_email", "data.from_email", "data.email", "data.labels.sender_email")
    if kind == "sender_account":
        return sender
    domain = _text(event, "data.sender_domain", "data.labels.sender_domain")
    return domain or (sender.rpartition("@")[2] or None if sender and "@" in sender else None)


def _targets(rule: Rule, event: Event, memo: dict[str, str | None] | None) -> tuple[Target, ...]:
    if rule.scope != "labels":
        value = key_value(rule.scope, event, memo)
        return (Target(rule.scope, value),) if value else ()
    labels = field_value(event, "data.labels")
    if not isinstance(labels, dict):
        return ()
    found = [Target("campaign", ref.strip()) for ref in re.split(r"[,\s]+", str(labels.get("campaign", ""))) if ref]
    for label, scope in (("sender_email", "sender_account"), ("sender_domain", "sender_domain"), ("vendor", "vendor")):
        if isinstance(labels.get(label), str) and labels[label].strip():
            found.append(Target(scope, labels[label].strip().lower()))
    return tuple(found)


def _cooling(rule: Rule, state: dict[str, Any], now: datetime) -> bool:
    if not rule.cooldown or "fired_at" not in state:
        return False
    episodes = int(state.get("fires", 1))
    wait: timedelta = rule.cooldown[min(episodes, len(rule.cooldown)) - 1]
    return now - datetime.fromisoformat(state["fired_at"]) < wait


def _format(template: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError, AttributeError):
        return template


def _event_rule(rule: Rule, event: Event, state: dict[str, Any], now: datetime,
                memo: dict[str, str | None] | None) -> Evaluation:
    assert rule.action is not None
    action = rule.action
    targets = _targets(rule, event, memo)
    if not targets and action.do != "notify":
        return Evaluation(None)
    if action.do in ("pause", "vendor_hold") and _cooling(rule, state, now):
        return Evaluation(None)
    fingerprint = field_value(event, "data.fingerprint")
    owner = {"pause": f"rule:{rule.name}", "vendor_hold": "vendor", "release": "", "notify": ""}[action.do]
    if action.do == "pause" and action.owner == "alert":
        if not isinstance(fingerprint, str):
            return Evaluation(None)
        owner = f"alert:{fingerprint}"
    releases = tuple(f"alert:{fingerprint}" if h == "alert" else h for h in action.holds
                     if h != "alert" or isinstance(fingerprint, str))
    reason = _format(action.reason, rule=rule.name, type=event.type, source=event.source,
                     campaign=str(event.campaign) if event.campaign else "-", data=event.data)
    decision = Decision(rule.name, rule.digest, action.do, targets, reason, rule.mode == "shadow", (event.id,),
                        {"rule_digest": rule.digest, "event_type": event.type}, owner, releases)
    new_state = state
    if action.do in ("pause", "vendor_hold") and rule.cooldown:
        new_state = {"fired_at": now.isoformat(), "fires": int(state.get("fires", 0)) + 1}
    return Evaluation(new_state if new_state is not state else None, (decision,))


def _fold(rule: Rule, event: Event, state: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Add the event to the window; None when the rule does not measure this event type."""
    assert rule.measure is not None
    measured = rule.measure.ratio or ((rule.measure.count,) if rule.measure.count else ())
    if not measured:
        return dict(state)                                    # `value` measures need no window
    letter = "d" if len(measured) == 2 and event.type == measured[1] else "n" if event.type == measured[0] else ""
    if not letter:
        return None
    new = dict(state)
    assert rule.window is not None
    if rule.window.last is not None:
        new["seq"] = _slide(str(new.get("seq", "")), letter, rule.window.last, counted="d" if len(measured) == 2
                            else "n")
    else:
        assert rule.window.duration is not None
        horizon = (now - rule.window.duration).timestamp()
        new["ts"] = [e for e in new.get("ts", []) if e[0] > horizon] + [[round(now.timestamp(), 3), letter]]
    if letter == "n":
        new["ids"] = [*list(new.get("ids", []))[-(_RECENT_IDS - 1):], event.id]
    return new


def _slide(seq: str, letter: str, last: int, *, counted: str) -> str:
    """Append one entry; keep at most `last` of the `counted` letter and what arrived after the oldest."""
    seq += letter
    excess = seq.count(counted) - last
    if excess > 0:
        for _ in range(excess):
            seq = seq[seq.index(counted) + 1:]
        if counted == "d":
            seq = seq.lstrip("n")              # numerators that arrived before the oldest kept send
    if len(seq) > 2 * last:                    # numerators with no sends: keep the window bounded
        seq = seq[len(seq) - 2 * last:]
    return seq


def _measure(rule: Rule, event: Event, state: dict[str, Any]) -> tuple[float, int, int, int] | None:
    """(value, numerator, denominator, sample) or None when there is nothing to compare yet."""
    assert rule.measure is not None
    if rule.measure.value is not None:
        value = field_value(event, rule.measure.value)
        sample = field_value(event, rule.measure.sample) if rule.measure.sample else rule.measure.min_sample
        if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(sample, int | float):
            return None
        return float(value), 0, 0, int(sample)
    letters = state["seq"] if "seq" in state else "".join(e[1] for e in state.get("ts", []))
    numerator, denominator = letters.count("n"), letters.count("d")
    if rule.measure.count is not None:
        return float(numerator), numerator, 0, numerator
    return (numerator / denominator if denominator else 0.0), numerator, denominator, denominator


def _ids(state: dict[str, Any], event: Event) -> tuple[str, ...]:
    """The triggering events: the recent numerator events in the window, and this one."""
    return tuple(dict.fromkeys([*state.get("ids", []), event.id]))


def _explain(rule: Rule, event: Event, measured: tuple[float, int, int, int],
             memo: dict[str, str | None] | None) -> tuple[str, dict[str, Any]]:
    """The reason text and the inputs of a decision (built only when one is taken)."""
    assert rule.pause is not None and rule.measure is not None
    value, numerator, denominator, sample = measured
    inputs = {
        "value": round(value, 6), "numerator": numerator, "denominator": denominator, "sample": sample,
        "threshold": dict([rule.pause.when.operator]), "min_sample": rule.measure.min_sample,
        "key": key_value(rule.key, event, memo), "rule_digest": rule.digest,
        "window": ({"last": rule.window.last, "of": rule.window.of} if rule.window and rule.window.last
                   else {"duration_s": rule.window.duration.total_seconds()} if rule.window and rule.window.duration
                   else None),
    }
    reason = _format(rule.pause.reason, rule=rule.name, numerator=numerator, denominator=denominator, value=value,
                     of=rule.window.of if rule.window else "", key=inputs["key"])
    return reason, inputs


def evaluate(rule: Rule, event: Event, window: dict[str, Any] | None, now: datetime, *,
             memo: dict[str, str | None] | None = None) -> Evaluation:
    """Fold the event into the rule's window and decide: pause when `pause.when` holds, release when
    `release.when` has held for `release.after` since the rule paused (hysteresis). `memo`: see
    `key_value` (one dict per event, shared by the rules it reaches)."""
    if not matches(rule, event):
        return _UNTOUCHED
    state = window or _NO_STATE
    if rule.action is not None:
        return _event_rule(rule, event, state, now, memo)
    assert rule.pause is not None and rule.measure is not None
    new = _fold(rule, event, state, now)
    targets = _targets(rule, event, memo)
    if new is None or not targets:
        return Evaluation(new)
    measured = _measure(rule, event, new)
    if measured is None or measured[3] < rule.measure.min_sample:
        return Evaluation(new)
    value = measured[0]
    if compare(rule.pause.when, value):
        new.pop("release_since", None)
        if not new.get("active"):
            if _cooling(rule, new, now):
                return Evaluation(new)
            new.update(active=True, fired_at=now.isoformat(), fires=int(new.get("fires", 0)) + 1)
        reason, inputs = _explain(rule, event, measured, memo)
        pause = Decision(rule.name, rule.digest, "pause", targets, reason, rule.mode == "shadow", _ids(new, event),
                         inputs, f"rule:{rule.name}")
        return Evaluation(new, (pause,))
    if not (new.get("active") and rule.release):
        return Evaluation(new)
    if not compare(rule.release.when, value):
        new.pop("release_since", None)
        return Evaluation(new)
    since = datetime.fromisoformat(new.setdefault("release_since", now.isoformat()))
    if now - since < rule.release.after:
        return Evaluation(new)
    new.pop("release_since", None)
    new["active"] = False
    _, inputs = _explain(rule, event, measured, memo)
    released_inputs = {**inputs, "release_threshold": dict([rule.release.when.operator]),
                       "held_below_s": (now - since).total_seconds()}
    release = Decision(rule.name, rule.digest, "release", targets,
                       f"{rule.name}: recovered to {value:.4g} (release at {rule.release.when.operator[0]} "
                       f"{rule.release.when.operator[1]}) for {now - since}", rule.mode == "shadow",
                       _ids(new, event), released_inputs, "", (f"rule:{rule.name}",))
    return Evaluation(new, (release,))
