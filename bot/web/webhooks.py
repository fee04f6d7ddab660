"""Vendor and canonical webhooks: authenticate, normalize, publish every event, then answer 202.

`POST /webhooks/{<vendor>|events}`, one path per registered vendor (bot.vendors.registry), and
`POST /webhooks/<vendor>/<account>` per named account (bot.accounts). The order is fixed: size limit (413) →
authentication (401) → normalization (400) → publish each event with confirmation (503 +
`Retry-After` when the broker does not confirm) → 202 `{"accepted": n, "ids": [...]}`. A sender is
told "accepted" only once every event is in the broker; when a publish fails midway the sender
retries and the stable event ids dedupe what already went through.

`/webhooks/events` items without an `id` are identified by the request's `Idempotency-Key` header (a
retry with the same key is a duplicate), else by a fresh request id: every such POST is then a distinct
event (bot.sources.canonical).

Other intakes (`/webhooks/alertmanager`, `/webhooks/grafana`, `/slack/...`) get a module each: the
`{source}` pattern here matches only the sources in `bot.sources.webhook_sources()` when the app is made.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import structlog
from aiohttp import web

from bot.errors import BrokerUnavailable, PayloadError
from bot.events import ACCOUNT_NAME, DEFAULT_ACCOUNT, Event
from bot.metrics import WEBHOOK_SECONDS, WEBHOOKS
from bot.sources import normalize, webhook_sources
from bot.vendors import registry
from bot.web.auth import AuthResult, authenticate
from bot.web.keys import ACCOUNTS, BROKER, CLOCK, PUBLISH_TIMEOUT, SETTINGS, VENDOR_CONFIGS

__all__ = ["IDEMPOTENCY_HEADER", "RETRY_AFTER_SECONDS", "Check", "Extras", "accept", "add_routes"]

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS: Final = 5
#: Identifies a `/webhooks/events` request whose events carry no `id`: a retry with the same key dedupes.
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
#: authenticate a request body at a time: (body, now) → verdict
Check = Callable[[bytes, datetime], AuthResult]
#: fields to add to a 202 answer, from the events about to be published
Extras = Callable[[list[Event]], dict[str, Any]]


def add_routes(app: web.Application) -> None:
    """`POST /webhooks/{source}` for the sources known now (the registry's vendors and `events`), and
    `POST /webhooks/{vendor}/{account}` for each vendor's named accounts."""
    pattern = "|".join(sorted(webhook_sources()))
    app.router.add_post(f"/webhooks/{{source:(?:{pattern})}}", receive_webhook)
    vendors = "|".join(sorted(registry.names()))
    app.router.add_post(f"/webhooks/{{source:(?:{vendors})}}/{{account:{ACCOUNT_NAME.pattern}}}",
                        receive_account_webhook)


async def receive_account_webhook(request: web.Request) -> web.Response:
    """A webhook of one account of a vendor: authenticated with that account's settings block, and its
    events' campaigns are that account's (`smartlead@acme:123`)."""
    source, name = request.match_info["source"], request.match_info["account"]
    account = request.app[ACCOUNTS].get(f"{source}@{name}" if name != DEFAULT_ACCOUNT else source)
    if account is None:
        return _refuse(source, 404, f"no {source} account is named {name!r}")

    def check(body: bytes, _: datetime) -> AuthResult:
        return authenticate(source, headers=request.headers, query=request.query, body=body,
                            settings=request.app[SETTINGS], account=account)

    return await accept(request, source, check, account=account.name)


async def receive_webhook(request: web.Request) -> web.Response:
    """A vendor's or the user's own webhook."""
    source = request.match_info["source"]

    def check(body: bytes, _: datetime) -> AuthResult:
        return authenticate(source, headers=request.headers, query=request.query, body=body,
                            settings=request.app[SETTINGS], config=request.app[VENDOR_CONFIGS].get(source))

    return await accept(request, source, check)


def _refuse(source: str, status: int, reason: str, **extra: object) -> web.Response:
    log.warning("webhook.rejected", source=source, status=status, reason=reason, **extra)
    return web.json_response({"error": reason}, status=status)


async def accept(request: web.Request, source: str, check: Check, *, extras: Extras | None = None,
                 account: str | None = None) -> web.Response:
    """The intake pipeline every webhook shares, with its answer counted in WEBHOOKS / WEBHOOK_SECONDS.

    `check(body, now)` authenticates; `extras(events)` adds fields to the 202 answer (and its log line);
    `account`: the events are that account's (see `_of_account`).
    """
    started = time.perf_counter()
    status = 500
    try:
        response = await _receive(request, source, check, extras, account)
        status = response.status
        return response
    finally:
        WEBHOOKS.labels(source=source, status=str(status)).inc()
        WEBHOOK_SECONDS.labels(source=source).observe(time.perf_counter() - started)


async def _receive(request: web.Request, source: str, check: Check, extras: Extras | None,
                   account: str | None) -> web.Response:
    limit = request.app[SETTINGS].max_body_bytes
    too_large = f"body larger than {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        return _refuse(source, 413, too_large)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _refuse(source, 413, too_large)
    now = request.app[CLOCK]()
    auth = check(body, now)
    if not auth.ok:
        return _refuse(source, 401, auth.reason)
    try:
        if source == "events":
            events = normalize(source, body, received_at=now, idempotency_key=_idempotency_key(request),
                               request_id=uuid.uuid4().hex)
        else:
            events = normalize(source, body, received_at=now)
    except PayloadError as exc:
        return _refuse(source, 400, str(exc))
    if account is not None and account != DEFAULT_ACCOUNT:
        events = [_of_account(event, account) for event in events]
    ids = [event.id for event in events]
    more = extras(events) if extras is not None else {}
    try:
        published = await _publish_all(request, events)
    except (BrokerUnavailable, TimeoutError) as exc:
        reason = "broker did not confirm in time" if isinstance(exc, TimeoutError) else "broker unavailable"
        log.warning("webhook.rejected", source=source, status=503, reason=reason, detail=str(exc)[:200],
                    event_ids=ids)
        return web.json_response(
            {"error": f"{reason}; retry later"}, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    log.debug("webhook.accepted", source=source, auth=auth.method, count=published, event_ids=ids,
              event_types=sorted({event.type for event in events}), **more)
    return web.json_response({"accepted": published, "ids": ids, **more}, status=202)


def _of_account(event: Event, account: str) -> Event:
    """The event as one of `account`'s: its campaign is the account's, and its id is too (the same body sent
    to two accounts' paths is two events)."""
    campaign = event.campaign.of_account(account) if event.campaign is not None else None
    return event.model_copy(update={"campaign": campaign, "id": f"{event.id[:150]}@{account}"})


def _idempotency_key(request: web.Request) -> str | None:
    """The `Idempotency-Key` header, stripped; None when absent; PayloadError (400) when given empty."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not value.strip():
        raise PayloadError(f"header {IDEMPOTENCY_HEADER}: expected a non-empty key (or leave the header out)")
    return value.strip()


async def _publish_all(request: web.Request, events: list[Event]) -> int:
    """Publish in order; returns once the broker confirmed each one (raises otherwise)."""
    broker = request.app[BROKER]
    async with asyncio.timeout(request.app[PUBLISH_TIMEOUT]):
        for event in events:
            await broker.publish(
                event.model_dump_json().encode(), message_id=event.id, routing_key=event.routing_key
            )
    return len(events)
