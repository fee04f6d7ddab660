"""Monitoring alert intake: `POST /webhooks/alertmanager` and `POST /webhooks/grafana`.

The order is the webhooks' (bot.web.webhooks): size limit (413) → authentication (401,
bot.web.alert_auth) → one canonical event per alert (400 naming the field, bot.sources.alerts) →
publish each with confirmation (503 + `Retry-After` when the broker does not confirm: Alertmanager
and Grafana retry) → 202 `{"accepted": n, "ids": [...], "truncated_alerts": k}`. Alerts the sender
left out of a notification (`truncatedAlerts`, Alertmanager's `max_alerts`) are reported in the
answer, in a warning log line and on every event's `data.truncated_alerts`: the bot cannot act on them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import structlog
from aiohttp import web

from bot.errors import BrokerUnavailable, PayloadError
from bot.events import Event
from bot.metrics import WEBHOOK_SECONDS, WEBHOOKS
from bot.sources import normalize
from bot.web.alert_auth import authenticate_alert
from bot.web.keys import BROKER, CLOCK, PUBLISH_TIMEOUT, SETTINGS
from bot.web.webhooks import RETRY_AFTER_SECONDS

__all__ = ["routes"]

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

_SOURCES: Final = ("alertmanager", "grafana")


async def _measured(request: web.Request, source: str) -> web.Response:
    started = time.perf_counter()
    status = 500
    try:
        response = await _receive(request, source)
        status = response.status
        return response
    finally:
        WEBHOOKS.labels(source=source, status=str(status)).inc()
        WEBHOOK_SECONDS.labels(source=source).observe(time.perf_counter() - started)


@routes.post("/webhooks/alertmanager")
async def receive_alertmanager(request: web.Request) -> web.Response:
    """Alertmanager `webhook_configs` receiver (payload version 4)."""
    return await _measured(request, "alertmanager")


@routes.post("/webhooks/grafana")
async def receive_grafana(request: web.Request) -> web.Response:
    """Grafana webhook contact point (unified alerting)."""
    return await _measured(request, "grafana")


def _refuse(source: str, status: int, reason: str) -> web.Response:
    log.warning("webhook.rejected", source=source, status=status, reason=reason)
    return web.json_response({"error": reason}, status=status)


async def _receive(request: web.Request, source: str) -> web.Response:
    settings = request.app[SETTINGS]
    too_large = f"body larger than {settings.max_body_bytes} bytes"
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        return _refuse(source, 413, too_large)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _refuse(source, 413, too_large)
    now = request.app[CLOCK]()
    auth = authenticate_alert(source, headers=request.headers, query=request.query, body=body, settings=settings,
                              now=now)
    if not auth.ok:
        return _refuse(source, 401, auth.reason)
    try:
        events = normalize(source, body, received_at=now)
    except PayloadError as exc:
        return _refuse(source, 400, str(exc))
    ids = [event.id for event in events]
    truncated = events[0].data.get("truncated_alerts", 0) if events else 0
    if truncated:
        log.warning("alerts.truncated", source=source, truncated_alerts=truncated, accepted=len(events),
                    group_key=events[0].data.get("group_key"), receiver=events[0].data.get("receiver"),
                    hint="the sender left these alerts out of the notification (max_alerts): not acted on")
    try:
        await _publish_all(request, events)
    except (BrokerUnavailable, TimeoutError) as exc:
        reason = "broker did not confirm in time" if isinstance(exc, TimeoutError) else "broker unavailable"
        log.warning("webhook.rejected", source=source, status=503, reason=reason, detail=str(exc)[:200],
                    event_ids=ids)
        return web.json_response({"error": f"{reason}; retry later"}, status=503,
                                 headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    log.debug("webhook.accepted", source=source, auth=auth.method, count=len(events), event_ids=ids,
             event_types=sorted({event.type for event in events}), truncated_alerts=truncated)
    return web.json_response({"accepted": len(events), "ids": ids, "truncated_alerts": truncated}, status=202)


async def _publish_all(request: web.Request, events: list[Event]) -> None:
    """Publish in order; returns once the broker confirmed each one (raises otherwise)."""
    broker = request.app[BROKER]
    async with asyncio.timeout(request.app[PUBLISH_TIMEOUT]):
        for event in events:
            await broker.publish(event.model_dump_json().encode(), message_id=event.id,
                                 routing_key=event.routing_key)
