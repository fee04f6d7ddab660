"""Inbox (inboxapp.com) webhooks → canonical events (docs/vendors.md §3.5). Authenticated with
BOT_WEBHOOK_TOKEN (bearer or `?token=`): Inbox documents no signature.

The envelope is `{id, seq, teamId, type, timestamp, version, data}`; `id` is the dedupe key and
`seq` (kept in `data.seq`) lets gaps be detected.

Inbox is X/Twitter DM outreach, so its target events (`target.contacted`, `target.replied`, ...) are
not emails: they become `vendor.other` (with `data.vendor_type`) rather than borrowing `email.*`.

`campaign.paused` can be manual or automatic (a connected account has a problem), but the field that
says which was not captured in the docs. `data.by` is therefore set only when the payload says so
explicitly, from the first of `data.pausedBy`, `data.campaign.pausedBy`, `data.triggeredBy`,
`data.actor`, `data.initiator` (a string, or an object with `type`): system|automatic|auto → "system";
user|manual|member|api → "user". `data.reason` is copied from `data.reason`/`data.pauseReason`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from bot.errors import PayloadError
from bot.events import Event
from bot.sources.auth import AuthResult, WebhookRequest, token_only
from bot.sources.payload import (
    Fields,
    compact,
    derived_id,
    find_campaign,
    make_event,
    require_object,
    vendor_id,
)

if TYPE_CHECKING:
    from bot.vendors.spec import VendorConfig

__all__ = ["TYPES", "authenticate", "normalize"]

SOURCE: Final = "inbox"

#: Inbox `type` → canonical type; `campaign.started` also fires on resume (so does `campaign.resumed`).
TYPES: Final[dict[str, str]] = {
    "campaign.started": "campaign.started",
    "campaign.resumed": "campaign.started",
    "campaign.paused": "campaign.paused",
    "campaign.completed": "campaign.completed",
}
_ACTORS: Final[dict[str, str]] = {
    "system": "system", "automatic": "system", "auto": "system", "inbox": "system",
    "user": "user", "manual": "user", "member": "user", "team_member": "user", "api": "user",
}
_ACTOR_PATHS: Final = ("pausedBy", "campaign.pausedBy", "triggeredBy", "actor", "initiator")
_CAMPAIGN_PATHS: Final = ("campaign.id", "campaignId", "campaign_id")


def normalize(payload: Any, received_at: datetime) -> list[Event]:
    """One Inbox webhook body (parsed JSON) → one event."""
    body = require_object(payload)
    fields = Fields(body)
    vendor_type = fields.required("type", "e.g. campaign.paused")
    if "data" in body and not isinstance(body["data"], dict):
        raise PayloadError("field data: expected a JSON object")
    inner = fields.sub("data")
    event_type = TYPES.get(vendor_type.lower(), "vendor.other")
    vendor_event_id = fields.text("id")
    data = _data(fields, inner, vendor_type)
    if vendor_type == "campaign.resumed":
        data["resumed"] = True
    if event_type == "campaign.paused":
        data |= compact({"by": _paused_by(inner), "reason": inner.first_text("reason", "pauseReason")})
    occurred = fields.first_time("timestamp", "createdAt") or inner.first_time("campaign.updatedAt")
    return [
        make_event(
            event_id=vendor_id(SOURCE, vendor_event_id) if vendor_event_id else derived_id(SOURCE, body),
            event_type=event_type,
            source=SOURCE,
            occurred_at=occurred or received_at,
            campaign=find_campaign(inner, SOURCE, event_type, _CAMPAIGN_PATHS, prefix="data."),
            data=data,
        )
    ]


def _paused_by(inner: Fields) -> str | None:
    for path in _ACTOR_PATHS:
        actor = inner.first_text(path, f"{path}.type")
        if actor is not None:
            return _ACTORS.get(actor.lower())
    return None


def _data(fields: Fields, inner: Fields, vendor_type: str) -> dict[str, Any]:
    campaign = inner.sub("campaign")
    return compact({
        "vendor_type": vendor_type,
        "seq": fields.integer("seq"),
        "team_id": fields.text("teamId"),
        "campaign_name": campaign.text("name"),
        "campaign_status": campaign.text("status"),
        "targets_count": campaign.integer("targetsCount"),
        "contacted_count": campaign.integer("contactedCount"),
        "replies_count": campaign.integer("repliesCount"),
        "reply_rate": campaign.number("replyRate"),
        "completion_rate": campaign.number("completionRate"),
        "target_id": inner.first_text("target.id", "targetId"),
        "account_link_id": inner.first_text("accountLinkId", "target.accountLinkId"),
    })


def authenticate(request: WebhookRequest, config: VendorConfig) -> AuthResult:
    """BOT_WEBHOOK_TOKEN as bearer or `?token=`."""
    return token_only(request)
