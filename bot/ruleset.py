"""Rule files (`rules/*.yaml`): pydantic models, loading, and errors that name file, line and field."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.errors import ConfigError
from bot.events import EVENT_TYPES, SOURCES, VENDORS

__all__ = ["OPERATORS", "Comparison", "Measure", "Pause", "Rule", "RuleSet", "Window", "load_rules"]

#: The `when` operators and the value each takes.
OPERATORS: Final = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "matches")
_FIELD: Final = re.compile(r"^(type|source|campaign|campaign\.vendor|campaign\.id|data(\.[A-Za-z0-9_]+)+)$")


def _check_field(name: str) -> str:
    if not _FIELD.match(name):
        raise ValueError(f"unknown field {name!r}: use type, source, campaign, campaign.vendor, campaign.id "
                         "or data.<name>")
    return name


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
        given = [name for name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"give exactly one operator of {', '.join(OPERATORS)}")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"matches: invalid regular expression: {exc}") from None
        return self

    @property
    def operator(self) -> tuple[str, Any]:
        name = next(iter(self.model_fields_set))
        return ("in" if name == "in_" else name), getattr(self, name)


class Window(_Spec):
    """A per-key window over the last `last` events of type `of` (and what arrived since the oldest)."""

    per: Literal["campaign"] = "campaign"
    last: int = Field(ge=1, le=100_000)
    of: str


class Measure(_Spec):
    """`ratio: [numerator, denominator]` over the window, computed once `min_sample` denominators are in."""

    ratio: tuple[str, str]
    min_sample: int = Field(1, ge=1)


class Pause(_Spec):
    """When the measured value satisfies `when`, place a hold owned by this rule."""

    when: Comparison
    reason: str = "{rule}: {numerator}/{denominator} = {value:.2%} over the last {denominator} {of}"

    @field_validator("reason")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(rule="r", numerator=1, denominator=2, value=0.5, of="email.sent")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad template ({exc}); placeholders: rule, numerator, denominator, value, of") from None
        return value


class Rule(_Spec):
    """One rule file. The file stem is the rule's name."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    description: str = Field(min_length=1)
    on: tuple[str, ...] = Field(min_length=1)
    when: dict[Annotated[str, AfterValidator(_check_field)], Comparison] = Field(default_factory=dict)
    window: Window
    measure: Measure
    pause: Pause
    mode: Literal["enforce", "shadow"] = "enforce"
    digest: str = ""

    @field_validator("on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("on")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for event_type in value:
            _check_type(event_type)
        return value

    @field_validator("when")
    @classmethod
    def _known_fields(cls, value: dict[str, Comparison]) -> dict[str, Comparison]:
        for name, comparison in value.items():
            op, operand = comparison.operator
            if name == "source" and op in ("eq", "in"):
                for item in operand if isinstance(operand, list) else [operand]:
                    if item not in SOURCES:
                        raise ValueError(f"unknown source {item!r}; expected one of {sorted(SOURCES)}")
            if name == "campaign.vendor" and op in ("eq", "in"):
                for item in operand if isinstance(operand, list) else [operand]:
                    if item not in VENDORS:
                        raise ValueError(f"unknown vendor {item!r}; expected one of {sorted(VENDORS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        for event_type in (self.window.of, *self.measure.ratio):
            _check_type(event_type)
            if event_type not in self.on:
                raise ValueError(f"{event_type!r} is measured but not listed in `on`")
        if self.measure.ratio[1] != self.window.of:
            raise ValueError("the ratio's denominator must be the window's `of` event type")
        return self


def _check_type(event_type: str) -> None:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known: {', '.join(sorted(EVENT_TYPES))}")


class RuleSet:
    """Loaded rules, indexed by event type so an event only meets the rules that listen for it."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules: Final = tuple(rules)
        index: dict[str, list[Rule]] = {}
        for rule in rules:
            for event_type in rule.on:
                index.setdefault(event_type, []).append(rule)
        self._by_type: Final[Mapping[str, tuple[Rule, ...]]] = {k: tuple(v) for k, v in index.items()}

    def for_type(self, event_type: str) -> tuple[Rule, ...]:
        return self._by_type.get(event_type, ())

    def __len__(self) -> int:
        return len(self.rules)


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. (YAML 1.1 reads the key `on` as True.)"""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at pydantic error location `loc` (nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                match = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            match = node.value[part]
        else:
            match = None
        if match is None:
            break
        node = match
        line = node.start_mark.line + 1
    return line


def load_rule(path: Path) -> Rule:
    """Parse and validate one rule file; ConfigError lists every problem as `file:line: field: message`."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a rule file must be a mapping of keys (description, on, window, ...)")
    if "name" in data:
        raise ConfigError(f"{path}:{_line_of(node, ('name',))}: name: the file stem is the rule's name; remove it")
    data = {**data, "name": path.stem, "digest": hashlib.sha256(raw).hexdigest()[:12]}
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p not in ("in_",)) or ("(file)",)
            field = ".".join(str(p) for p in loc)
            line = _line_of(node, tuple(p if p != "in_" else "in" for p in err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            if loc == ("name",):
                message = f"file stem {path.stem!r}: use lowercase letters, digits and dashes"
            problems.append(f"{path}:{line or 1}: {field}: {message}")
        raise ConfigError("\n".join(problems)) from None


def load_rules(directory: Path) -> RuleSet:
    """Load every `*.yaml`/`*.yml` in `directory`; all problems of all files in one ConfigError."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: rules directory does not exist")
    rules: list[Rule] = []
    problems: list[str] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            rules.append(load_rule(path))
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return RuleSet(rules)
