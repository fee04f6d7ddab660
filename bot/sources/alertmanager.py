"""Prometheus Alertmanager webhook notifications (payload version 4) → one event per alert.

The notification `{version: "4", groupKey, truncatedAlerts, status, receiver, groupLabels,
commonLabels, commonAnnotations, externalURL, alerts: [...]}` is split by bot.sources.alerts; this
module adds `data.external_url` (the Alertmanager that sent it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import JsonValue

from bot.events import Event
from bot.sources.alerts import normalize_notification
from bot.sources.payload import Fields

__all__ = ["VERSION", "normalize"]

SOURCE: Final = "alertmanager"
VERSION: Final = "4"


def _group(fields: Fields) -> dict[str, JsonValue | None]:
    return {"external_url": fields.text("externalURL")}


def normalize(payload: Any, received_at: datetime) -> list[Event]:
    """One Alertmanager webhook body (parsed JSON) → `alert.firing` / `alert.resolved` events."""
    return normalize_notification(SOURCE, payload, received_at, version=VERSION, group=_group)
