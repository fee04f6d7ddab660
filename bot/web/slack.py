"""Slack's HTTP edge: `POST /slack/commands` and `POST /slack/interactions`.

Order, as for every intake: size limit → signature (slack_sdk's SignatureVerifier: `v0=` HMAC-SHA256
of `v0:{timestamp}:{body}`, 5-minute window, the app's clock injected; no BOT_SLACK_SIGNING_SECRET →
401, fail closed) → parse (bad syntax and `help` are answered here, 200 ephemeral, nothing published)
→ publish one canonical Event with confirmation → acknowledge within Slack's 3 seconds. The worker
does the rest and answers through `response_url`. Nothing here reads state or calls a vendor.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final
from urllib.parse import parse_qsl

import structlog
from aiohttp import web
from slack_sdk.signature import Clock, SignatureVerifier

from bot.errors import BrokerUnavailable, PayloadError
from bot.events import Event
from bot.metrics import WEBHOOKS
from bot.slack.commands import UsageError, click_event, command_event, help_text, parse_command
from bot.sources import parse_json
from bot.web.keys import BROKER, CLOCK, PUBLISH_TIMEOUT, SETTINGS
from bot.web.keys import Clock as AppClock

__all__ = ["routes", "slack_signature_ok"]

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

_SOURCE: Final = "slack"


class _AppClock(Clock):
    """slack_sdk's Clock over the app's injected clock (tests move time by hand)."""

    def __init__(self, clock: AppClock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock().timestamp()


def slack_signature_ok(body: bytes, headers: Any, *, secret: str, clock: AppClock) -> bool:
    """True when Slack signed `body` with `secret` less than 5 minutes ago (by `clock`)."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    # SignatureVerifier raises (a 500) on what Slack never sends: a non-ASCII or over-long timestamp
    # (int() of "²" or of 5000 digits), a non-ASCII signature (compare_digest), a non-UTF-8 body
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 20) or not signature.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return SignatureVerifier(secret, clock=_AppClock(clock)).is_valid(body, timestamp, signature)


def _ephemeral(text: str) -> web.Response:
    return web.json_response({"response_type": "ephemeral", "text": text})


async def _verified_body(request: web.Request, endpoint: str) -> bytes:
    """The raw body, once size and signature are checked; raises 413/401 otherwise."""
    settings = request.app[SETTINGS]
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise _refused(endpoint, 413, f"body larger than {settings.max_body_bytes} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _refused(endpoint, 413, f"body larger than {settings.max_body_bytes} bytes") from None
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    if not secret:
        raise _refused(endpoint, 401, "no secret configured for slack (BOT_SLACK_SIGNING_SECRET)")
    if not slack_signature_ok(body, request.headers, secret=secret, clock=request.app[CLOCK]):
        raise _refused(endpoint, 401, "invalid or stale Slack signature (X-Slack-Signature, not signed with "
                                      "BOT_SLACK_SIGNING_SECRET in the last 5 minutes)")
    return body


def _refused(endpoint: str, status: int, reason: str) -> web.HTTPException:
    log.warning("slack.rejected", endpoint=endpoint, status=status, reason=reason)
    WEBHOOKS.labels(source=_SOURCE, status=str(status)).inc()
    if status == 413:
        return web.HTTPRequestEntityTooLarge(max_size=0, actual_size=0, reason=reason)
    return web.HTTPUnauthorized(reason=reason)


async def _publish(request: web.Request, event: Event) -> None:
    async with asyncio.timeout(request.app[PUBLISH_TIMEOUT]):
        await request.app[BROKER].publish(event.model_dump_json().encode(), message_id=event.id,
                                          routing_key=event.routing_key)


@routes.post("/slack/commands")
async def slash_command(request: web.Request) -> web.Response:
    """Verify, parse, publish `command.<verb>`, acknowledge (ephemeral)."""
    body = await _verified_body(request, "commands")
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    name = form.get("command") or "/guard"
    if form.get("ssl_check"):
        return web.Response(status=200)
    try:
        command = parse_command(form.get("text", ""))
    except UsageError as exc:
        WEBHOOKS.labels(source=_SOURCE, status="200").inc()
        return _ephemeral(f":warning: {exc}\n\n{help_text(name)}")
    if command.verb == "help":
        return _ephemeral(help_text(name))
    event = command_event(command, form, body=body, now=request.app[CLOCK]())
    try:
        await _publish(request, event)
    except (BrokerUnavailable, TimeoutError) as exc:
        log.warning("slack.not_queued", command=command.verb, error=str(exc)[:200], event_id=event.id)
        # Slack does not retry slash commands: a 200 with the reason is the only way to tell the person
        return _ephemeral(":warning: campaign-guard could not queue the command (its message broker is not "
                          "answering). Nothing was done; try again in a minute.")
    WEBHOOKS.labels(source=_SOURCE, status="200").inc()
    campaigns = ", ".join(f"`{ref}`" for ref in command.campaigns)
    log.info("slack.accepted", command=command.verb, event_id=event.id, user_id=form.get("user_id"),
             campaigns=[str(ref) for ref in command.campaigns])
    return _ephemeral(f":hourglass_flowing_sand: `{command.verb}` {campaigns} received; the answer follows here.")


@routes.post("/slack/interactions")
async def interaction(request: web.Request) -> web.Response:
    """Verify, parse the `payload` field, publish `interaction.clicked`, answer 200 (empty)."""
    body = await _verified_body(request, "interactions")
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        payload = parse_json(form.get("payload", "").encode())     # no NaN, no lone surrogates, depth-safe
        event = click_event(payload, body=body, now=request.app[CLOCK]()) if isinstance(payload, dict) else None
    except (ValueError, PayloadError) as exc:
        log.warning("slack.rejected", endpoint="interactions", status=400, reason=str(exc)[:200])
        return web.json_response({"error": f"invalid interaction payload: {str(exc)[:200]}"}, status=400)
    if event is None:
        return web.Response(status=200)          # not one of our buttons: acknowledged, ignored
    try:
        await _publish(request, event)
    except (BrokerUnavailable, TimeoutError) as exc:
        log.warning("slack.not_queued", action=event.data.get("action"), error=str(exc)[:200], event_id=event.id)
        # a non-200 makes Slack show the person that the click did not go through
        return web.json_response({"error": "broker unavailable; retry later"}, status=503,
                                 headers={"Retry-After": "5"})
    WEBHOOKS.labels(source=_SOURCE, status="200").inc()
    log.info("slack.accepted", action=event.data.get("action"), event_id=event.id,
             user_id=event.data.get("user_id"), campaign=event.data.get("campaign"))
    return web.Response(status=200)
