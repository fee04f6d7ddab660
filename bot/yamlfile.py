"""Reading the YAML files users give (the inventory, the accounts): one mistake, one line naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError

__all__ = ["read_section"]


def read_section(path: Path, key: str, kind: type, what: str) -> Any:
    """The top-level `key` of the YAML file at `path`, which must be a `kind` (dict or list); ConfigError
    naming the file otherwise: it cannot be read (`what` says which file this is), or `expected` text."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    section = data.get(key) if isinstance(data, dict) else None
    if not isinstance(section, kind):
        raise ConfigError(f"{path}: expected `{key}:`, {'a mapping' if kind is dict else 'a list'} ({what})")
    return section
