"""Grafana alerting webhook notifications (contact point type webhook, payload version 1) → one event per alert.

Grafana's body is Alertmanager's shape plus `orgId`, `state`, `title`, `message`, and per alert
`values`, `valueString`, `dashboardURL`, `panelURL`, `silenceURL`. Splitting is bot.sources.alerts';
this module adds `data.org_id`, `data.values` (query results by ref id, numbers only),
`data.value_string`, `data.dashboard_url` and `data.panel_url`. Grafana's own alerts about a broken
query (`alertname` DatasourceNoData / DatasourceError) arrive like any other; the shipped rules leave
them out. The legacy (pre-unified alerting) body has no `alerts` and is refused with a 400.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

from pydantic import JsonValue

from bot.errors import PayloadError
from bot.events import Event
from bot.sources.alerts import normalize_notification
from bot.sources.payload import Fields

__all__ = ["VERSION", "normalize"]

SOURCE: Final = "grafana"
VERSION: Final = "1"


def _group(fields: Fields) -> dict[str, JsonValue | None]:
    return {"org_id": fields.integer("orgId")}


def _alert(fields: Fields) -> dict[str, JsonValue | None]:
    raw = fields.get("values")
    values: dict[str, JsonValue] | None = None
    if isinstance(raw, dict):
        values = {str(k): v for k, v in raw.items() if isinstance(v, int | float) and not isinstance(v, bool)
                  and math.isfinite(v)} or None
    return {"values": values, "value_string": fields.text("valueString"),
            "dashboard_url": fields.text("dashboardURL"), "panel_url": fields.text("panelURL")}


def normalize(payload: Any, received_at: datetime) -> list[Event]:
    """One Grafana webhook body (parsed JSON) → `alert.firing` / `alert.resolved` events."""
    if isinstance(payload, dict) and "alerts" not in payload and "evalMatches" in payload:
        raise PayloadError("legacy Grafana alerting payload (evalMatches): use a unified alerting webhook contact point")
    return normalize_notification(SOURCE, payload, received_at, version=VERSION, group=_group, alert=_alert)
