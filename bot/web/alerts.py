"""Monitoring alert intake: `POST /webhooks/alertmanager` and `POST /webhooks/grafana`.

The order is the webhooks' (bot.web.webhooks): size limit (413) → authentication (401,
bot.web.alert_auth) → one canonical event per alert (400 naming the field, bot.sources.alerts) →
publish each with confirmation (503 + `Retry-After` when the broker does not confirm: Alertmanager
and Grafana retry) → 202 `{"accepted": n, "ids": [...], "truncated_alerts": k}`. Alerts the sender
left out of a notification (`truncatedAlerts`, Alertmanager's `max_alerts`) are reported in the
answer, in a warning log line and on every event's `data.truncated_alerts`: the bot cannot act on them.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import structlog
from aiohttp import web

from bot.events import Event
from bot.web.alert_auth import authenticate_alert
from bot.web.auth import AuthResult
from bot.web.keys import SETTINGS
from bot.web.webhooks import accept

__all__ = ["routes"]

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

@routes.post("/webhooks/alertmanager")
async def receive_alertmanager(request: web.Request) -> web.Response:
    """Alertmanager `webhook_configs` receiver (payload version 4)."""
    return await _accept_alerts(request, "alertmanager")


@routes.post("/webhooks/grafana")
async def receive_grafana(request: web.Request) -> web.Response:
    """Grafana webhook contact point (unified alerting)."""
    return await _accept_alerts(request, "grafana")


async def _accept_alerts(request: web.Request, source: str) -> web.Response:
    def check(body: bytes, now: datetime) -> AuthResult:
        return authenticate_alert(source, headers=request.headers, query=request.query, body=body,
                                  settings=request.app[SETTINGS], now=now)

    return await accept(request, source, check, extras=partial(_truncated, source))


def _truncated(source: str, events: list[Event]) -> dict[str, Any]:
    """Report the alerts the sender left out (`truncatedAlerts`): the bot cannot act on them."""
    truncated = events[0].data.get("truncated_alerts", 0) if events else 0
    if truncated:
        log.warning("alerts.truncated", source=source, truncated_alerts=truncated, accepted=len(events),
                    group_key=events[0].data.get("group_key"), receiver=events[0].data.get("receiver"),
                    hint="the sender left these alerts out of the notification (max_alerts): not acted on")
    return {"truncated_alerts": truncated}
