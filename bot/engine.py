"""Pure rule evaluation: (rule, event, window state) → new window state and maybe a decision.

No I/O, no clock, no logging: the worker loads and stores window state and acts on decisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from bot.events import CampaignRef, Event
from bot.ruleset import Comparison, Rule

__all__ = ["Decision", "Evaluation", "compare", "evaluate", "field_value", "matches"]

_MISSING: Final = object()
_RECENT_IDS: Final = 10


@dataclass(frozen=True, slots=True)
class Decision:
    """A rule's verdict for one campaign, with every input that led to it."""

    rule: str
    digest: str
    action: str                     # pause (the next issue adds release and notify)
    campaign: CampaignRef
    reason: str
    shadow: bool
    event_ids: tuple[str, ...]
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    window: dict[str, Any] | None   # state to store; None when the event did not touch the window
    decision: Decision | None


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


def compare(comparison: Comparison, value: Any) -> bool:
    """Apply one operator; a missing value satisfies only `exists: false` and `ne`/`not_in`."""
    op, operand = comparison.operator
    if op == "exists":
        return (value is not _MISSING) == operand
    if value is _MISSING:
        return op in ("ne", "not_in")
    if op == "eq":
        return bool(value == operand)
    if op == "ne":
        return bool(value != operand)
    if op == "in":
        return value in operand
    if op == "not_in":
        return value not in operand
    if op == "matches":
        return isinstance(value, str) and re.search(operand, value) is not None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return {"gt": value > operand, "gte": value >= operand, "lt": value < operand, "lte": value <= operand}[op]


def matches(rule: Rule, event: Event) -> bool:
    """True when the event has a type the rule listens for, a campaign, and every `when` clause holds."""
    return (
        event.type in rule.on
        and event.campaign is not None
        and all(compare(cmp, field_value(event, name)) for name, cmp in rule.when.items())
    )


def _slide(seq: str, letter: str, last: int) -> str:
    """Append one entry and drop the oldest so at most `last` denominators (`d`) remain."""
    seq += letter
    excess = seq.count("d") - last
    if excess > 0:
        for _ in range(excess):
            seq = seq[seq.index("d") + 1 :]
        seq = seq.lstrip("n")                 # numerators that arrived before the oldest kept send
    if len(seq) > 2 * last:                   # numerators with no sends: keep the window bounded
        seq = seq[len(seq) - 2 * last :]
    return seq


def evaluate(rule: Rule, event: Event, window: dict[str, Any] | None) -> Evaluation:
    """Fold the event into the rule's window and decide whether to pause the event's campaign."""
    if not matches(rule, event):
        return Evaluation(None, None)
    numerator_type, denominator_type = rule.measure.ratio
    letter = "d" if event.type == denominator_type else "n" if event.type == numerator_type else ""
    if not letter:
        return Evaluation(None, None)
    state = dict(window or {"seq": "", "ids": []})
    state["seq"] = _slide(str(state["seq"]), letter, rule.window.last)
    if letter == "n":
        state["ids"] = [*list(state["ids"])[-(_RECENT_IDS - 1) :], event.id]
    numerator, denominator = state["seq"].count("n"), state["seq"].count("d")
    if denominator < rule.measure.min_sample:
        return Evaluation(state, None)
    value = numerator / denominator
    if not compare(rule.pause.when, value):
        return Evaluation(state, None)
    op, threshold = rule.pause.when.operator
    inputs = {
        "numerator": numerator, "denominator": denominator, "value": round(value, 6),
        "threshold": {op: threshold}, "window": {"last": rule.window.last, "of": rule.window.of},
        "min_sample": rule.measure.min_sample, "ratio": list(rule.measure.ratio),
        "rule_digest": rule.digest,
    }
    reason = rule.pause.reason.format(
        rule=rule.name, numerator=numerator, denominator=denominator, value=value, of=rule.window.of
    )
    assert event.campaign is not None  # matches() checked it
    decision = Decision(
        rule=rule.name, digest=rule.digest, action="pause", campaign=event.campaign, reason=reason,
        shadow=rule.mode == "shadow", event_ids=tuple(dict.fromkeys([*state["ids"], event.id])), inputs=inputs,
    )
    return Evaluation(state, decision)
