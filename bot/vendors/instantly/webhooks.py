"""Instantly webhooks: their authentication, and the flat event object → canonical events
(docs/vendors.md §4, https://developer.instantly.ai/guides/webhook-events.md).

Authentication. Instantly documents no signature, but a webhook can carry custom headers. Accepted, the
first credential the request offers deciding:

* `X-Campaign-Guard-Token: <BOT_INSTANTLY_WEBHOOK_SECRET>` (a custom header set on the webhook in
  Instantly), compared in constant time; a wrong value is final;
* else `BOT_WEBHOOK_TOKEN` as `Authorization: Bearer <t>` (also a custom header) or `?token=<t>`.

Fails closed: with neither setting configured every request is refused (401 naming both settings), and a
credential offered for a setting that is unset is refused naming that setting.

Body: one flat JSON object per event. Always present: `timestamp` (ISO), `event_type`, `workspace`,
`campaign_id` (UUID), `campaign_name`; optional `lead_email`, `email_account` (the sender), `step`,
`variant`, `is_first`, `email_id`, `email_subject`, reply fields, and the lead's custom columns merged in.
Only the fields below are kept (reply bodies and lead columns are not copied). There is no event id:
it is derived from the type, campaign, `email_id` (else the lead, else the sender) and `timestamp`, so
Instantly's redeliveries (a few within about 30 s) dedupe; without a timestamp, a hash of the body.
Unknown types become `vendor.other` (`data.vendor_type`), accepted like every vendor's.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from bot.events import CampaignRef, Event
from bot.sources.auth import (
    TOKEN_HINT,
    TOKEN_SETTING,
    AuthResult,
    WebhookRequest,
    check_token,
    equal,
    offered_tokens,
)
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

__all__ = ["TOKEN_HEADER", "TYPES", "authenticate", "normalize"]

SOURCE: Final = "instantly"
#: The custom header configured on the Instantly webhook, holding BOT_INSTANTLY_WEBHOOK_SECRET.
TOKEN_HEADER: Final = "X-Campaign-Guard-Token"
_SECRET: Final = "BOT_INSTANTLY_WEBHOOK_SECRET"

#: Instantly `event_type` (lower-cased) → canonical type. `auto_reply_received` is not a person's reply:
#: it stays `vendor.other`. The lead-status events become a category change (`data.category`).
TYPES: Final[dict[str, str]] = {
    "email_sent": "email.sent",
    "email_opened": "email.opened",
    "link_clicked": "email.clicked",
    "reply_received": "email.replied",
    "email_bounced": "email.bounced",
    "lead_unsubscribed": "lead.unsubscribed",
    "account_error": "account.disconnected",
    "campaign_completed": "campaign.completed",
    "lead_interested": "lead.category_updated",
    "lead_not_interested": "lead.category_updated",
    "lead_neutral": "lead.category_updated",
    "lead_meeting_booked": "lead.category_updated",
    "lead_meeting_completed": "lead.category_updated",
    "lead_closed": "lead.category_updated",
    "lead_out_of_office": "lead.category_updated",
    "lead_wrong_person": "lead.category_updated",
}
#: Types whose event may carry no campaign (an account is not a campaign; unknown types are opaque).
_CAMPAIGN_OPTIONAL: Final = frozenset({"account.disconnected", "vendor.other"})


def normalize(payload: Any, received_at: datetime) -> list[Event]:
    """One Instantly webhook body (parsed JSON) → one event."""
    body = require_object(payload)
    fields = Fields(body)
    vendor_type = fields.required("event_type", "e.g. email_bounced")
    event_type = TYPES.get(vendor_type.lower(), "vendor.other")
    campaign = find_campaign(fields, SOURCE, event_type, ("campaign_id",), optional=_CAMPAIGN_OPTIONAL)
    occurred = fields.first_time("timestamp")
    data = _data(fields, vendor_type)
    if event_type == "lead.category_updated":
        data["category"] = vendor_type.lower().removeprefix("lead_")
    elif event_type == "account.disconnected":
        data |= compact({"email": fields.first_text("email_account", "account", "email"),
                         "reason": fields.first_text("error", "error_message", "reason")})
    return [
        make_event(
            event_id=_event_id(body, fields, vendor_type, campaign),
            event_type=event_type,
            source=SOURCE,
            occurred_at=occurred or received_at,
            campaign=campaign,
            data=data,
        )
    ]


def _event_id(body: dict[str, Any], fields: Fields, vendor_type: str, campaign: CampaignRef | None) -> str:
    """`instantly:<event_type>:<campaign>|<email_id, else lead, else sender>|<timestamp as sent>`; a hash of
    the body when there is no timestamp (nothing else tells two events apart)."""
    stamp = fields.text("timestamp")
    if stamp is None:
        return derived_id(SOURCE, body)
    subject = fields.first_text("email_id", "lead_email", "email_account") or ""
    return keyed_id(SOURCE, vendor_type.lower(), campaign.id if campaign else "", subject, stamp)


def _data(fields: Fields, vendor_type: str) -> dict[str, Any]:
    return compact({
        "vendor_type": vendor_type,
        "workspace": fields.text("workspace"),
        "campaign_name": fields.text("campaign_name"),
        "to_email": fields.text("lead_email"),
        "from_email": fields.text("email_account"),
        "message_id": fields.text("email_id"),
        "sequence_number": fields.integer("step"),
        "variant": fields.integer("variant"),
        "first_email": fields.get("is_first") if isinstance(fields.get("is_first"), bool) else None,
        "bounce_type": _bounce_type(fields),
    })


def _bounce_type(fields: Fields) -> str | None:
    """`hard` or `soft` when the payload says so (not documented by Instantly; read if present)."""
    raw = fields.first_text("bounce_type", "bounce.type")
    if raw is None:
        return None
    lowered = raw.lower()
    return "hard" if "hard" in lowered else "soft" if "soft" in lowered else None


def authenticate(request: WebhookRequest, config: VendorConfig) -> AuthResult:
    """The webhook's custom header token, else BOT_WEBHOOK_TOKEN (see the module docstring)."""
    secret = config.secret("webhook_secret")
    token = request.token
    header = request.headers.get(TOKEN_HEADER)
    tokens = offered_tokens(request)
    if secret is None and token is None:
        return AuthResult.refused(f"no secret configured for instantly (set {_SECRET} or {TOKEN_SETTING})")
    if header is not None:
        if secret is None:
            return AuthResult.refused(f"no secret configured for instantly ({TOKEN_HEADER} given, {_SECRET} unset)")
        if equal(header.strip(), secret):
            return AuthResult.passed("header_token")
        return AuthResult.refused(f"invalid {TOKEN_HEADER} (does not match {_SECRET})")
    if tokens:
        if token is None:
            return AuthResult.refused(f"no secret configured for instantly (token given, {TOKEN_SETTING} unset)")
        return check_token(tokens, token)
    return AuthResult.refused(f"missing credentials: {TOKEN_HEADER} or {TOKEN_HINT} ({_SECRET} / {TOKEN_SETTING})")
