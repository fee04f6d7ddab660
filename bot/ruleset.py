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
from bot.rulespec import OPERATORS, Comparison, Rule, RuleError

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
            cause = (err.get("ctx") or {}).get("error")
            full = tuple(p for p in (*err["loc"], *(cause.where if isinstance(cause, RuleError) else ()))
                         if not (isinstance(p, str) and p.startswith("<")))     # a union's tag, no key
            loc = tuple(p for p in full if p not in ("in_",)) or ("(file)",)
            field = ".".join(str(p) for p in loc)
            line = _line_of(node, tuple(p if p != "in_" else "in" for p in full))
            message = err["msg"].removeprefix("Value error, ")
            if loc == ("name",):
                message = f"file stem {path.stem!r}: use lowercase letters, digits and dashes"
            problems.append(f"{path}:{line or 1}: {field}: {message}")
        raise ConfigError("\n".join(problems)) from None


def _shared_holds(rules: list[Rule], paths: dict[str, Path], failed: set[str]) -> list[str]:
    """Checks across files: a `shared_hold` names a rule of the same directory that keeps its holds per the
    same key, releases none itself (its release would lift the hold this rule placed) and shares no other's."""
    by_name = {rule.name: rule for rule in rules}
    problems = []
    for rule in rules:
        if rule.shared_hold is None or rule.shared_hold in failed:
            continue                        # a file that failed to load has its own errors
        other = by_name.get(rule.shared_hold)
        if other is None:
            why = f"no rule {rule.shared_hold!r} in this directory; known: {', '.join(sorted(by_name))}"
        elif other.action is not None:
            why = f"{other.name!r} is an event rule: share the hold of a measured rule"
        elif other.shared_hold is not None:
            why = f"{other.name!r} pauses under {other.shared_hold!r}'s hold itself: name {other.shared_hold!r}"
        elif other.release is not None:
            why = (f"{other.name!r} releases its own holds, so its release would lift the hold this rule placed "
                   "while this rule still measures it bad: share only the hold of a rule a person releases")
        elif other.key != rule.key:
            why = (f"{other.name!r} keeps its holds per {other.key}, this rule per {rule.key}: one hold needs one "
                   "key (`window.per`, or `scope` for value and any measures)")
        else:
            continue
        path = paths[rule.name]
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
        problems.append(f"{path}:{_line_of(node, ('shared_hold',)) or 1}: shared_hold: {why}")
    return problems


def load_rules(directory: Path) -> RuleSet:
    """Load every `*.yaml`/`*.yml` in `directory`; all problems of all files in one ConfigError (and those
    across files: a `shared_hold` must name a fitting rule of the directory)."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: rules directory does not exist")
    rules: list[Rule] = []
    problems: list[str] = []
    paths: dict[str, Path] = {}
    failed: set[str] = set()
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            rules.append(load_rule(path))
            paths[path.stem] = path
        except ConfigError as exc:
            problems.append(str(exc))
            failed.add(path.stem)
    problems += _shared_holds(rules, paths, failed)
    if problems:
        raise ConfigError("\n".join(problems))
    return RuleSet(rules)
