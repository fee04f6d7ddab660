"""Leadterra webhooks: their signature, and the `{event, timestamp, data}` envelope → canonical events
(docs/vendors.md §2.6).

Authentication: `X-Leadterra-Signature: <hex HMAC-SHA256(raw body, BOT_LEADTERRA_WEBHOOK_SECRET)>` (an
optional `sha256=` prefix is tolerated). Required; refused when the secret is not configured.

Leadterra documents `campaign.started`, `message.sent`, `message.bounced` (`data.bounceType`
hard|soft, `data.bounceReason`) and `reply.received`; it has no `campaign.paused` event. Field names
inside `data` beyond `campaignId`, `messageId`, `reply.id`, `bounceType` and `bounceReason` are not
documented, so the common camelCase spellings are read and anything else is ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from bot.errors import PayloadError
from bot.events import Event
from bot.sources.auth import AuthResult, WebhookRequest, signature_ok
from bot.sources.payload import (
    Fields,
    compact,
    derived_id,
    find_campaign,
    keyed_id,
    make_event,
    require_object,
)

if TYPE_CHECKING:
    from bot.vendors.spec import VendorConfig

__all__ = ["SIGNATURE_HEADER", "TYPES", "authenticate", "normalize"]

SOURCE: Final = "leadterra"
SIGNATURE_HEADER: Final = "X-Leadterra-Signature"
_SECRET: Final = "BOT_LEADTERRA_WEBHOOK_SECRET"

#: Leadterra `event` → canonical type. `campaign.paused` is not documented; mapped in case it appears.
TYPES: Final[dict[str, str]] = {
    "campaign.started": "campaign.started",
    "campaign.paused": "campaign.paused",
    "message.sent": "email.sent",
    "message.bounced": "email.bounced",
    "reply.received": "email.replied",
}
_CAMPAIGN_PATHS: Final = ("campaignId", "campaign_id", "campaign.id")


def normalize(payload: Any, received_at: datetime) -> list[Event]:
    """One Leadterra webhook body (parsed JSON) → one event."""
    body = require_object(payload)
    fields = Fields(body)
    vendor_type = fields.required("event", "e.g. message.bounced")
    inner = fields.sub("data")
    if not isinstance(body.get("data"), dict):
        raise PayloadError("field data: expected a JSON object")
    event_type = TYPES.get(vendor_type.lower(), "vendor.other")
    occurred = fields.first_time("timestamp") or inner.first_time(
        "reply.receivedAt", "bouncedAt", "sentAt", "startedAt", "occurredAt", "createdAt"
    )
    return [
        make_event(
            event_id=_event_id(body, inner, event_type),
            event_type=event_type,
            source=SOURCE,
            occurred_at=occurred or received_at,
            campaign=find_campaign(inner, SOURCE, event_type, _CAMPAIGN_PATHS, prefix="data."),
            data=_data(inner, vendor_type),
        )
    ]


def _event_id(body: dict[str, Any], inner: Fields, event_type: str) -> str:
    """`data.reply.id` for replies, `data.messageId` for message events (docs/vendors.md §2.6), else a hash."""
    if event_type == "email.replied" and (reply_id := inner.first_text("reply.id", "replyId")):
        return keyed_id(SOURCE, event_type, reply_id)
    if event_type in ("email.sent", "email.bounced") and (message := inner.first_text("messageId", "message.id")):
        return keyed_id(SOURCE, event_type, message)
    return derived_id(SOURCE, body)


def _bounce_type(inner: Fields) -> str | None:
    raw = inner.first_text("bounceType", "bounce.type")
    if raw is None:
        return None
    lowered = raw.lower()
    return lowered if lowered in ("hard", "soft") else None


def _data(inner: Fields, vendor_type: str) -> dict[str, Any]:
    return compact({
        "vendor_type": vendor_type,
        "campaign_status": inner.first_text("status", "campaign.status"),
        "message_id": inner.first_text("messageId", "message.id"),
        "lead_id": inner.first_text("leadId", "lead.id"),
        "to_email": inner.first_text("to", "email", "leadEmail", "lead.email", "recipient"),
        "from_email": inner.first_text("from", "senderEmail", "sender.email"),
        "sender_account": inner.first_text("senderAccountId", "sender.id"),
        "sequence_number": inner.first_integer("step", "stepNumber", "sequenceStep"),
        "bounce_type": _bounce_type(inner),
        "bounce_reason": inner.first_text("bounceReason", "bounce.reason"),
        "reply_id": inner.first_text("reply.id", "replyId"),
        "reply_from": inner.first_text("reply.from"),
    })


def authenticate(request: WebhookRequest, config: VendorConfig) -> AuthResult:
    """The body's HMAC signature, required (BOT_WEBHOOK_TOKEN is not accepted)."""
    secret = config.secret("webhook_secret")
    if secret is None:
        return AuthResult.refused(f"no secret configured for leadterra (set {_SECRET})")
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return AuthResult.refused(f"missing {SIGNATURE_HEADER} (signed with {_SECRET})")
    if signature_ok(signature, request.body, secret):
        return AuthResult.passed("signature")
    return AuthResult.refused(f"invalid {SIGNATURE_HEADER} (not signed with {_SECRET})")
