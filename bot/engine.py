"""Pure rule evaluation: (rule, event or clock, window state, now) → new window state and decisions.

No I/O, no clock reads, no logging: the worker loads and stores window state, resolves targets to
campaigns through the inventory, and hands decisions to the executor.

Two entry points:

- `evaluate(rule, event, window, now)`: for every event a rule listens for (the hot path);
- `tick(rule, key, window, now)`: on the clock. A paused campaign sends no more events, so a release must
  not wait for one: the worker calls `tick` for every active window (`window["active"]` is true) of every
  rule `ticking(rule)` names, on every sweep, and applies what it returns exactly as `evaluate`'s.

Holds are per rule *and* per key: a measured rule's hold is `rule:<name>@<key>` (`rule_owner`), the key
being the rule's window key value (`smartlead:42`, `ann@acme.com`), and its release removes exactly that
hold. An owner written without `@` (`rule:<name>`, e.g. an event rule's `release: {holds: [rule:x]}`)
stands for every key of that rule on the campaigns targeted.

Window state (a JSON object the worker stores per rule and key). Keys the worker may rely on:

- `active` (bool): the rule paused for this key and has not released it (tick it while true);
- `fired_at` (ISO time): the last trip (the last time `active` went from false to true);
- `fires` (int): trips in the current cooldown chain (without a cooldown: trips so far);
- `held_until` (ISO time, with a cooldown, while active): no release before then;
- `released_at` (ISO time): the rule's last release, while inactive.

The rest (`seq`, `ts`, `ids`, `value`, `sample`, `targets`, `release_since`, `declined`) is the engine's.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from bot.events import VENDORS, Event
from bot.rulespec import Comparison, Rule
from bot.vocabulary import Act

__all__ = [
    "Decision",
    "Evaluation",
    "Target",
    "compare",
    "evaluate",
    "field_value",
    "key_value",
    "matches",
    "owner_rule",
    "rule_owner",
    "tick",
    "ticking",
]

_MISSING: Final = object()
_RECENT_IDS: Final = 10
_NO_STATE: dict[str, Any] = {}
_SCOPE_WORDS: Final = {"campaign": "campaign", "sender_account": "sender account", "sender_domain": "sender domain",
                       "vendor": "vendor", "labels": "campaign, sender_email, sender_domain or vendor label"}


@dataclass(frozen=True, slots=True)
class Target:
    """Whom an action applies to: one campaign, or every campaign of a sender account, domain or vendor.

    `vendor`: the vendor the event came from (its campaign's, else its source when that is a vendor, else
    its `vendor` field or label). Sender scopes designate only that vendor's campaigns when it is known.
    """

    scope: str          # campaign | sender_account | sender_domain | vendor
    value: str
    vendor: str | None = None


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
    #: pause/vendor_hold: the hold's owner (`rule:<name>@<key>`, `rule:<name>`, `alert:<fp>`, `vendor`);
    #: a measured rule's release: the hold it releases (also in `releases`)
    owner: str = ""
    releases: tuple[str, ...] = ()  # release: hold owners to remove
    #: only in `Evaluation.declined`: why the engine did not take this decision
    declined: str = ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    window: dict[str, Any] | None   # state to store; None when nothing changed
    decisions: tuple[Decision, ...] = ()
    #: decisions the engine did not take, each with `declined` saying why (for the audit, never executed)
    declined: tuple[Decision, ...] = ()


_UNTOUCHED: Final = Evaluation(None)


def rule_owner(rule_name: str, key: str | None) -> str:
    """The owner of a rule's hold for one key: `rule:<name>@<key>` (`rule:<name>` without a key)."""
    return f"rule:{rule_name}@{key}" if key else f"rule:{rule_name}"


def owner_rule(owner: str) -> str | None:
    """The rule name in a hold owner (`rule:x@smartlead:1` → `x`), None for other owners."""
    if not owner.startswith("rule:"):
        return None
    return owner[5:].partition("@")[0] or None


def ticking(rule: Rule) -> bool:
    """True for rules the worker must `tick`: measured rules with a `release` (hold times, cooldowns and
    duration windows move with the clock, not with events)."""
    return rule.action is None and rule.release is not None


def field_value(event: Event, name: str, client: str | None = None) -> Any:
    """The value of a `when` field on an event, or a sentinel when absent. `client`: the client label of
    the event's campaign's account (bot.accounts), for `campaign.client`."""
    if name in ("type", "source"):
        return getattr(event, name)
    if name.startswith("campaign"):
        if event.campaign is None:
            return _MISSING
        if name == "campaign.client":
            return client if client is not None else _MISSING
        return {"campaign": str(event.campaign), "campaign.vendor": event.campaign.vendor,
                "campaign.id": event.campaign.id, "campaign.account": event.campaign.account_name}[name]
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
        return bool((value is not _MISSING) == operand)
    if value is _MISSING:
        return op in ("ne", "not_in")
    if op == "matches":
        return isinstance(value, str) and re.search(operand, value) is not None
    return _EQUALITY[op](value, operand)


def matches(rule: Rule, event: Event, client: str | None = None) -> bool:
    """True when the rule listens for the event's type and every `when` clause holds (`client`: see
    `field_value`)."""
    if event.type not in rule.on:
        return False
    return not rule.when or all(compare(c, field_value(event, n, client)) for n, c in rule.when.items())


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
        vendor = (event.source if event.source in VENDORS else None) or _text(event, "data.vendor",
                                                                               "data.labels.vendor")
        return vendor if vendor in VENDORS else None
    sender = _text(event, "data.sender_email", "data.from_email", "data.email", "data.labels.sender_email")
    if kind == "sender_account":
        return sender
    domain = _text(event, "data.sender_domain", "data.labels.sender_domain")
    return domain or (sender.rpartition("@")[2] or None if sender and "@" in sender else None)


def _targets(rule: Rule, event: Event, memo: dict[str, str | None] | None) -> tuple[Target, ...]:
    """Whom the rule's action applies to; built only when a decision is taken. Sender scopes stay within
    the event's named account when its campaign has one (`smartlead@acme`), else within its vendor."""
    vendor = key_value("vendor", event, memo)
    if event.campaign is not None and event.campaign.account is not None:
        vendor = event.campaign.route
    if rule.scope != "labels":
        value = key_value(rule.scope, event, memo)
        return (Target(rule.scope, value, vendor),) if value else ()
    labels = field_value(event, "data.labels")
    if not isinstance(labels, dict):
        return ()
    found = []
    for ref in re.split(r"[,\s]+", str(labels.get("campaign", ""))):
        if ref:
            prefix = ref.partition(":")[0].lower()
            found.append(Target("campaign", ref, prefix if prefix in VENDORS else None))
    for label, scope in (("sender_email", "sender_account"), ("sender_domain", "sender_domain"), ("vendor", "vendor")):
        if isinstance(labels.get(label), str) and labels[label].strip():
            value = labels[label].strip().lower()
            found.append(Target(scope, value, value if scope == "vendor" else vendor))
    return tuple(found)


def _format(template: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError, AttributeError):
        return template


# Event rules --------------------------------------------------------------------------------------------


def _event_rule(rule: Rule, event: Event, memo: dict[str, str | None] | None) -> Evaluation:
    """An event rule acts on each matching event; it keeps no state (event rules have no cooldown)."""
    assert rule.action is not None
    action = rule.action
    do = action.do
    targets = _targets(rule, event, memo)
    fingerprint = field_value(event, "data.fingerprint")
    if not (isinstance(fingerprint, str) and fingerprint):
        fingerprint = None
    owner = ""
    if do == Act.PAUSE:
        owner = (f"alert:{fingerprint}" if fingerprint else "") if action.owner == "alert" else \
            rule_owner(rule.name, key_value(rule.key, event, memo))
    elif do == Act.VENDOR_HOLD:
        owner = "vendor"
    releases = tuple(f"alert:{fingerprint}" if h == "alert" else h for h in action.holds
                     if h != "alert" or fingerprint)
    why = ""
    if not targets and do != Act.NOTIFY:
        why = f"the event names no {_SCOPE_WORDS[rule.scope]}: nothing to {do.replace('_', ' ')}"
    elif do == Act.PAUSE and not owner:
        why = "the alert has no fingerprint: a hold it placed could never be released by its resolution"
    elif do == Act.RELEASE and not releases:
        why = "the alert has no fingerprint: there is no alert hold to release"
    reason = _format(action.reason, rule=rule.name, type=event.type, source=event.source,
                     campaign=str(event.campaign) if event.campaign else "-", data=event.data)
    decision = Decision(rule.name, rule.digest, do, targets, reason, rule.mode == "shadow", (event.id,),
                        {"rule_digest": rule.digest, "event_type": event.type}, owner, releases, why)
    return Evaluation(None, declined=(decision,)) if why else Evaluation(None, (decision,))


# Measured rules: windows --------------------------------------------------------------------------------


def _fold(rule: Rule, event: Event, state: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Add the event to the window; None when the rule does not measure this event type.

    Entries: `n` a numerator (the ratio's first type, or the counted type), `d` an event of the window's
    `of` type (the ratio's denominator; for a count, what `last` counts when it is another type).
    """
    measure, window = rule.measure, rule.window
    assert measure is not None
    if measure.value is not None:
        return dict(state)                                    # `value` measures need no window
    assert window is not None
    numerator: str | None
    denominator: str | None
    if measure.ratio is not None:
        numerator, denominator = measure.ratio
    else:
        numerator, denominator = measure.count, window.of     # `of` is set only with `last`
    kind = event.type
    letter = "d" if kind == denominator else "n" if kind == numerator else ""
    if not letter:
        return None
    new = dict(state)
    if window.last is not None:
        counted = "n" if denominator == numerator else "d"
        if counted == "n":
            letter = "n"
        new["seq"] = _slide(new.get("seq", ""), letter, window.last, counted=counted)
    else:
        assert window.duration is not None
        horizon = (now - window.duration).timestamp()
        new["ts"] = [e for e in new.get("ts", ()) if e[0] > horizon] + [[round(now.timestamp(), 3), letter]]
    if letter == "n":
        new["ids"] = [*new.get("ids", ())[-(_RECENT_IDS - 1):], event.id]
    return new


def _slide(seq: str, letter: str, last: int, *, counted: str) -> str:
    """Append one entry; keep at most `last` of the `counted` letter and what arrived after the oldest."""
    seq += letter
    excess = seq.count(counted) - last
    if excess > 0:
        for _ in range(excess):
            seq = seq[seq.index(counted) + 1:]
        if counted == "d":
            seq = seq.lstrip("n")              # numerators that arrived before the oldest kept `of` event
    if len(seq) > 2 * last:                    # numerators with no `of` events: keep the window bounded
        seq = seq[len(seq) - 2 * last:]
    return seq


Measured = tuple[float, int, int, int]         # (value, numerator, denominator, sample)


def _count(rule: Rule, state: dict[str, Any]) -> Measured:
    """A ratio or a count over the window in `state`."""
    assert rule.measure is not None
    letters = state["seq"] if "seq" in state else "".join(e[1] for e in state.get("ts", ()))
    numerator, denominator = letters.count("n"), letters.count("d")
    if rule.measure.count is not None:
        return float(numerator), numerator, denominator, numerator
    return (numerator / denominator if denominator else 0.0), numerator, denominator, denominator


def _measure(rule: Rule, event: Event, state: dict[str, Any]) -> Measured | None:
    """The measure after folding `event` into `state`, or None when there is nothing to compare yet."""
    assert rule.measure is not None
    if rule.measure.value is None:
        return _count(rule, state)
    value = field_value(event, rule.measure.value)
    sample = field_value(event, rule.measure.sample) if rule.measure.sample else rule.measure.min_sample
    if isinstance(value, bool) or not isinstance(value, int | float) or not isinstance(sample, int | float):
        return None
    return float(value), 0, 0, int(sample)


def _ids(state: dict[str, Any], event: Event) -> tuple[str, ...]:
    """The triggering events: the recent numerator events in the window, and this one."""
    return tuple(dict.fromkeys([*state.get("ids", ()), event.id]))


def _explain(rule: Rule, key: str | None, measured: Measured) -> tuple[str, dict[str, Any]]:
    """The reason text and the inputs of a decision (built only when one is taken)."""
    assert rule.pause is not None and rule.measure is not None
    value, numerator, denominator, sample = measured
    window = rule.window
    inputs = {
        "value": round(value, 6), "numerator": numerator, "denominator": denominator, "sample": sample,
        "threshold": dict([rule.pause.when.operator]), "min_sample": rule.measure.min_sample,
        "key": key, "rule_digest": rule.digest,
        "window": ({"last": window.last, "of": window.of} if window and window.last
                   else {"duration_s": window.duration.total_seconds()} if window and window.duration
                   else None),
    }
    reason = _format(rule.pause.reason, rule=rule.name, numerator=numerator, denominator=denominator, value=value,
                     of=(window.of if window else None) or "", key=key)
    return reason, inputs


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Measured rules: pause, cooldown chain, release ----------------------------------------------------------


def _trip(rule: Rule, new: dict[str, Any], now: datetime, targets: tuple[Target, ...]) -> None:
    """The window goes active: count the trip in its cooldown chain and set the minimum hold."""
    fires = int(new.get("fires", 0))
    cooldown = rule.cooldown
    if cooldown:
        quiet_since = new.get("released_at") or new.get("fired_at")
        if quiet_since is None or now - _time(quiet_since) >= cooldown[-1]:
            fires = 0                          # the last step passed without a new trip: a new chain
    fires += 1
    new.update(active=True, fired_at=now.isoformat(), fires=fires)
    for stale in ("released_at", "declined", "release_since"):
        new.pop(stale, None)
    if cooldown:
        new["held_until"] = (now + cooldown[min(fires, len(cooldown)) - 1]).isoformat()
    if rule.release is not None:               # for `tick`: the release targets what the pause targeted
        new["targets"] = [[t.scope, t.value, t.vendor] for t in targets]


def _stored_targets(rule: Rule, state: dict[str, Any], key: str | None) -> tuple[Target, ...]:
    stored = state.get("targets")
    if isinstance(stored, list):
        return tuple(Target(*entry) for entry in stored)
    if key and rule.scope == rule.key:         # a window stored before targets were: the key is the target
        vendor = key.partition(":")[0] if rule.scope == "campaign" else key if rule.scope == "vendor" else None
        return (Target(rule.scope, key, vendor if vendor in VENDORS else None),)
    return ()


def _judge_release(rule: Rule, new: dict[str, Any], measured: Measured | None, now: datetime, key: str | None,
                   event_ids: tuple[str, ...], event: Event | None = None,
                   memo: dict[str, str | None] | None = None) -> Evaluation:
    """An active window: release once `release.when` has held for `release.after` (hysteresis) and the
    cooldown's minimum hold has passed. `new` is the caller's copy of the state; it is updated. `event`:
    the triggering event (None on the clock)."""
    release, measure = rule.release, rule.measure
    assert release is not None and measure is not None
    # a ratio or a value needs its sample to say the campaign recovered; a count falling is a recovery
    if measured is None or (measure.count is None and measured[3] < measure.min_sample) or \
            not compare(release.when, measured[0]):
        new.pop("release_since", None)
        return Evaluation(new)
    since_text = new.setdefault("release_since", now.isoformat())
    held = now - _time(since_text)
    if held < release.after:
        return Evaluation(new)
    owner = rule_owner(rule.name, key)
    _, inputs = _explain(rule, key, measured)
    inputs = {**inputs, "release_threshold": dict([release.when.operator]), "held_below_s": held.total_seconds(),
              "fires": int(new.get("fires", 1))}
    if event is None:
        inputs["trigger"] = "clock"
    why = ""
    held_until = new.get("held_until") if rule.cooldown else None
    if held_until is not None and now < _time(held_until):
        if new.get("declined") == held_until:
            return Evaluation(new)             # already reported for this minimum hold
        new["declined"] = inputs["held_until"] = held_until
        fires = int(new.get("fires", 1))
        step = rule.cooldown[min(fires, len(rule.cooldown)) - 1]
        why = (f"cooldown: trip {fires} of this chain is held at least {step} after {new.get('fired_at')}, "
               f"until {held_until}; released then if still recovered")
    targets = _stored_targets(rule, new, key) or (_targets(rule, event, memo) if event is not None else ())
    op, operand = release.when.operator
    decision = Decision(rule.name, rule.digest, Act.RELEASE, targets,
                        f"{rule.name}: recovered to {measured[0]:.4g} (release at {op} {operand}) for {held}",
                        rule.mode == "shadow", event_ids, inputs, owner, (owner,), why)
    if why:
        return Evaluation(new, declined=(decision,))
    for done in ("release_since", "declined", "held_until", "targets"):
        new.pop(done, None)
    new["active"] = False
    new["released_at"] = now.isoformat()
    return Evaluation(new, (decision,))


def evaluate(rule: Rule, event: Event, window: dict[str, Any] | None, now: datetime, *,
             memo: dict[str, str | None] | None = None, client: str | None = None) -> Evaluation:
    """Fold the event into the rule's window and decide: pause when `pause.when` holds (a cooldown never
    delays a pause), release when `release.when` has held for `release.after` since the rule paused
    (hysteresis) and the cooldown's minimum hold has passed. `memo`: see `key_value` (one dict per event,
    shared by the rules it reaches). `client`: the client label of the event's campaign's account, for
    `when: {campaign.client: ...}`. `window` is never modified."""
    if not matches(rule, event, client):
        return _UNTOUCHED
    if rule.action is not None:
        return _event_rule(rule, event, memo)
    measure, pause = rule.measure, rule.pause
    assert pause is not None and measure is not None
    new = _fold(rule, event, window or _NO_STATE, now)
    if new is None:
        return _UNTOUCHED
    measured = _measure(rule, event, new)
    if measured is None:
        return Evaluation(new)
    if measure.value is not None and rule.release is not None:
        new["value"], new["sample"], new["ids"] = measured[0], measured[3], [event.id]   # for `tick`
    if measured[3] >= measure.min_sample and compare(pause.when, measured[0]):
        key = key_value(rule.key, event, memo)
        targets = _targets(rule, event, memo)
        reason, inputs = _explain(rule, key, measured)
        why = "" if targets else f"the event names no {_SCOPE_WORDS[rule.scope]}: nothing to pause"
        decision = Decision(rule.name, rule.digest, Act.PAUSE, targets, reason, rule.mode == "shadow",
                            _ids(new, event), inputs, rule_owner(rule.name, key), (), why)
        if why:
            return Evaluation(new, declined=(decision,))
        new.pop("release_since", None)
        if not new.get("active"):
            _trip(rule, new, now, targets)
        return Evaluation(new, (decision,))
    if rule.release is None or not new.get("active"):
        return Evaluation(new)
    key = key_value(rule.key, event, memo)
    return _judge_release(rule, new, measured, now, key, _ids(new, event), event, memo)


def tick(rule: Rule, key: str, state: dict[str, Any], now: datetime) -> Evaluation:
    """Re-judge an active window on the clock, with no event: duration windows age out, `value` measures
    keep the last value seen, and `release.after` and the cooldown's minimum hold run on `now`. Returns
    the release (same owner and targets as the pause), a declined release, or `Evaluation(None)` when
    nothing changed. For rules `ticking(rule)` names; any other rule or an inactive window: untouched."""
    if not ticking(rule) or not state or not state.get("active"):
        return _UNTOUCHED
    measure, window = rule.measure, rule.window
    assert measure is not None
    new = dict(state)
    measured: Measured | None
    if measure.value is not None:
        value, sample = new.get("value"), new.get("sample")
        if not (isinstance(value, int | float) and isinstance(sample, int | float)):
            return _UNTOUCHED                  # paused before values were kept: judged on the next event
        measured = (float(value), 0, 0, int(sample))
    else:
        if window is not None and window.duration is not None and new.get("ts"):
            horizon = (now - window.duration).timestamp()
            kept = [e for e in new["ts"] if e[0] > horizon]
            if len(kept) != len(new["ts"]):
                new["ts"] = kept
        measured = _count(rule, new)
    result = _judge_release(rule, new, measured, now, key, tuple(new.get("ids", ())))
    if not result.decisions and not result.declined and new == state:
        return _UNTOUCHED
    return result
