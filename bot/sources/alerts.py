"""Monitoring alert notifications (Alertmanager, Grafana) → one canonical event per alert.

Both speak the Alertmanager shape: a grouped notification `{receiver, groupKey, truncatedAlerts,
alerts: [{status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint}]}`. Each alert
becomes `alert.firing` or `alert.resolved` (its own `status`, not the group's) with
`data: {fingerprint, alertname, status, labels, annotations, summary, starts_at, ends_at,
generator_url, receiver, group_key, truncated_alerts}` plus what a source adds. `campaign` stays unset:
the labels (`campaign`, `sender_email`, `sender_domain`, `vendor`) say which campaigns an alert
concerns, and the rules resolve them (`scope: labels`).

Identity: `<source>:alert.<status>:<fingerprint>|<startsAt in UTC>`, so a repeated notification, a
retry and an HA pair's duplicate are one event, while the same alert firing again later (new
`startsAt`) is a new one. An alert without a fingerprint gets one derived from its labels (as
Alertmanager derives its own): `data.fingerprint_derived` is then true.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import JsonValue

from bot.errors import PayloadError
from bot.events import Event
from bot.sources.payload import Fields, compact, keyed_id, make_event, parse_timestamp, require_object

__all__ = ["STATUSES", "Extras", "normalize_notification"]

#: Per-alert status → canonical event type.
STATUSES: Final = {"firing": "alert.firing", "resolved": "alert.resolved"}
#: What a source adds to the events' data, read from the notification or from one alert (None: left out).
Extras = Callable[[Fields], dict[str, JsonValue | None]]

_FINGERPRINT: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SUMMARY_KEYS: Final = ("summary", "description", "message", "title")


def normalize_notification(
    source: str, payload: Any, received_at: datetime, *, version: str,
    group: Extras | None = None, alert: Extras | None = None,
) -> list[Event]:
    """One webhook body (parsed JSON) → one event per alert, in order.

    `version` is the payload version this source sends; another one is refused (a missing one is
    accepted). `group` adds data from the notification, `alert` from each alert.
    """
    body = require_object(payload)
    given = body.get("version")
    if given is not None and str(given) != version:
        raise PayloadError(f"field version: unsupported {source} webhook version {str(given)[:20]!r}; "
                           f"expected {version!r}")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("field alerts: expected a JSON array of alerts")
    if not alerts:
        raise PayloadError("field alerts: expected at least one alert")
    fields = Fields(body)
    truncated = body.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("field truncatedAlerts: expected a non-negative integer")
    common: dict[str, JsonValue] = {
        "receiver": fields.text("receiver"), "group_key": fields.text("groupKey"), "truncated_alerts": truncated,
        **compact(group(fields) if group else {}),
    }
    return [_event(source, f"alerts[{n}]", raw, common, received_at, alert) for n, raw in enumerate(alerts)]


def _event(source: str, where: str, raw: Any, common: Mapping[str, JsonValue], received_at: datetime,
           extras: Extras | None) -> Event:
    if not isinstance(raw, dict):
        raise PayloadError(f"field {where}: expected a JSON object")
    status = raw.get("status")
    if not isinstance(status, str) or status not in STATUSES:     # a dict or list here is unhashable
        raise PayloadError(f"field {where}.status: expected firing or resolved, got {str(status)[:40]!r}")
    labels = _strings(raw.get("labels"), f"{where}.labels")
    if not labels:
        raise PayloadError(f"field {where}.labels: an alert needs at least one label")
    annotations = _strings(raw.get("annotations", {}), f"{where}.annotations")
    starts_at = _time(raw.get("startsAt"))
    if starts_at is None:
        raise PayloadError(f"field {where}.startsAt: expected an RFC 3339 timestamp")
    ends_at = _time(raw.get("endsAt"))
    if ends_at is None and raw.get("endsAt") not in (None, "") and not _zero(raw.get("endsAt")):
        raise PayloadError(f"field {where}.endsAt: expected an RFC 3339 timestamp")
    fingerprint, derived = _fingerprint(raw.get("fingerprint"), labels, where)
    alert = Fields(raw)
    data: dict[str, JsonValue] = {
        "fingerprint": fingerprint,
        "alertname": labels.get("alertname", ""),
        "status": status,
        "labels": dict(labels),
        "annotations": dict(annotations),
        "summary": next((annotations[k] for k in _SUMMARY_KEYS if annotations.get(k)), ""),
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat() if ends_at else None,
        "generator_url": alert.text("generatorURL"),
        **common,
        **compact({"fingerprint_derived": True if derived else None, **(extras(alert) if extras else {})}),
    }
    event_type = STATUSES[status]
    occurred_at = starts_at if status == "firing" else ends_at or received_at
    return make_event(event_id=keyed_id(source, event_type, fingerprint, starts_at.isoformat()),
                      event_type=event_type, source=source, occurred_at=occurred_at, campaign=None, data=data)


def _strings(value: Any, where: str) -> dict[str, str]:
    """A `{name: text}` object (labels, annotations); anything else is refused, naming the field."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"field {where}: expected a JSON object of strings")
    for key, text in value.items():
        if not isinstance(text, str):
            raise PayloadError(f"field {where}.{str(key)[:60]}: expected a string")
    return value


def _zero(value: Any) -> bool:
    """Go's zero time (`0001-01-01T00:00:00Z`): Alertmanager's `endsAt` while an alert fires."""
    return isinstance(value, str) and value.startswith("0001-01-01")


def _time(value: Any) -> datetime | None:
    if _zero(value) or isinstance(value, int | float):     # epoch numbers are not RFC 3339
        return None
    return parse_timestamp(value)


def _fingerprint(value: Any, labels: Mapping[str, str], where: str) -> tuple[str, bool]:
    if value is None or value == "":
        text = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16], True
    if not isinstance(value, str) or not _FINGERPRINT.match(value):
        raise PayloadError(f"field {where}.fingerprint: expected up to 64 letters, digits or -_.:")
    return value, False
