"""lemlist webhooks: their authentication, and lemlist activities → canonical events.

What is known (docs/vendors.md §5 says only "Webhooks"; the rest is from lemlist's public API reference,
"Add Webhook" and "activity types", read for this module):

* A webhook is registered with `POST /hooks {"targetUrl", "type"?, "campaignId"?}`; each delivery is ONE
  activity object, flat JSON [G: the webhook body is the activity object the activities API returns].
* Activity fields [3P, lemlist help centre]: `_id` (the activity id, `act_…`), `type`, `createdAt`,
  `campaignId`, `leadId`, `teamId`, and when relevant `name`/`campaignName` (campaign name), `leadEmail`,
  `sendUserEmail`, `sendUserId`, `sendUserMailboxId`, `messageId`, `emailId` (`eml_…`), `isFirst`,
  `sequenceStep`, `errorMessage`, `relatedSentAt`. Field spellings beyond `_id`, `type`, `createdAt`,
  `campaignId` and `leadId` are [G]: each is read only if present.
* Activity types: `emailsSent`, `emailsOpened`, `emailsClicked`, `emailsReplied`, `emailsBounced`,
  `emailsFailed`, `emailsUnsubscribed`, `emailsInterested`, `emailsNotInterested`, the lead-state groups
  (`contacted`, `hooked`, `attracted`, `warmed`, `interested`, `notInterested`), `linkedin*`, `paused`,
  `resumed`, `connectionIssue`, `sendLimitReached`, `lemwarmPaused`, ... The mapping (`TYPES`) is below.
  [G] choices: `emailsInterested`/`emailsNotInterested` → `lead.category_updated` (`data.category`);
  `connectionIssue` → `account.disconnected`; `paused`/`resumed` are *lead* activities in lemlist (a
  lead's sequence paused), so they are NOT campaign events: `vendor.other`, like the lead-state groups
  (which repeat the email activities: mapping them would count each email twice) and everything else.
* Event id: the activity `_id` (the same on every retry); without one, a key from the type, campaign,
  the email (`emailId`, `messageId`) or lead, and `createdAt`; failing that, a hash of the body.

Authentication: lemlist documents no signature, and its hook has only a `targetUrl` [G: no custom
headers], so the credential rides in that URL: `?token=<t>`; `Authorization: Bearer <t>` and the
`X-Lemlist-Token: <t>` header (for a proxy that adds it) are accepted too. `<t>` is
BOT_LEMLIST_WEBHOOK_SECRET or the shared BOT_WEBHOOK_TOKEN, compared in constant time. Fails closed:
with neither configured, every request is refused with a reason naming both settings.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from bot.events import CampaignRef, Event
from bot.sources.auth import TOKEN_SETTING, AuthResult, WebhookRequest, equal, offered_tokens
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

__all__ = ["TOKEN_HEADER", "TYPES", "authenticate", "normalize"]

SOURCE: Final = "lemlist"
TOKEN_HEADER: Final = "X-Lemlist-Token"
_SECRET: Final = "BOT_LEMLIST_WEBHOOK_SECRET"

#: lemlist activity `type` → canonical type; any other type is `vendor.other` (kept, `data.vendor_type`).
TYPES: Final[dict[str, str]] = {
    "emailsSent": "email.sent",
    "emailsOpened": "email.opened",
    "emailsClicked": "email.clicked",
    "emailsReplied": "email.replied",
    "emailsBounced": "email.bounced",
    "emailsUnsubscribed": "lead.unsubscribed",
    "emailsInterested": "lead.category_updated",        # [G]
    "emailsNotInterested": "lead.category_updated",     # [G]
    "connectionIssue": "account.disconnected",          # [G]
}
_CATEGORIES: Final = {"emailsInterested": "interested", "emailsNotInterested": "not interested"}
#: Types whose event may carry no campaign (an account is not a campaign; unknown types are opaque).
_CAMPAIGN_OPTIONAL: Final = frozenset({"account.disconnected", "vendor.other"})
#: Facts that can happen several times for one email: their key includes the event time.
_REPEATABLE: Final = frozenset({"email.opened", "email.clicked", "email.replied", "lead.category_updated"})
_CAMPAIGN_PATHS: Final = ("campaignId", "campaign_id", "campaign.id", "metaData.campaignId")


def normalize(payload: Any, received_at: datetime) -> list[Event]:
    """One lemlist webhook body (one activity, parsed JSON) → one event."""
    body = require_object(payload)
    fields = Fields(body)
    vendor_type = fields.required("type", "a lemlist activity type, e.g. emailsBounced")
    event_type = TYPES.get(vendor_type, "vendor.other")
    campaign = find_campaign(fields, SOURCE, event_type, _CAMPAIGN_PATHS, optional=_CAMPAIGN_OPTIONAL)
    occurred = fields.first_time("createdAt", "date", "timestamp")
    data = _data(fields, vendor_type)
    if vendor_type in _CATEGORIES:
        data["category"] = _CATEGORIES[vendor_type]
    activity = fields.first_text("_id", "id")
    event_id = vendor_id(SOURCE, activity) if activity else _keyed(
        fields, event_type, vendor_type, campaign, occurred.isoformat() if occurred else None)
    return [
        make_event(
            event_id=event_id or derived_id(SOURCE, body),
            event_type=event_type,
            source=SOURCE,
            occurred_at=occurred or received_at,
            campaign=campaign,
            data=data,
        )
    ]


def _keyed(fields: Fields, event_type: str, vendor_type: str, campaign: CampaignRef | None,
           occurred: str | None) -> str | None:
    """Without an activity id: (type, campaign, email or lead[, time]); None when nothing identifies it."""
    if event_type == "vendor.other" or campaign is None:
        return None
    email = fields.first_text("emailId", "messageId")
    subject = email or fields.first_text("leadId", "leadEmail")
    if subject is None:
        return None
    if event_type in _REPEATABLE or email is None:
        # a lead (not one email) is what identifies it, or the fact repeats: only the time tells them apart
        return keyed_id(SOURCE, event_type, campaign.id, subject, vendor_type, occurred) if occurred else None
    return keyed_id(SOURCE, event_type, campaign.id, email)


def _data(fields: Fields, vendor_type: str) -> dict[str, Any]:
    """What rules and people need to know about an activity."""
    return compact({
        "vendor_type": vendor_type,
        "campaign_name": fields.first_text("campaignName", "name"),
        "to_email": fields.first_text("leadEmail", "email"),
        "from_email": fields.first_text("sendUserEmail"),
        "email": fields.first_text("sendUserEmail") if vendor_type == "connectionIssue" else None,
        "account": fields.first_text("sendUserMailboxId", "sendUserId") if vendor_type == "connectionIssue" else None,
        "lead_id": fields.first_text("leadId"),
        "team_id": fields.first_text("teamId"),
        "message_id": fields.first_text("messageId"),
        "email_id": fields.first_text("emailId"),
        "sequence_step": fields.first_integer("sequenceStep", "stepIndex"),
        "is_first": fields.get("isFirst") if isinstance(fields.get("isFirst"), bool) else None,
        "reason": fields.first_text("errorMessage"),
    })


def authenticate(request: WebhookRequest, config: VendorConfig) -> AuthResult:
    """BOT_LEMLIST_WEBHOOK_SECRET or BOT_WEBHOOK_TOKEN, as `?token=`, bearer or X-Lemlist-Token; fails closed."""
    expected = [value for value in (config.secret("webhook_secret"), request.token) if value]
    if not expected:
        return AuthResult.refused(f"no secret configured for lemlist (set {_SECRET} or {TOKEN_SETTING})")
    offered = offered_tokens(request)
    header = request.headers.get(TOKEN_HEADER, "").strip()
    if header:
        offered.insert(0, header)
    if not offered:
        return AuthResult.refused(f"missing token: ?token=<token>, {TOKEN_HEADER} or Authorization: Bearer "
                                  f"({_SECRET} or {TOKEN_SETTING})")
    # every pair is compared (no early exit on which one matched): constant time in the secrets
    matched = [equal(given, secret) for given in offered for secret in expected]
    if any(matched):
        return AuthResult.passed("token")
    return AuthResult.refused(f"invalid token (matches neither {_SECRET} nor {TOKEN_SETTING})")
