"""Reading vendor payloads: typed field access, timestamps, campaign refs and stable event ids.

Not responsible for: knowing any vendor's vocabulary (that is one module per source).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeVar

from pydantic import JsonValue, ValidationError

from bot.errors import PayloadError
from bot.events import CampaignRef, Event

__all__ = [
    "MAX_ID_LENGTH",
    "Fields",
    "body_hash",
    "campaign_ref",
    "compact",
    "derived_id",
    "find_campaign",
    "keyed_id",
    "make_event",
    "parse_timestamp",
    "require_object",
    "scoped_id",
    "validation_reason",
    "vendor_id",
]

_T = TypeVar("_T")
MAX_ID_LENGTH: Final = 200
# Epoch values above these are milliseconds / microseconds (1e11 s is the year 5138).
_MS_THRESHOLD: Final = 1e11
_US_THRESHOLD: Final = 1e14
_NUMERIC: Final = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _bounded(prefix: str, key: str) -> str:
    """`prefix + key`, or `prefix + sha256:<hex of key>` when too long or not printable ASCII.

    ASCII keeps the id within AMQP's 255-byte `message_id` and safe in headers and log lines.
    """
    text = prefix + key
    if len(text) <= MAX_ID_LENGTH and text.isascii() and text.isprintable():
        return text
    return prefix + "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def vendor_id(source: str, event_id: str) -> str:
    """Id from the vendor's own event id: `<source>:id:<event id>`."""
    return _bounded(f"{source}:id:", event_id)


def scoped_id(prefix: str, key: str) -> str:
    """`prefix + key`, bounded like every id (a long or non-ASCII key is hashed): e.g. `events:key:<key>`."""
    return _bounded(prefix, key)


def keyed_id(source: str, event_type: str, *parts: str) -> str:
    """Id from what identifies the fact: `<source>:<canonical type>:<part>|<part>`.

    The canonical type is part of the id, so the sent and the bounced event of one message differ,
    while two vendor names for one fact (Smartlead EMAIL_SENT and FIRST_EMAIL_SENT) dedupe.
    """
    return _bounded(f"{source}:{event_type}:", "|".join(parts))


def body_hash(payload: Any) -> str:
    """sha256 hex of the payload's canonical JSON (sorted keys), immune to key order and whitespace."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def derived_id(source: str, payload: Any) -> str:
    """Last-resort id: `<source>:sha256:<hash of the canonical body>`."""
    return f"{source}:sha256:{body_hash(payload)}"


def parse_timestamp(value: Any) -> datetime | None:
    """A UTC datetime from ISO 8601 (Z, offset or naive = UTC) or epoch s/ms/µs; None when unusable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _NUMERIC.match(text):
            return _from_epoch(float(text))
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:  # RFC 2822, e.g. "Sun, 22 Nov 2026 10:00:00 GMT"
                parsed = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    return None


def _from_epoch(number: float) -> datetime | None:
    if not math.isfinite(number) or number <= 0:
        return None
    if number >= _US_THRESHOLD:
        number /= 1_000_000
    elif number >= _MS_THRESHOLD:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def campaign_ref(vendor: str, value: Any, *, field: str) -> CampaignRef:
    """Validate a vendor campaign id (int or string) into a CampaignRef; PayloadError names the field."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PayloadError(f"field {field}: expected a campaign id, got {type(value).__name__}")
    text = str(value).strip()
    try:
        return CampaignRef(vendor=vendor, id=text)
    except ValidationError:
        raise PayloadError(f"field {field}: invalid {vendor} campaign id {text[:80]!r}") from None


def find_campaign(fields: Fields, source: str, event_type: str, paths: Sequence[str], *, prefix: str = "",
                  optional: Collection[str] = frozenset({"vendor.other"})) -> CampaignRef | None:
    """The campaign at the first of the dotted `paths` that holds a non-empty value (`prefix`: where `fields`
    sit in the body, for the field names of errors); else None for an `optional` event type, and a
    PayloadError naming the first path for any other."""
    for path in paths:
        value = fields.get(*path.split("."))
        if value is not None and value != "":
            return campaign_ref(source, value, field=prefix + path)
    if event_type in optional:
        return None
    raise PayloadError(f"field {prefix}{paths[0]}: missing (required for {event_type})")


@functools.cache
def _split(path: str) -> tuple[str, ...]:
    """A dotted path's keys (paths are literals in the source modules: the cache stays small)."""
    return tuple(path.split("."))


def _text(value: Any) -> str | None:
    """A non-empty string (numbers are written out), else None."""
    if type(value) is str:
        return value.strip() or None
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    return None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        if _NUMERIC.match(text):
            return float(text)
    return None


class Fields:
    """Typed, forgiving reads from one JSON object; absent or mistyped values read as None."""

    def __init__(self, raw: Any) -> None:
        self.raw: Mapping[str, Any] = raw if isinstance(raw, dict) else {}     # parsed JSON: objects are dicts

    def get(self, *path: str) -> Any:
        """The value at a nested key path, or None."""
        node: Any = self.raw
        for key in path:
            if type(node) is not dict:
                return None
            node = node.get(key)
        return node

    def sub(self, *path: str) -> Fields:
        """The nested object at `path` (empty when absent)."""
        return Fields(self.get(*path))

    def text(self, *path: str) -> str | None:
        """A non-empty string (numbers are written out), else None."""
        return _text(self.get(*path))

    def required(self, key: str, expected: str) -> str:
        """`text(key)`, or PayloadError `field <key>: missing (expected <expected>)` (a webhook's type field)."""
        value = self.text(key)
        if value is None:
            raise PayloadError(f"field {key}: missing (expected {expected})")
        return value

    def integer(self, *path: str) -> int | None:
        return _integer(self.get(*path))

    def number(self, *path: str) -> float | int | None:
        """A finite number; percent strings like "4.1%" read as 4.1."""
        return _number(self.get(*path))

    def _first(self, paths: tuple[str, ...], read: Callable[[Any], _T | None]) -> _T | None:
        """The first value among dotted paths that `read` accepts (a flat key is one dict lookup)."""
        raw = self.raw
        for path in paths:
            value = self.get(*_split(path)) if "." in path else raw.get(path)
            if value is not None and (accepted := read(value)) is not None:
                return accepted
        return None

    def first_text(self, *paths: str) -> str | None:
        """The first non-empty string among dotted paths (`"email.message_id"`)."""
        return self._first(paths, _text)

    def first_integer(self, *paths: str) -> int | None:
        """The first integer among dotted paths."""
        return self._first(paths, _integer)

    def first_number(self, *paths: str) -> float | int | None:
        """The first finite number (or percent string) among dotted paths."""
        return self._first(paths, _number)

    def first_time(self, *paths: str) -> datetime | None:
        """The first parseable timestamp among dotted paths."""
        return self._first(paths, parse_timestamp)


def require_object(payload: Any, *, what: str = "a JSON object") -> dict[str, Any]:
    """The payload as a dict, or PayloadError("expected a JSON object")."""
    if not isinstance(payload, dict):
        raise PayloadError(f"expected {what}, got {_json_kind(payload)}")
    return payload


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a JSON number"
    return "null" if value is None else "an object"


def compact(values: Mapping[str, JsonValue | None]) -> dict[str, JsonValue]:
    """`values` without the None entries: data only holds what the payload actually said."""
    return {key: value for key, value in values.items() if value is not None}


def make_event(
    *,
    event_id: str,
    event_type: str,
    source: str,
    occurred_at: datetime,
    campaign: CampaignRef | None,
    data: dict[str, JsonValue],
) -> Event:
    """Build the Event; a validation failure becomes a PayloadError naming the field."""
    try:
        return Event(id=event_id, type=event_type, source=source, occurred_at=occurred_at,
                     campaign=campaign, data=data)
    except ValidationError as exc:
        raise PayloadError(f"invalid event: {validation_reason(exc)}") from None


def validation_reason(exc: ValidationError, *, prefix: str = "") -> str:
    """First pydantic error as `field <loc>: <msg>` (input values are not echoed)."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid"
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"])
    loc = loc if len(loc) <= 200 else loc[:100] + "…" + loc[-99:]    # deep nesting: keep the reason short
    where = f"{prefix}{loc}" if loc else prefix.rstrip(".")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"field {where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"
