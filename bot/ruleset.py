"""Rule files (`rules/*.yaml`): loading, indexing, and errors that name file, line and field."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import yaml
from pydantic import ValidationError

from bot.errors import ConfigError
from bot.rulespec import OPERATORS, Comparison, Rule

__all__ = ["OPERATORS", "Comparison", "Rule", "RuleSet", "load_rule", "load_rules"]


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
