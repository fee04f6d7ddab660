"""Pure rule evaluation: (rule, event or clock, window state, now) → new window state and decisions.

No I/O, no clock reads, no logging: the worker loads and stores window state, resolves targets to
campaigns through the inventory, and hands decisions to the executor.

Two entry points:

- `evaluate(rule, event, window, now)`: for every event a rule listens for (the hot path);
- `tick(rule, key, window, now)`: on the clock. A paused campaign sends no more events, so a release must
  not wait for one, and an absence ("no reply 48 hours after the first send") is only ever seen on the
  clock. The worker calls `tick` for every window of every rule `ticking(rule)` names whose state has one
  of the `TICK_FLAGS` true (`active`, `due`), on every sweep, and applies what it returns exactly as
  `evaluate`'s.

Holds are per rule *and* per key: a measured rule's hold is `rule:<name>@<key>` (`rule_owner`), the key
being the rule's window key value (`smartlead:42`, `ann@acme.com`), and its release removes exactly that
hold. A rule with `shared_hold: <other>` pauses under `rule:<other>@<key>` instead (one hold for two rules
that measure one thing two ways). An owner written without `@` (`rule:<name>`, e.g. an event rule's
`release: {holds: [rule:x]}`) stands for every key of that rule on the campaigns targeted.

Window state (a JSON object the worker stores per rule and key). Keys the worker may rely on:

- `active` (bool): the rule paused for this key and has not released it (tick it while true);
- `due` (bool): not active, but a pause waits only for time to pass (a `min_age` not reached yet): tick it
  while true;
- `fired_at` (ISO time): the last trip (the last time `active` went from false to true);
- `fires` (int): trips in the current cooldown chain (without a cooldown: trips so far);
- `held_until` (ISO time, with a cooldown, while active): no release before then;
- `released_at` (ISO time): the rule's last release, while inactive;
- `warned` (bool): a warning went out in the current episode (none again until it ends).

The rest (`seq`, `ts`, `since`, `counts`, `ids`, `value`, `sample`, `value_at`, `started`, `targets`,
`release_since`, `declined`, `due_at`) is the engine's.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from bot.events import ACCOUNT_NAME, DEFAULT_ACCOUNT, VENDORS, Event
from bot.rulespec import Comparison, Conditions, Rule
from bot.vocabulary import Act

__all__ = [
    "TICK_FLAGS",
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

#: The window flags that ask for `tick`: the worker ticks a ticking rule's windows with any of them true.
TICK_FLAGS: Final = ("active", "due")
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
    #: a notify decision that is a measured rule's warning (`warn`): a notice before the pause, no hold
    warning: bool = False


class Evaluation(NamedTuple):
    """What a rule made of an event or of the clock. A named tuple: one is made per rule per event, and a
    frozen dataclass costs several times as much to build."""

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
    duration windows move with the clock, not with events) or a `min_age` (a pause that waits for time)."""
    if rule.action is not None or rule.measure is None:
        return False
    return rule.release is not None or rule.measure.min_age is not None


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
        if name == "campaign.vendor":                 # the one the shipped rules ask, on every event
            return event.campaign.vendor
        return {"campaign": str(event.campaign), "campaign.id": event.campaign.id,
                "campaign.account": event.campaign.account_name}[name]
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
    return not rule.when or _holds(rule.when, event, client)


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


def _route(event: Event, vendor: str) -> str | None:
    """The account route a campaign-less event names in `data.route` (a polled `account.health`):
    `smartlead@acme`, or `smartlead@default` for the vendor's default account (`smartlead`); None when it
    names none, or another vendor's."""
    route = field_value(event, "data.route")
    if not isinstance(route, str):
        return None
    head, _, account = route.strip().lower().partition("@")
    account = account or DEFAULT_ACCOUNT
    return f"{vendor}@{account}" if head == vendor and ACCOUNT_NAME.fullmatch(account) else None


def _targets(rule: Rule, event: Event, memo: dict[str, str | None] | None) -> tuple[Target, ...]:
    """Whom the rule's action applies to; built only when a decision is taken. Sender scopes stay within
    the event's named account when its campaign has one (`smartlead@acme`) or when a campaign-less event
    names its route (`data.route`: `smartlead@acme`, `smartlead` = the default account's), else within
    its vendor."""
    vendor = key_value("vendor", event, memo)
    if event.campaign is not None and event.campaign.account is not None:
        vendor = event.campaign.route
    elif event.campaign is None and vendor is not None:
        vendor = _route(event, vendor) or vendor
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

    Entries: `n` a numerator (the ratio's first type, or the counted or absent type), `d` an event of the
    window's `of` type (the ratio's denominator; for a count, what `last` counts when it is another type).
    A `since` window keeps two counters instead (`counts`: [n, d]) and the time of its first `since` event.
    """
    measure, window = rule.measure, rule.window
    assert measure is not None
    if measure.figure:
        return dict(state)                                    # `value` and `any` measures need no window
    assert window is not None
    numerator = measure.counted
    if window.since is not None:
        return _fold_since(window.since, numerator, event, state, now)
    denominator = measure.ratio[1] if measure.ratio is not None else window.of   # `of` is set only with `last`
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


def _fold_since(base: str, numerator: str | None, event: Event, state: dict[str, Any],
                now: datetime) -> dict[str, Any] | None:
    """A `since` window: everything from the key's first `base` event on (events before it are not in it)."""
    is_base, is_numerator = event.type == base, event.type == numerator
    if not (is_base or (is_numerator and "since" in state)):
        return None
    new = dict(state)
    numerators, bases = new.get("counts", (0, 0))
    if is_base:
        bases += 1
        new.setdefault("since", now.isoformat())
    if is_numerator:
        numerators += 1
        new["ids"] = [*new.get("ids", ())[-(_RECENT_IDS - 1):], event.id]
    new["counts"] = [numerators, bases]
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
    """A ratio, a count or an absence over the window in `state`."""
    assert rule.measure is not None
    if "counts" in state:
        numerator, denominator = (int(x) for x in state["counts"])
    else:
        letters = state["seq"] if "seq" in state else "".join(e[1] for e in state.get("ts", ()))
        numerator, denominator = letters.count("n"), letters.count("d")
    if rule.measure.count is not None:
        return float(numerator), numerator, denominator, numerator
    if rule.measure.absent is not None:
        return float(numerator), numerator, denominator, denominator
    return (numerator / denominator if denominator else 0.0), numerator, denominator, denominator


def _number(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, int | float) else float(value)


def _holds(conditions: Conditions, event: Event, client: str | None) -> bool:
    return all(compare(c, field_value(event, name, client)) for name, c in conditions.items())


def _matched(rule: Rule, event: Event, client: str | None) -> list[str]:
    """An `any` measure: the alternatives that hold on the event, in words (`smtp_ok eq false`)."""
    assert rule.measure is not None and rule.measure.any is not None
    return [" and ".join(f"{name.removeprefix('data.')} {_words(c)}" for name, c in alternative.items())
            for alternative in rule.measure.any if _holds(alternative, event, client)]


def _words(comparison: Comparison) -> str:
    op, operand = comparison.operator
    shown = format(operand, "g") if _number(operand) is not None else json.dumps(operand, default=str)
    return f"{op} {shown}"


def _figure(rule: Rule, event: Event, client: str | None) -> float | None:
    """A `value` measure's first source the event carries, or an `any` measure's 1/0."""
    measure = rule.measure
    assert measure is not None
    if measure.any is not None:
        return 1.0 if any(_holds(alt, event, client) for alt in measure.any) else 0.0
    for source in measure.value or ():
        if isinstance(source, str):
            value = _number(field_value(event, source))
        else:
            top, bottom = (_number(field_value(event, name)) for name in source.ratio)
            value = top / bottom if top is not None and bottom is not None and bottom > 0 else None
        if value is not None:
            return value
    return None


def _measure(rule: Rule, event: Event, state: dict[str, Any], client: str | None) -> Measured | None:
    """The measure after folding `event` into `state`, or None when there is nothing to compare yet."""
    measure = rule.measure
    assert measure is not None
    if not measure.figure:
        return _count(rule, state)
    value = _figure(rule, event, client)
    sample = _number(field_value(event, measure.sample)) if measure.sample else float(measure.min_sample)
    if value is None or sample is None:
        return None
    return value, 0, 0, int(sample)


def _stored(rule: Rule, state: dict[str, Any], now: datetime) -> Measured | None:
    """On the clock: a window measure over the stored window, or the last figure kept while it is fresh
    (`max_age`); None for a figure too old to count."""
    measure = rule.measure
    assert measure is not None
    if not measure.figure:
        return _count(rule, state)
    value, sample, at = _number(state.get("value")), _number(state.get("sample")), state.get("value_at")
    if value is None or sample is None:
        return None
    if measure.max_age is not None and (not isinstance(at, str) or now - _time(at) > measure.max_age):
        return None
    return value, 0, 0, int(sample)


def _started(event: Event, name: str) -> str | None:
    """The time in a data field (ISO 8601; without a zone: UTC), as ISO text; None when it is no time."""
    text = field_value(event, name)
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).isoformat()


def _age(rule: Rule, state: dict[str, Any], now: datetime) -> timedelta | None:
    """How old the key is for `min_age`: since a `since` window's first event, or since `age_from`."""
    assert rule.measure is not None
    if rule.measure.min_age is None:
        return None
    start = state.get("since") if rule.window is not None else state.get("started")
    return now - _time(start) if isinstance(start, str) else None


def _ready(rule: Rule, measured: Measured, age: timedelta | None, min_sample: int | None = None) -> bool:
    """The sample is large enough (`min_sample`, default the measure's) and the key old enough for a decision."""
    measure = rule.measure
    assert measure is not None
    if measured[3] < (min_sample or measure.min_sample):
        return False
    return measure.min_age is None or (age is not None and age >= measure.min_age)


def _ids(state: dict[str, Any], event: Event) -> tuple[str, ...]:
    """The triggering events: the recent numerator events in the window, and this one."""
    return tuple(dict.fromkeys([*state.get("ids", ()), event.id]))


class _Data(dict[str, Any]):
    """An event's data for a measured rule's reason: a missing name reads `-` (and `{}` on the clock)."""

    def __missing__(self, key: str) -> str:
        return "-"


def _hours(age: timedelta | None) -> str:
    return "-" if age is None else f"{age.total_seconds() / 3600:.0f}h"


def _explain(rule: Rule, key: str | None, measured: Measured, threshold: Comparison, template: str, *,
             event: Event | None = None, age: timedelta | None = None,
             client: str | None = None) -> tuple[str, dict[str, Any]]:
    """The reason text and the inputs of a decision (built only when one is taken)."""
    assert rule.measure is not None
    measure, window = rule.measure, rule.window
    value, numerator, denominator, sample = measured
    inputs: dict[str, Any] = {
        "value": round(value, 6), "numerator": numerator, "denominator": denominator, "sample": sample,
        "threshold": dict([threshold.operator]), "min_sample": measure.min_sample,
        "key": key, "rule_digest": rule.digest,
        "window": ({"last": window.last, "of": window.of} if window and window.last
                   else {"duration_s": window.duration.total_seconds()} if window and window.duration
                   else {"since": window.since} if window and window.since
                   else None),
    }
    if measure.min_age is not None:
        inputs["min_age_s"] = measure.min_age.total_seconds()
        inputs["age_s"] = round(age.total_seconds(), 3) if age is not None else None
    matched = _matched(rule, event, client) if measure.any is not None and event is not None else []
    if matched:
        inputs["matched"] = matched
    if rule.shared_hold is not None:
        inputs["shared_hold"] = rule.shared_hold
    reason = _format(template, rule=rule.name, numerator=numerator, denominator=denominator, value=value,
                     sample=sample, of=(window.base if window else None) or "", key=key, age=_hours(age),
                     matched=", ".join(matched) or "-", data=_Data(event.data if event is not None else {}))
    return reason, inputs


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _target_list(targets: tuple[Target, ...]) -> list[list[str | None]]:
    return [[t.scope, t.value, t.vendor] for t in targets]


# Measured rules: pause, warning, cooldown chain, release -------------------------------------------------


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
    for stale in ("released_at", "declined", "release_since", "warned", "due", "due_at", "targets"):
        new.pop(stale, None)
    if cooldown:
        new["held_until"] = (now + cooldown[min(fires, len(cooldown)) - 1]).isoformat()
    if rule.release is not None:               # for `tick`: the release targets what the pause targeted
        new["targets"] = _target_list(targets)


def _stored_targets(rule: Rule, state: dict[str, Any], key: str | None) -> tuple[Target, ...]:
    stored = state.get("targets")
    if isinstance(stored, list):
        return tuple(Target(*entry) for entry in stored)
    if key and rule.scope == rule.key:         # a window stored before targets were: the key is the target
        vendor = key.partition(":")[0] if rule.scope == "campaign" else key if rule.scope == "vendor" else None
        return (Target(rule.scope, key, vendor if vendor in VENDORS else None),)
    return ()


def _pause(rule: Rule, new: dict[str, Any], measured: Measured, now: datetime, key: str | None,
           targets: tuple[Target, ...], event_ids: tuple[str, ...], *, event: Event | None = None,
           age: timedelta | None = None, client: str | None = None) -> Evaluation:
    """Pause (on an event, or on the clock with `event` None); the window goes active on its first pause."""
    assert rule.pause is not None
    reason, inputs = _explain(rule, key, measured, rule.pause.when, rule.pause.reason, event=event, age=age,
                              client=client)
    if event is None:
        inputs["trigger"] = "clock"
    why = "" if targets else f"the event names no {_SCOPE_WORDS[rule.scope]}: nothing to pause"
    decision = Decision(rule.name, rule.digest, Act.PAUSE, targets, reason, rule.mode == "shadow", event_ids,
                        inputs, rule_owner(rule.hold_rule, key), (), why)
    if why:
        return Evaluation(new, declined=(decision,))
    new.pop("release_since", None)
    if not new.get("active"):
        _trip(rule, new, now, targets)
    return Evaluation(new, (decision,))


def _warn(rule: Rule, new: dict[str, Any], measured: Measured, key: str | None, event: Event,
          memo: dict[str, str | None] | None, age: timedelta | None,
          client: str | None) -> tuple[tuple[Decision, ...], tuple[Decision, ...]]:
    """The warning tier of an inactive window whose value did not reach the pause: one notice per episode
    (`warned`), the episode ending when `warn.clear` holds (default: `warn.when` no longer does).
    Returns (decisions, declined)."""
    warn, pause = rule.warn, rule.pause
    assert warn is not None and pause is not None
    value = measured[0]
    if not compare(warn.when, value):
        if new.get("warned") and (warn.clear is None or compare(warn.clear, value)):
            del new["warned"]
        return (), ()
    if new.get("warned"):
        return (), ()
    targets = _targets(rule, event, memo)
    reason, inputs = _explain(rule, key, measured, warn.when, warn.reason, event=event, age=age, client=client)
    inputs.update(tier="warn", pause_threshold=dict([pause.when.operator]))
    why = "" if targets else f"the event names no {_SCOPE_WORDS[rule.scope]}: nobody to warn"
    decision = Decision(rule.name, rule.digest, Act.NOTIFY, targets, reason, rule.mode == "shadow", _ids(new, event),
                        inputs, "", (), why, warning=True)
    if why:
        return (), (decision,)
    new["warned"] = True
    return (decision,), ()


def _judge_release(rule: Rule, new: dict[str, Any], measured: Measured | None, now: datetime, key: str | None,
                   event_ids: tuple[str, ...], event: Event | None = None,
                   memo: dict[str, str | None] | None = None) -> Evaluation:
    """An active window: release once `release.when` has held for `release.after` (hysteresis) and the
    cooldown's minimum hold has passed. `new` is the caller's copy of the state; it is updated. `event`:
    the triggering event (None on the clock)."""
    release, measure, pause = rule.release, rule.measure, rule.pause
    assert release is not None and measure is not None and pause is not None
    # a ratio, an absence or a value needs its sample to say the campaign recovered; a count falling is one
    if measured is None or (measure.count is None and measured[3] < measure.min_sample) or \
            not compare(release.when, measured[0]):
        new.pop("release_since", None)
        return Evaluation(new)
    since_text = new.setdefault("release_since", now.isoformat())
    held = now - _time(since_text)
    if held < release.after:
        return Evaluation(new)
    owner = rule_owner(rule.hold_rule, key)
    _, inputs = _explain(rule, key, measured, pause.when, pause.reason, event=event)
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
    for done in ("release_since", "declined", "held_until", "targets", "warned"):
        new.pop(done, None)
    new["active"] = False
    new["released_at"] = now.isoformat()
    return Evaluation(new, (decision,))


def evaluate(rule: Rule, event: Event, window: dict[str, Any] | None, now: datetime, *,
             memo: dict[str, str | None] | None = None, client: str | None = None) -> Evaluation:
    """Fold the event into the rule's window and decide: pause when `pause.when` holds on a large enough
    sample of an old enough key (a cooldown never delays a pause), warn once per episode when `warn.when`
    holds short of that, release when `release.when` has held for `release.after` since the rule paused
    (hysteresis) and the cooldown's minimum hold has passed. A pause waiting only for `min_age` marks the
    window `due` (taken by `tick`). `memo`: see `key_value` (one dict per event, shared by the rules it
    reaches). `client`: the client label of the event's campaign's account, for `campaign.client`
    conditions. `window` is never modified."""
    if not matches(rule, event, client):
        return _UNTOUCHED
    if rule.action is not None:
        return _event_rule(rule, event, memo)
    measure, pause = rule.measure, rule.pause
    assert pause is not None and measure is not None
    new = _fold(rule, event, window or _NO_STATE, now)
    if new is None:
        return _UNTOUCHED
    if not measure.figure and measure.min_age is None and not new.get("active"):
        # the common case, and the hot path (a counting window that is not paused, no age): the pause, else
        # the warning; the same steps as below, without those that cannot apply
        counted = _count(rule, new)
        if counted[3] >= measure.min_sample and compare(pause.when, counted[0]):
            return _pause(rule, new, counted, now, key_value(rule.key, event, memo), _targets(rule, event, memo),
                          _ids(new, event), event=event, client=client)
        if rule.warn is not None and counted[3] >= (rule.warn.min_sample or measure.min_sample):
            return Evaluation(new, *_warn(rule, new, counted, key_value(rule.key, event, memo), event, memo, None,
                                          client))
        return Evaluation(new)
    previous_at = new.get("value_at")
    measured = _measure(rule, event, new, client)
    if measured is None:
        return Evaluation(new)
    if measure.figure:
        if measure.age_from is not None:
            started = _started(event, measure.age_from)
            if started is None:
                new.pop("started", None)
            else:
                new["started"] = started
        if ticking(rule):                      # for `tick`: the last figure, and when it came
            new.update(value=measured[0], sample=measured[3], ids=[event.id], value_at=now.isoformat())
    age = _age(rule, new, now)
    key = key_value(rule.key, event, memo)
    ready = _ready(rule, measured, age)
    bad = measured[3] >= measure.min_sample and compare(pause.when, measured[0])
    if bad and ready:
        return _pause(rule, new, measured, now, key, _targets(rule, event, memo), _ids(new, event), event=event,
                      age=age, client=client)
    active = bool(new.get("active"))
    if measure.min_age is not None and not active:
        if bad and age is not None:            # only time is missing: `tick` pauses once the age is reached
            new.update(due=True, due_at=(now - age + measure.min_age).isoformat(),
                       targets=_target_list(_targets(rule, event, memo)))
        elif new.pop("due", None):
            new.pop("due_at", None)
            new.pop("targets", None)
    decisions: tuple[Decision, ...] = ()
    declined: tuple[Decision, ...] = ()
    if rule.warn is not None and not active and _ready(rule, measured, age, rule.warn.min_sample):
        decisions, declined = _warn(rule, new, measured, key, event, memo, age, client)
    if rule.release is None or not active:
        return Evaluation(new, decisions, declined)
    if measure.max_age is not None and isinstance(previous_at, str) and now - _time(previous_at) > measure.max_age:
        new.pop("release_since", None)         # a gap in the figures: the hold time starts again
    return _judge_release(rule, new, measured, now, key, _ids(new, event), event, memo)


def tick(rule: Rule, key: str, state: dict[str, Any], now: datetime) -> Evaluation:
    """Re-judge a window on the clock, with no event, for rules `ticking(rule)` names.

    An active window (a rule with `release`): duration windows age out, `value`/`any` measures keep the
    last figure seen (while `max_age` allows), and `release.after` and the cooldown's minimum hold run on
    `now`; returns the release (same owner and targets as the pause) or a declined release. A `due` window:
    the pause it waits for once `min_age` is reached (same owner and targets as on an event). Returns
    `Evaluation(None)` when nothing changed; any other rule or window: untouched."""
    if not ticking(rule) or not state:
        return _UNTOUCHED
    if state.get("active"):
        return _tick_active(rule, key, state, now)
    if state.get("due"):
        return _tick_due(rule, key, state, now)
    return _UNTOUCHED


def _tick_active(rule: Rule, key: str, state: dict[str, Any], now: datetime) -> Evaluation:
    measure, window = rule.measure, rule.window
    assert measure is not None
    if rule.release is None:
        return _UNTOUCHED                      # a person releases it
    if measure.figure and not (isinstance(state.get("value"), int | float)
                               and isinstance(state.get("sample"), int | float)):
        return _UNTOUCHED                      # paused before values were kept: judged on the next event
    new = dict(state)
    if window is not None and window.duration is not None and new.get("ts"):
        horizon = (now - window.duration).timestamp()
        kept = [e for e in new["ts"] if e[0] > horizon]
        if len(kept) != len(new["ts"]):
            new["ts"] = kept
    result = _judge_release(rule, new, _stored(rule, new, now), now, key, tuple(new.get("ids", ())))
    if not result.decisions and not result.declined and new == state:
        return _UNTOUCHED
    return result


def _tick_due(rule: Rule, key: str, state: dict[str, Any], now: datetime) -> Evaluation:
    measure, pause = rule.measure, rule.pause
    assert measure is not None and pause is not None
    new = dict(state)
    measured = _stored(rule, new, now)
    age = _age(rule, new, now)
    if measured is None or age is None or measured[3] < measure.min_sample or not compare(pause.when, measured[0]):
        for stale in ("due", "due_at", "targets"):   # the figure is too old to pause on: the next one decides
            new.pop(stale, None)
        return Evaluation(new)
    if not _ready(rule, measured, age):
        return _UNTOUCHED
    return _pause(rule, new, measured, now, key, _stored_targets(rule, new, key), tuple(new.get("ids", ())),
                  age=age)
