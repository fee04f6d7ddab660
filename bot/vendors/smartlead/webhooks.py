"""Smartlead webhooks: their authentication, and their bodies → canonical events (flat formats A/B/legacy
and the dot-style envelope C).

Authentication, in this order, the first credential the request offers *and* we can check decides:
`X-Smartlead-Signature: sha256=<hex HMAC-SHA256(raw body, BOT_SMARTLEAD_WEBHOOK_SECRET)>` (format C);
BOT_WEBHOOK_TOKEN as `Authorization: Bearer <t>` or `?token=<t>`; for legacy payloads with neither, a
body field `secret_key` equal to BOT_SMARTLEAD_WEBHOOK_SECRET. A bad signature is final (never retried
as a token). Fails closed: nothing configured, nothing accepted.

Format A and the legacy help-center payloads are flat and carry `event_type` (`EMAIL_REPLY`, ...);
Format B is flat with `event` (`EMAIL_REPLIED`, ...); Format C is `{id, type, created_at, data, links,
meta}` with dot-style types (`email.account.disconnected`). See docs/vendors.md §1.6.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from bot.errors import PayloadError
from bot.events import CampaignRef, Event
from bot.sources.auth import (
    TOKEN_HINT,
    TOKEN_SETTING,
    AuthResult,
    WebhookRequest,
    body_secret,
    check_token,
    equal,
    offered_tokens,
    signature_ok,
)
from bot.sources.payload import (
    Fields,
    compact,
    derived_id,
    find_campaign,
    keyed_id,
    make_event,
    require_object,
    vendor_id,
)

if TYPE_CHECKING:
    from bot.vendors.spec import VendorConfig

__all__ = ["DOTTED_TYPES", "FLAT_TYPES", "SIGNATURE_HEADER", "authenticate", "normalize"]

SOURCE: Final = "smartlead"
SIGNATURE_HEADER: Final = "X-Smartlead-Signature"
_SECRET: Final = "BOT_SMARTLEAD_WEBHOOK_SECRET"

#: Formats A, B and legacy (`event_type` or `event`), upper-cased.
FLAT_TYPES: Final[dict[str, str]] = {
    "EMAIL_SENT": "email.sent",
    "FIRST_EMAIL_SENT": "email.sent",
    "EMAIL_OPEN": "email.opened",
    "EMAIL_OPENED": "email.opened",
    "EMAIL_LINK_CLICK": "email.clicked",
    "EMAIL_CLICKED": "email.clicked",
    "EMAIL_REPLY": "email.replied",
    "EMAIL_REPLIED": "email.replied",
    "EMAIL_BOUNCE": "email.bounced",
    "EMAIL_BOUNCED": "email.bounced",
    "LEAD_UNSUBSCRIBED": "lead.unsubscribed",
    "EMAIL_UNSUBSCRIBED": "lead.unsubscribed",
    "LEAD_CATEGORY_UPDATED": "lead.category_updated",
}

#: Format C (`type`), lower-cased. Only `email.account.disconnected` and a bounce-threshold event are
#: documented; the rest are the obvious dotted spellings of the flat events.
DOTTED_TYPES: Final[dict[str, str]] = {
    "email.sent": "email.sent",
    "email.opened": "email.opened",
    "email.open": "email.opened",
    "email.clicked": "email.clicked",
    "email.link_clicked": "email.clicked",
    "email.replied": "email.replied",
    "email.bounced": "email.bounced",
    "email.unsubscribed": "lead.unsubscribed",
    "lead.unsubscribed": "lead.unsubscribed",
    "lead.category_updated": "lead.category_updated",
    "lead.category.updated": "lead.category_updated",
    "email.account.disconnected": "account.disconnected",
    "email_account.disconnected": "account.disconnected",
    "account.disconnected": "account.disconnected",
    "campaign.bounce_threshold.breached": "campaign.bounce_threshold",
    "campaign.bounce_threshold_breached": "campaign.bounce_threshold",
    "campaign.bounce.threshold_breached": "campaign.bounce_threshold",
    "campaign.bounce_threshold.reached": "campaign.bounce_threshold",
}

#: Types whose event may carry no campaign (an account is not a campaign; unknown types are opaque).
_CAMPAIGN_OPTIONAL: Final = frozenset({"account.disconnected", "vendor.other"})
#: Facts that can happen several times for one message: their key includes the event time.
_REPEATABLE: Final = frozenset({"email.opened", "email.clicked", "email.replied"})
#: Never hashed into ids nor copied: the shared secret, and Format C's per-attempt delivery metadata.
_NOT_IDENTITY: Final = frozenset({"secret_key", "meta"})

_TIME_FIELDS: Final = (
    "event_timestamp", "timestamp", "created_at", "occurred_at", "time_replied", "reply_message.time",
    "reply.received_at", "time_bounced", "time_opened", "time_clicked", "time_sent", "sent_message.time",
)
_MESSAGE_ID_FIELDS: Final = ("sent_message.message_id", "message_id", "email.message_id")


def normalize(payload: Any, received_at: datetime) -> list[Event]:
    """One Smartlead webhook body (parsed JSON) → one event."""
    body = require_object(payload)
    fields = Fields(body)
    dotted = fields.text("type")
    if dotted is not None and "." in dotted:
        return [_envelope(body, dotted, received_at)]
    vendor_type = fields.text("event_type") or fields.text("event")
    if vendor_type is None:
        raise PayloadError("expected a Smartlead event: no `event_type`, `event` or dot-style `type` field")
    return [_flat(body, vendor_type, received_at)]


def _identity(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in _NOT_IDENTITY}


def _bounce_type(fields: Fields) -> str | None:
    """`hard` or `soft` when the payload says so in any common spelling."""
    raw = fields.first_text("bounce_type", "bounce_category", "bounce.type", "type_of_bounce")
    if raw is None:
        return None
    lowered = raw.lower()
    if "hard" in lowered or "permanent" in lowered:
        return "hard"
    if "soft" in lowered or "transient" in lowered or "temporary" in lowered:
        return "soft"
    return None


def _email_data(fields: Fields, vendor_type: str) -> dict[str, Any]:
    """What rules and people need to know about an email event, from any of the three formats."""
    return compact({
        "vendor_type": vendor_type,
        "campaign_name": fields.first_text("campaign_name", "campaign.name"),
        "campaign_status": fields.first_text("campaign_status", "campaign.status"),
        "to_email": fields.first_text("to_email", "lead.email", "sl_lead_email", "lead_email", "to"),
        "from_email": fields.first_text("from_email", "email_account.email", "from"),
        "email_account_id": fields.first_text("email_account_id", "email_account.id"),
        "lead_id": fields.first_text("lead_id", "sl_email_lead_id", "lead.id"),
        "message_id": fields.first_text(*_MESSAGE_ID_FIELDS),
        "reply_message_id": fields.first_text("reply_message.message_id"),
        "stats_id": fields.first_text("stats_id"),
        "sequence_number": fields.integer("sequence_number"),
        "bounce_type": _bounce_type(fields),
        "bounce_reason": fields.first_text("bounce_reason", "bounce_message", "bounce.reason"),
        "category": fields.first_text("lead_category.new_name", "category", "lead_category_name"),
        "previous_category": fields.first_text("lead_category.old_name"),
    })


def _keyed(fields: Fields, event_type: str, occurred: str | None) -> str | None:
    """Vendor message id (+ event time for repeatable facts), else Smartlead's stats row; None if neither."""
    if event_type == "vendor.other":
        return None
    reply_id = fields.first_text("reply_message.message_id")
    if event_type == "email.replied" and reply_id:
        return keyed_id(SOURCE, event_type, reply_id)
    if event_type == "lead.category_updated":
        lead = fields.first_text("sl_email_lead_map_id", "lead_id", "sl_email_lead_id", "lead.id")
        new = fields.first_text("lead_category.new_id", "lead_category_id", "lead_category.new_name", "category")
        return keyed_id(SOURCE, event_type, occurred, lead, new or "") if lead and occurred else None
    message = fields.first_text(*_MESSAGE_ID_FIELDS)
    if message is None and (stats := fields.first_text("stats_id")):
        message = f"stats:{stats}:{fields.first_text('sl_email_lead_map_id') or ''}"
    if message is None:
        return None
    if event_type in _REPEATABLE:
        return keyed_id(SOURCE, event_type, occurred, message) if occurred else None
    return keyed_id(SOURCE, event_type, message)


def _flat(body: dict[str, Any], vendor_type: str, received_at: datetime) -> Event:
    fields = Fields(body)
    event_type = FLAT_TYPES.get(vendor_type.upper()) or DOTTED_TYPES.get(vendor_type.lower(), "vendor.other")
    campaign = find_campaign(fields, SOURCE, event_type, ("campaign_id", "email_campaign_id", "campaign.id"),
                             optional=_CAMPAIGN_OPTIONAL)
    occurred = fields.first_time(*_TIME_FIELDS)
    data = _email_data(fields, vendor_type)
    if vendor_type.upper() == "FIRST_EMAIL_SENT":
        data["first_email"] = True
    event_id = _keyed(fields, event_type, occurred.isoformat() if occurred else None)
    return _event(body, event_id, event_type, occurred or received_at, campaign, data)


def _envelope(body: dict[str, Any], vendor_type: str, received_at: datetime) -> Event:
    """Format C: the envelope's `id` is the vendor's event id (the same on every retry)."""
    fields = Fields(body)
    inner = fields.sub("data")
    event_type = DOTTED_TYPES.get(vendor_type.lower(), "vendor.other")
    campaign = find_campaign(inner, SOURCE, event_type, ("campaign_id", "campaign.id", "email_campaign_id"),
                             prefix="data.", optional=_CAMPAIGN_OPTIONAL)
    occurred = fields.first_time("created_at", "timestamp") or inner.first_time(*_TIME_FIELDS)
    data = _email_data(inner, vendor_type)
    if event_type == "account.disconnected":
        data |= compact({
            "account": inner.first_text("account_id", "email_account_id", "email_account.id"),
            "email": inner.first_text("email", "from_email", "email_account.email"),
            "reason": inner.first_text("reason", "error"),
        })
    elif event_type == "campaign.bounce_threshold":
        data |= compact({
            "bounce_rate": inner.first_number("bounce_rate", "bounce_rate_percent"),
            "threshold": inner.first_number("threshold", "bounce_threshold"),
            "bounced": inner.first_integer("bounced_count", "bounced"),
            "sent": inner.first_integer("sent_count", "sent"),
        })
    level = fields.first_text("meta.level")
    if level:
        data["level"] = level
    vendor_event_id = fields.text("id")
    if vendor_event_id:
        event_id: str | None = vendor_id(SOURCE, vendor_event_id)
    else:
        event_id = _keyed(inner, event_type, occurred.isoformat() if occurred else None)
    return _event(body, event_id, event_type, occurred or received_at, campaign, data)


def _event(body: dict[str, Any], event_id: str | None, event_type: str, occurred_at: datetime,
           campaign: CampaignRef | None, data: dict[str, Any]) -> Event:
    """The event; without a vendor or keyed id, its id is a hash of the body's identity fields."""
    return make_event(event_id=event_id or derived_id(SOURCE, _identity(body)), event_type=event_type,
                      source=SOURCE, occurred_at=occurred_at, campaign=campaign, data=data)


def authenticate(request: WebhookRequest, config: VendorConfig) -> AuthResult:
    """Signature, else token, else the legacy body `secret_key` (see the module docstring)."""
    secret = config.secret("webhook_secret")
    token = request.token
    signature = request.headers.get(SIGNATURE_HEADER)
    tokens = offered_tokens(request)
    if signature is not None and secret is not None:
        ok = signature_ok(signature, request.body, secret)
        return AuthResult.passed("signature") if ok else AuthResult.refused(
            f"invalid {SIGNATURE_HEADER} (not signed with {_SECRET})")
    if tokens and token is not None:
        return check_token(tokens, token)
    if signature is None and secret is not None and (offered := body_secret(request.body)) is not None:
        return AuthResult.passed("secret_key") if equal(offered, secret) else AuthResult.refused(
            f"invalid secret_key (does not match {_SECRET})")
    if secret is None and token is None:
        return AuthResult.refused(f"no secret configured for smartlead (set {_SECRET} or {TOKEN_SETTING})")
    # the request offers a credential we hold no secret for: fail closed, naming the missing setting
    if signature is not None:
        return AuthResult.refused(f"no secret configured for smartlead (signature given, {_SECRET} unset)")
    if tokens:
        return AuthResult.refused(f"no secret configured for smartlead (token given, {TOKEN_SETTING} unset)")
    if secret is None and body_secret(request.body) is not None:
        return AuthResult.refused(f"no secret configured for smartlead (secret_key given, {_SECRET} unset)")
    return AuthResult.refused(f"missing credentials: {SIGNATURE_HEADER}, secret_key or {TOKEN_HINT} "
                              f"({_SECRET} / {TOKEN_SETTING})")
