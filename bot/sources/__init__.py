"""Raw webhook bodies → canonical Events: one pure normalizer per source, dispatched by name.

Vendors' normalizers live in their packages (`bot.vendors.<name>.webhooks`) and are found through the
registry; the others (`events`, `alertmanager`, `grafana`) are here.

Pure: no I/O, no clock (`received_at` is passed in), no logging. Anything unusable raises
`bot.errors.PayloadError` whose message is safe to return to the sender as the 400 reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from bot.errors import PayloadError
from bot.events import Event
from bot.sources import alertmanager, canonical, grafana

__all__ = ["ALERT_SOURCES", "OWN_NORMALIZERS", "Normalizer", "normalize", "normalizer", "parse_json",
           "webhook_sources"]

#: A source's normalizer: parsed JSON body and the time it arrived → events.
Normalizer = Callable[[Any, datetime], list[Event]]

#: The sources that are not vendors.
OWN_NORMALIZERS: Final[Mapping[str, Normalizer]] = MappingProxyType({
    "events": canonical.normalize,
    "alertmanager": alertmanager.normalize,
    "grafana": grafana.normalize,
})
#: Monitoring sources: their own intake (bot.web.alerts: bearer token or Grafana's signature).
ALERT_SOURCES: Final = frozenset({"alertmanager", "grafana"})


def normalizer(source: str) -> Normalizer | None:
    """The normalizer of `source`: a registered vendor's (its package's `webhooks`), or one of ours."""
    from bot.vendors.registry import get  # here: the vendors' normalizers import this package

    spec = get(source)
    return spec.normalize if spec is not None else OWN_NORMALIZERS.get(source)


def webhook_sources() -> frozenset[str]:
    """Sources the generic web intake (bot.web.webhooks) accepts at `/webhooks/<source>`: every
    registered vendor and `events`."""
    from bot.vendors.registry import names  # here: see normalizer()

    return (names() | frozenset(OWN_NORMALIZERS)) - ALERT_SOURCES


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_LONE_SURROGATE: Final = "body is not valid JSON: a string holds a lone surrogate (\\ud800-\\udfff)"


def _has_lone_surrogate(payload: Any) -> bool:
    """True when a string (or key) holds a lone surrogate. Only a `\\ud800`-style escape can put one
    there, and no event holding one can be serialized (pydantic refuses: a 500 at publish).
    Iterative: any depth."""
    stack = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and any("\ud800" <= char <= "\udfff" for char in node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def parse_json(body: bytes) -> Any:
    """Decode a JSON body (UTF-8/16/32); PayloadError("body is not valid JSON: ...") otherwise."""
    if not body.strip():
        raise PayloadError("body is empty; expected JSON")
    try:
        # what json.loads(body, parse_constant=...) does, without building a decoder per call
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        if not text.isascii() and _SURROGATE.search(text):      # raw (not \u-escaped) surrogate bytes
            raise PayloadError(_LONE_SURROGATE)
        payload = _DECODER.decode(text)
    except RecursionError:
        raise PayloadError("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PayloadError(f"body is not valid JSON: {str(exc)[:200]}") from None
    if b"\\" in body and _has_lone_surrogate(payload):   # no backslash, no escape, no surrogate
        raise PayloadError(_LONE_SURROGATE)
    return payload


def normalize(source: str, body: bytes, *, received_at: datetime, idempotency_key: str | None = None,
              request_id: str | None = None) -> list[Event]:
    """Turn one raw webhook body from `source` into canonical events (usually one).

    `idempotency_key` and `request_id` identify `events` items that carry no `id` (bot.sources.canonical);
    other sources ignore them (their payloads identify themselves).

    Raises:
        PayloadError: unknown source, invalid JSON, wrong shape, or an invalid field (named).
    """
    found = normalizer(source)
    if found is None:
        known = sorted(webhook_sources() | ALERT_SOURCES)
        raise PayloadError(f"unknown source {source[:40]!r}; expected one of {known}")
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if source == "events":
        return canonical.normalize(parse_json(body), received_at, idempotency_key=idempotency_key,
                                   request_id=request_id)
    return found(parse_json(body), received_at)
