"""Canonical events posted by the user's own systems (`/webhooks/events`) → validated Events.

The body is one Event object, a list of them, or `{"events": [...]}`. Each item is validated by the
Event model with `source` forced to `"events"` (any other value is refused: this endpoint cannot
speak for a vendor) and `type` one of EVENT_TYPES. `occurred_at` is stored in UTC.

Identity (what makes a retry a duplicate, the worker dedupes by event id):
- the item's `id`: `events:id:<id>` (namespaced, so it can never collide with a vendor's event id);
- else the request's `Idempotency-Key` header: `events:key:<key>` for a single event, `events:key:<key>#<n>`
  for item n of a list (a retry of the same request with the same key is a duplicate);
- else nothing identifies it: every accepted POST is a distinct event, `events:post:<request id>` (`#<n>`
  for lists) with a fresh request id from the caller. Two identical complaints in one second are two
  events; a sender that retries must send an `id` or an `Idempotency-Key` to make its retries idempotent.
`occurred_at` defaults to the time the request arrived.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from bot.errors import PayloadError
from bot.events import EVENT_TYPES, Event
from bot.sources.payload import scoped_id, validation_reason, vendor_id

__all__ = ["MAX_EVENTS", "normalize"]

SOURCE: Final = "events"
MAX_EVENTS: Final = 1000
_PLACEHOLDER_ID: Final = "pending"


def normalize(payload: Any, received_at: datetime, *, idempotency_key: str | None = None,
              request_id: str | None = None) -> list[Event]:
    """One body (parsed JSON) → one event per item, in order. `idempotency_key` (the request's header) or
    else `request_id` (fresh per request, from the caller: this module reads no clock and no randomness)
    identifies the items without an `id`; a ValueError when such an item has neither."""
    items = _items(payload)
    many = len(items) > 1 or not isinstance(payload, dict) or "events" in payload
    if idempotency_key is not None:
        prefix, key = f"{SOURCE}:key:", idempotency_key
    elif request_id is not None:
        prefix, key = f"{SOURCE}:post:", request_id
    else:
        prefix, key = "", ""
    events = []
    for index, item in enumerate(items):
        fallback = scoped_id(prefix, f"{key}#{index}" if many else key) if prefix else None
        events.append(_event(item, f"events[{index}]." if many else "", received_at, fallback))
    return events


def _items(payload: Any) -> list[Any]:
    if isinstance(payload, dict) and "events" in payload:
        if set(payload) != {"events"}:
            raise PayloadError("expected {\"events\": [...]} with no other fields, or one event object")
        payload = payload["events"]
        if not isinstance(payload, list):
            raise PayloadError("field events: expected a JSON array of event objects")
    if isinstance(payload, dict):
        return [payload]
    if not isinstance(payload, list):
        raise PayloadError("expected a JSON object (an event), a list of them, or {\"events\": [...]}")
    if not payload:
        raise PayloadError("expected at least one event")
    if len(payload) > MAX_EVENTS:
        raise PayloadError(f"too many events in one request: {len(payload)} > {MAX_EVENTS}")
    return payload


def _event(item: Any, where: str, received_at: datetime, fallback_id: str | None) -> Event:
    if not isinstance(item, dict):
        raise PayloadError(f"{where}expected a JSON object" if where else "expected a JSON object")
    fields = dict(item)
    source = fields.get("source", SOURCE)
    if source != SOURCE:
        raise PayloadError(f"field {where}source: must be \"events\" on this endpoint, got {str(source)[:40]!r}")
    fields["source"] = SOURCE
    event_type = fields.get("type")
    if isinstance(event_type, str) and event_type not in EVENT_TYPES:
        raise PayloadError(f"field {where}type: unknown event type {event_type[:100]!r}; "
                           f"known: {', '.join(sorted(EVENT_TYPES))}")
    given_id = fields.pop("id", None)
    if given_id is not None and (isinstance(given_id, bool) or not isinstance(given_id, str | int)
                                 or not str(given_id).strip()):
        raise PayloadError(f"field {where}id: expected a non-empty string")
    if fields.get("occurred_at") is None:
        fields["occurred_at"] = received_at
    try:
        event = Event.model_validate({**fields, "id": _PLACEHOLDER_ID})
    except ValidationError as exc:
        raise PayloadError(validation_reason(exc, prefix=where)) from None
    event = event.model_copy(update={"occurred_at": event.occurred_at.astimezone(UTC)})
    if given_id is not None:
        event_id = vendor_id(SOURCE, str(given_id).strip())
    elif fallback_id is not None:
        event_id = fallback_id
    else:
        raise ValueError("canonical events without an id need the request's idempotency key or a request id")
    return event.model_copy(update={"id": event_id})
