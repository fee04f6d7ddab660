"""The rule language: pydantic models of one rule file (the vocabulary is documented in rules/README.md).

A check that concerns a key deeper than the model it runs in raises `RuleError(message, where=(...))`:
`where` is the path of the offending key from that model (e.g. `("measure", "min_age")`), so the loader
(bot.ruleset) names that key's own line, not the line of the mapping that holds it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.events import EVENT_TYPES, SOURCES, VENDORS
from bot.vocabulary import RULE_ACTS, Act

__all__ = [
    "KEYS",
    "OPERATORS",
    "ORDER_OPERATORS",
    "PLACEHOLDERS",
    "SCOPES",
    "Action",
    "Comparison",
    "Conditions",
    "Duration",
    "FieldRatio",
    "Measure",
    "Pause",
    "Release",
    "Rule",
    "RuleError",
    "Warn",
    "Window",
    "parse_duration",
]

#: The `when` operators.
OPERATORS: Final = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "matches")
#: The operators that order numbers (what `warn` and `pause` must use to be compared).
ORDER_OPERATORS: Final = ("gt", "gte", "lt", "lte")
#: What a window is kept per.
KEYS: Final = ("campaign", "sender_account", "sender_domain", "vendor")
#: Which campaigns an action applies to. `labels`: an alert's `campaign`/`sender_email`/`sender_domain`/`vendor`.
SCOPES: Final = (*KEYS, "labels")
#: The placeholders of a measured rule's `pause.reason` and `warn.reason`.
PLACEHOLDERS: Final = ("rule", "value", "numerator", "denominator", "sample", "of", "key", "age", "matched", "data")
_FIELD: Final = re.compile(
    r"^(type|source|campaign|campaign\.(vendor|id|account|client)|data(\.[A-Za-z0-9_]+)+)$")
_DATA_FIELD: Final = re.compile(r"^data(\.[A-Za-z0-9_]+)+$")
_RULE_NAME: Final = r"^[a-z0-9][a-z0-9-]{0,63}$"
_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class RuleError(ValueError):
    """A rule file mistake located at `where`, a key path below the model that raised it."""

    def __init__(self, message: str, *, where: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.where = where


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


def _positive(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("must be a positive duration, e.g. 90s, 10m, 24h or 7d")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]


def _check_field(name: str) -> str:
    if not _FIELD.match(name):
        raise ValueError(f"unknown field {name!r}: use type, source, campaign, campaign.vendor, campaign.id, "
                         "campaign.account, campaign.client or data.<name>")
    return name


def _check_data_field(name: str) -> str:
    if not _DATA_FIELD.match(name):
        raise ValueError(f"{name!r} is not a figure the event carries: write data.<name> (e.g. data.bounce_rate)")
    return name


def _check_type(event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    return event_type


EventType = Annotated[str, AfterValidator(_check_type)]
FieldName = Annotated[str, AfterValidator(_check_field)]
DataField = Annotated[str, AfterValidator(_check_data_field)]


class _Spec(BaseModel):
    """Frozen: what a rule derives from its fields is computed once (`functools.cached_property`, read on
    every event) and forgotten by `model_copy`, whose update may change the fields it derives from."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        for cls in type(copied).__mro__:
            for name, attribute in vars(cls).items():
                if isinstance(attribute, functools.cached_property):
                    copied.__dict__.pop(name, None)
        return copied


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


def _known_values(value: dict[str, Comparison]) -> dict[str, Comparison]:
    """`source` and `campaign.vendor` compared for equality must name a known source or vendor."""
    for name, comparison in value.items():
        op, operand = comparison.operator
        known = {"source": SOURCES, "campaign.vendor": VENDORS}.get(name)
        if known is not None and op in ("eq", "in"):
            for item in operand if isinstance(operand, list) else [operand]:
                if item not in known:
                    raise RuleError(f"unknown value {item!r}; expected one of {sorted(known)}", where=(name,))
    return value


#: Conditions on event fields, all of which must hold (a rule's `when`, one alternative of `measure.any`).
Conditions = Annotated[dict[FieldName, Comparison], AfterValidator(_known_values)]


class Window(_Spec):
    """Per key: the last `last` events of type `of` (and what arrived since), everything in `duration`, or
    everything since the key's first event of type `since` (never slides)."""

    per: Literal["campaign", "sender_account", "sender_domain", "vendor"] = "campaign"
    last: int | None = Field(None, ge=1, le=100_000)
    of: EventType | None = None
    duration: Duration | None = None
    since: EventType | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Window:
        if sum(x is not None for x in (self.last, self.duration, self.since)) != 1:
            raise ValueError("give one of `last` (with `of`), `duration` or `since`")
        if self.last is not None and self.of is None:
            raise ValueError("`last` counts events of type `of`: give `of`")
        if self.since is not None and self.of is not None:
            raise RuleError("`of` goes with `last`; a `since` window counts its `since` events", where=("of",))
        if self.duration is not None and self.duration <= timedelta(0):
            raise ValueError("`duration` must be positive")
        return self

    @functools.cached_property
    def base(self) -> str | None:
        """The event type the window is counted in: `of` (last N), `since`, or None (a duration)."""
        return self.of or self.since


class FieldRatio(_Spec):
    """`{ratio: [data.bounced, data.sent]}`: one figure divided by another, both carried by the event (no
    value when the second is missing or 0)."""

    ratio: tuple[DataField, DataField]


def _sources(value: Any) -> Any:
    """`value:` takes one source or a list of sources tried in order."""
    return value if isinstance(value, list | tuple) else [value]


def _source_kind(value: Any) -> str:
    return "<ratio>" if isinstance(value, dict | FieldRatio) else "<field>"


#: One source of a `value` measure: a data field, or `{ratio: [data.a, data.b]}`. (The tags, in `<>`, are
#: left out of the location the loader names.)
ValueSource = Annotated[Annotated[DataField, Tag("<field>")] | Annotated[FieldRatio, Tag("<ratio>")],
                        Discriminator(_source_kind)]


def _alternatives(value: Any) -> Any:
    if isinstance(value, dict):               # a ValueError: pydantic reports it with the key's line
        raise RuleError("`any` is a list of alternatives, each a mapping of conditions like `when` (all of an "
                         "alternative's must hold), e.g. `any: [{data.smtp_ok: {eq: false}}, "
                         "{data.reputation: {lt: 70}}]`")
    return value


class Measure(_Spec):
    """What is compared: over a window, `ratio: [numerator, denominator]`, `count: type` or `absent: type`;
    on the event's own figures, `value: data.<field>` (or sources tried in order) or `any: [conditions, ...]`."""

    ratio: tuple[EventType, EventType] | None = None
    count: EventType | None = None
    #: how many events of this type the window holds (pause `when: {eq: 0}`: none), its sample being the
    #: window's `of`/`since` events: "no reply after 500 sends"
    absent: EventType | None = None
    #: the event's number: the first of these sources the event carries (a data field, or a FieldRatio)
    value: Annotated[tuple[ValueSource, ...], BeforeValidator(_sources), Field(min_length=1)] | None = None
    #: 1 when any alternative holds on the event (each a mapping of conditions, all must hold), else 0
    any: Annotated[tuple[Conditions, ...], BeforeValidator(_alternatives), Field(min_length=1)] | None = None
    #: ratio, absent: the window's `of`/`since` events; value, any: the `sample` field (or always enough
    #: without it); count: the count. Below it the rule neither warns nor pauses; a ratio, an absence or a
    #: value below it does not count as recovered either.
    min_sample: int = Field(1, ge=1)
    sample: DataField | None = None
    #: value, any: the last figure counts for at most this long (a gap between figures longer than this
    #: restarts a release's hold time; on the clock an older figure is unknown)
    max_age: PositiveDuration | None = None
    #: no pause or warning before the key is this old: a `since` window's first `since` event, or the time in
    #: `age_from` (value, any)
    min_age: PositiveDuration | None = None
    #: value, any: the data field holding the time the age counts from (ISO 8601, e.g. data.started_at)
    age_from: DataField | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Measure:
        kinds = {"ratio": self.ratio, "count": self.count, "absent": self.absent, "value": self.value,
                 "any": self.any}
        if sum(x is not None for x in kinds.values()) != 1:
            raise ValueError("give exactly one of `ratio`, `count`, `absent`, `value` or `any`")
        figure = self.value is not None or self.any is not None
        for key in ("sample", "max_age", "age_from"):
            if getattr(self, key) is not None and not figure:
                raise RuleError(f"`{key}` goes with `value` or `any` (a window measure counts its window)",
                                where=(key,))
        if self.age_from is not None and self.min_age is None:
            raise RuleError("`age_from` says where a `min_age` counts from: give `min_age` too", where=("age_from",))
        if figure and self.min_age is not None and self.age_from is None:
            raise RuleError("a `value` or `any` measure has no window to age: give `age_from: data.<field>` (a "
                            "time the event carries, e.g. data.started_at)", where=("min_age",))
        return self

    @functools.cached_property
    def figure(self) -> bool:
        """True for measures read from the event itself (`value`, `any`), which keep no window."""
        return self.value is not None or self.any is not None

    @functools.cached_property
    def counted(self) -> str | None:
        """The event type a window measure counts (the ratio's numerator, `count`, `absent`)."""
        return self.ratio[0] if self.ratio is not None else self.count or self.absent


class _Placeholder:
    """Stands for any placeholder value when a template is checked: takes any index and format spec."""

    def __getitem__(self, key: Any) -> _Placeholder:
        return self

    def __format__(self, spec: str) -> str:
        return ""


def _check_template(value: str) -> str:
    try:
        value.format(**dict.fromkeys(PLACEHOLDERS, _Placeholder()))
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ValueError(f"bad template ({exc}); placeholders: {', '.join(PLACEHOLDERS)} (data[<name>])") from None
    return value


Template = Annotated[str, AfterValidator(_check_template)]


class Pause(_Spec):
    """When the measured value satisfies `when`, place a hold owned by this rule."""

    when: Comparison
    reason: Template = "{rule}: {value:.4g} ({numerator}/{denominator})"


class Warn(_Spec):
    """A notice before the pause: once per episode, when the value satisfies `when` but not yet the pause.
    The episode ends when `clear` holds (default: when `when` no longer does), and when the rule pauses or
    releases."""

    when: Comparison
    clear: Comparison | None = None
    #: the sample a warning needs (default: the measure's `min_sample`)
    min_sample: int | None = Field(None, ge=1)
    reason: Template = "{rule}: {value:.4g} is nearing the pause threshold"


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


def _direction(comparison: Comparison) -> int:
    """+1 for gt/gte (bad when high), -1 for lt/lte (bad when low), 0 otherwise."""
    op = comparison.operator[0]
    return 1 if op in ("gt", "gte") else -1 if op in ("lt", "lte") else 0


class Rule(_Spec):
    """One rule file: a measured rule (`measure` + `pause`) or an event rule (`action`). Name = file stem."""

    name: str = Field(pattern=_RULE_NAME)
    description: str = Field(min_length=1)
    on: tuple[EventType, ...] = Field(min_length=1)
    when: Conditions = Field(default_factory=dict)
    window: Window | None = None
    measure: Measure | None = None
    pause: Pause | None = None
    warn: Warn | None = None
    release: Release | None = None
    action: Action | None = None
    scope: Literal["campaign", "sender_account", "sender_domain", "vendor", "labels"] = "campaign"
    #: minimum hold before this rule's own `release` per key, escalating over re-trips: [24h, 72h, 7d]
    #: (the Nth trip of a chain is held at least cooldown[min(N, len) - 1]); never delays a pause
    cooldown: tuple[Duration, ...] = ()
    #: pause under another rule's hold (`rule:<that rule>@<key>`) instead of this rule's own: two rules that
    #: measure one thing two ways (webhooks, polled analytics) place one hold, never two
    shared_hold: str | None = Field(None, pattern=_RULE_NAME)
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

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.action is not None:
            for key in ("window", "measure", "pause", "warn", "release", "shared_hold"):
                if getattr(self, key) is not None:
                    raise RuleError("an event rule (`action`) has no window, measure, pause, warn, release or "
                                    "shared_hold", where=(key,))
            return self
        if self.measure is None or self.pause is None:
            raise ValueError("give `measure` and `pause` (a measured rule) or `action` (an event rule)")
        self._check_window(self.measure, self.window)
        self._check_warn(self.pause, self.warn)
        if self.shared_hold is not None:
            if self.shared_hold == self.name:
                raise RuleError("a rule's own hold needs no `shared_hold`: name another rule", where=("shared_hold",))
            if self.release is not None:
                raise RuleError("a rule pausing under another rule's hold cannot `release` it: its release would "
                                "lift the hold the other rule placed (and the other's would lift this one's). "
                                "Remove `release` or `shared_hold`", where=("release",))
        return self

    def _check_window(self, measure: Measure, window: Window | None) -> None:
        if measure.figure:
            if window is not None:
                raise RuleError("a `value` or `any` measure reads the event's own figures: it has no window (its "
                                "holds are kept per the rule's `scope`); remove `window`", where=("window",))
            return
        if window is None:
            raise RuleError("ratios, counts and absences need a `window`", where=("measure",))
        kind = next(k for k in ("ratio", "count", "absent") if getattr(measure, k) is not None)
        for event_type in (measure.counted, *(measure.ratio or ()), window.base):
            if event_type is not None and event_type not in self.on:
                raise RuleError(f"{event_type!r} is measured but not listed in `on`", where=("on",))
        if measure.ratio is not None and window.base is not None and measure.ratio[1] != window.base:
            raise RuleError("the ratio's denominator must be the window's `of` (or `since`) event type",
                            where=("measure", "ratio", 1))
        if measure.absent is not None and window.base is None:
            raise RuleError("an absence is judged against a number of other events: use a window with `last` and "
                            "`of`, or `since`", where=("window",))
        if measure.absent is not None and measure.absent == window.base:
            raise RuleError("`absent` counts another type than the window's own base", where=("measure", kind))
        if measure.min_age is not None and window.since is None:
            raise RuleError("`min_age` counts from the window's first `since` event: use `window: {since: <type>}`",
                            where=("measure", "min_age"))

    @staticmethod
    def _check_warn(pause: Pause, warn: Warn | None) -> None:
        if warn is None:
            return
        way, warn_way = _direction(pause.when), _direction(warn.when)
        if way == 0:
            raise RuleError(f"a warning needs a pause threshold it comes before: use {', '.join(ORDER_OPERATORS)} "
                            "in `pause.when`", where=("warn",))
        if warn_way != way:
            raise RuleError(f"`warn.when` must point the same way as `pause.when` ({pause.when.operator[0]}): "
                            f"use {'gt or gte' if way > 0 else 'lt or lte'}", where=("warn", "when"))
        warn_at, pause_at = warn.when.operator[1], pause.when.operator[1]
        if (warn_at - pause_at) * way >= 0:
            raise RuleError(f"the warning threshold {warn_at} must come before the pause threshold {pause_at} "
                            f"({'lower' if way > 0 else 'higher'})", where=("warn", "when"))
        if warn.clear is not None and _direction(warn.clear) != -way:
            raise RuleError(f"`warn.clear` says when the value is back: use {'lt or lte' if way > 0 else 'gt or gte'}",
                            where=("warn", "clear"))

    @functools.cached_property
    def key(self) -> str:
        """What windows and holds are kept per: a measured rule's `window.per` (its `scope` without a window:
        `value` and `any` measures), an event rule's scope (campaign for `labels`)."""
        if self.window is not None:
            return self.window.per
        return self.scope if self.scope != "labels" else "campaign"

    @functools.cached_property
    def hold_rule(self) -> str:
        """The rule whose name the holds this rule places carry: `shared_hold`, else its own."""
        return self.shared_hold or self.name
