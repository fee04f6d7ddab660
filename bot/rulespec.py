"""The rule language: pydantic models of one rule file (the vocabulary is documented in rules/README.md)."""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.events import EVENT_TYPES, SOURCES, VENDORS
from bot.vocabulary import RULE_ACTS, Act

__all__ = [
    "KEYS",
    "OPERATORS",
    "SCOPES",
    "Action",
    "Comparison",
    "Duration",
    "Measure",
    "Pause",
    "Release",
    "Rule",
    "Window",
    "parse_duration",
]

#: The `when` operators.
OPERATORS: Final = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "matches")
#: What a window is kept per.
KEYS: Final = ("campaign", "sender_account", "sender_domain", "vendor")
#: Which campaigns an action applies to. `labels`: an alert's `campaign`/`sender_email`/`sender_domain`/`vendor`.
SCOPES: Final = (*KEYS, "labels")
_FIELD: Final = re.compile(
    r"^(type|source|campaign|campaign\.(vendor|id|account|client)|data(\.[A-Za-z0-9_]+)+)$")
_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """`90s`, `10m`, `24h`, `7d` (or a number of seconds) → timedelta."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError(f"invalid duration {value!r}: write e.g. 90s, 10m, 24h or 7d")
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _check_field(name: str) -> str:
    if not _FIELD.match(name):
        raise ValueError(f"unknown field {name!r}: use type, source, campaign, campaign.vendor, campaign.id, "
                         "campaign.account, campaign.client or data.<name>")
    return name


def _check_type(event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    return event_type


EventType = Annotated[str, AfterValidator(_check_type)]
FieldName = Annotated[str, AfterValidator(_check_field)]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Comparison(_Spec):
    """Exactly one operator applied to a value, e.g. `{gte: 0.03}` or `{in: [smartlead]}`."""

    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    not_in: list[Any] | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    exists: bool | None = None
    matches: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Comparison:
        if len(self.model_fields_set) != 1:
            raise ValueError(f"give exactly one operator of {', '.join(OPERATORS)}")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"matches: invalid regular expression: {exc}") from None
        return self

    @functools.cached_property
    def operator(self) -> tuple[str, Any]:
        name = next(iter(self.model_fields_set))
        return ("in" if name == "in_" else name), getattr(self, name)


class Window(_Spec):
    """Per key: the last `last` events of type `of` (and what arrived since), or everything in `duration`."""

    per: Literal["campaign", "sender_account", "sender_domain", "vendor"] = "campaign"
    last: int | None = Field(None, ge=1, le=100_000)
    of: EventType | None = None
    duration: Duration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Window:
        if (self.last is None) == (self.duration is None):
            raise ValueError("give either `last` (with `of`) or `duration`")
        if self.last is not None and self.of is None:
            raise ValueError("`last` counts events of type `of`: give `of`")
        if self.duration is not None and self.duration <= timedelta(0):
            raise ValueError("`duration` must be positive")
        return self


class Measure(_Spec):
    """What is compared: `ratio: [numerator, denominator]`, `count: type`, or `value: data.<field>` (metrics)."""

    ratio: tuple[EventType, EventType] | None = None
    count: EventType | None = None
    value: FieldName | None = None
    #: ratio: denominators in the window; value: the `sample` field's value; count: the count. Below it the
    #: rule does not pause; a ratio or a value below it does not count as recovered either.
    min_sample: int = Field(1, ge=1)
    sample: FieldName | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Measure:
        if sum(x is not None for x in (self.ratio, self.count, self.value)) != 1:
            raise ValueError("give exactly one of `ratio`, `count` or `value`")
        if self.sample is not None and self.value is None:
            raise ValueError("`sample` goes with `value` (ratios and counts use the window)")
        return self


class Pause(_Spec):
    """When the measured value satisfies `when`, place a hold owned by this rule."""

    when: Comparison
    reason: str = "{rule}: {value:.4g} ({numerator}/{denominator})"

    @field_validator("reason")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(rule="r", numerator=1, denominator=2, value=0.5, of="email.sent", key="k")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad template ({exc}); placeholders: rule, numerator, denominator, value, of, "
                             "key") from None
        return value


class Release(_Spec):
    """Hysteresis: release this rule's hold (for one key) once `when` has held continuously for `after`."""

    when: Comparison
    after: Duration = timedelta(0)


class Action(_Spec):
    """What an event rule does when its event arrives and `when` holds."""

    do: Act
    #: release: hold owners to remove: `rule:<name>` (every key of that rule on the campaigns targeted),
    #: `alert` (this alert's hold), `vendor`.
    holds: tuple[str, ...] = ()
    #: pause: who owns the hold: this rule (`rule:<name>@<key>`), or the alert in the event (`alert:<fingerprint>`).
    owner: Literal["rule", "alert"] = "rule"
    reason: str = "{rule}: {type}"

    @field_validator("do", mode="before")
    @classmethod
    def _rule_act(cls, value: Any) -> Any:
        if value not in RULE_ACTS:
            raise ValueError(f"unknown action {value!r}; use one of {', '.join(RULE_ACTS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Action:
        if self.do == Act.RELEASE and not self.holds:
            raise ValueError("release needs `holds`: e.g. [rule:bounce-guard] or [alert]")
        if self.do != Act.RELEASE and self.holds:
            raise ValueError("`holds` is only for `do: release`")
        for owner in self.holds:
            if owner not in ("alert", "vendor") and not re.fullmatch(r"rule:[a-z0-9][a-z0-9-]{0,63}", owner):
                raise ValueError(f"unknown hold owner {owner!r}: use rule:<name>, alert or vendor")
        return self


class Rule(_Spec):
    """One rule file: a measured rule (`measure` + `pause`) or an event rule (`action`). Name = file stem."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    description: str = Field(min_length=1)
    on: tuple[EventType, ...] = Field(min_length=1)
    when: dict[FieldName, Comparison] = Field(default_factory=dict)
    window: Window | None = None
    measure: Measure | None = None
    pause: Pause | None = None
    release: Release | None = None
    action: Action | None = None
    scope: Literal["campaign", "sender_account", "sender_domain", "vendor", "labels"] = "campaign"
    #: minimum hold before this rule's own `release` per key, escalating over re-trips: [24h, 72h, 7d]
    #: (the Nth trip of a chain is held at least cooldown[min(N, len) - 1]); never delays a pause
    cooldown: tuple[Duration, ...] = ()
    mode: Literal["enforce", "shadow"] = "enforce"
    digest: str = ""

    @field_validator("on", "cooldown", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str | int | float) else value

    @field_validator("cooldown")
    @classmethod
    def _cooldown_needs_release(cls, value: tuple[timedelta, ...], info: ValidationInfo) -> tuple[timedelta, ...]:
        if not value:
            return value
        if any(step <= timedelta(0) for step in value):
            raise ValueError("every cooldown step must be positive, e.g. [24h, 72h, 7d]")
        if info.data.get("action") is not None:
            raise ValueError("an event rule has no `release`: its holds end only by a person or a release rule, "
                             "so a cooldown (the minimum hold before the rule's own release) means nothing here; "
                             "remove `cooldown`")
        if "release" in info.data and info.data["release"] is None:
            raise ValueError("a cooldown is the minimum hold before this rule's own `release`, and this rule has "
                             "none: its holds end only by a person. Remove `cooldown`, or add `release` (e.g. "
                             "`release: {when: ..., after: 24h}`)")
        return value

    @field_validator("when")
    @classmethod
    def _known_values(cls, value: dict[str, Comparison]) -> dict[str, Comparison]:
        for name, comparison in value.items():
            op, operand = comparison.operator
            known = {"source": SOURCES, "campaign.vendor": VENDORS}.get(name)
            if known is not None and op in ("eq", "in"):
                for item in operand if isinstance(operand, list) else [operand]:
                    if item not in known:
                        raise ValueError(f"{name}: unknown value {item!r}; expected one of {sorted(known)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.action is not None:
            if any(x is not None for x in (self.window, self.measure, self.pause, self.release)):
                raise ValueError("an event rule (`action`) has no window, measure, pause or release")
            return self
        if self.measure is None or self.pause is None:
            raise ValueError("give `measure` and `pause` (a measured rule) or `action` (an event rule)")
        measured = self.measure.ratio or ((self.measure.count,) if self.measure.count else ())
        if measured and self.window is None:
            raise ValueError("ratios and counts need a `window`")
        for event_type in (*measured, *((self.window.of,) if self.window and self.window.of else ())):
            if event_type not in self.on:
                raise ValueError(f"{event_type!r} is measured but not listed in `on`")
        if self.measure.ratio and self.window and self.window.of and self.measure.ratio[1] != self.window.of:
            raise ValueError("the ratio's denominator must be the window's `of` event type")
        return self

    @property
    def key(self) -> str:
        """What windows and holds are kept per: a measured rule's `window.per` (campaign without a window),
        an event rule's scope (campaign for `labels`)."""
        if self.window is not None:
            return self.window.per
        if self.action is not None and self.scope != "labels":
            return self.scope
        return "campaign"
