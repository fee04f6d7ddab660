"""lemlist normalizer: one activity per webhook, against tests/payloads/lemlist_*.json; and its
authentication (BOT_LEMLIST_WEBHOOK_SECRET or BOT_WEBHOOK_TOKEN, failing closed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from bot.errors import PayloadError
from bot.events import EVENT_TYPES, Event
from bot.sources import normalize
from bot.sources.auth import AuthResult, WebhookRequest
from bot.vendors.lemlist.webhooks import TOKEN_HEADER, TYPES, authenticate
from bot.vendors.spec import VendorConfig

Payload = Callable[[str], bytes]
CAMPAIGN = "lemlist:cam_aaWL92T22Sei3Bz6v"


def one(body: bytes, received_at: datetime) -> Event:
    events = normalize("lemlist", body, received_at=received_at)
    assert len(events) == 1
    return events[0]


@pytest.mark.parametrize(
    ("name", "event_type", "event_id", "campaign"),
    [
        ("lemlist_emails_sent.json", "email.sent", "lemlist:id:act_Q2kG8sVwXb4mTnR7p", CAMPAIGN),
        ("lemlist_emails_bounced.json", "email.bounced", "lemlist:id:act_Z9pL3wRt6YcVn0bHs", CAMPAIGN),
        ("lemlist_emails_replied.json", "email.replied", "lemlist:id:act_R4eP7kWm2QxZs9TbN", CAMPAIGN),
        ("lemlist_emails_unsubscribed.json", "lead.unsubscribed", "lemlist:id:act_U1nS5bQw8ErTy3ZxC", CAMPAIGN),
        ("lemlist_emails_interested.json", "lead.category_updated", "lemlist:id:act_I7tR3sWq1PzXc5VbM", CAMPAIGN),
        ("lemlist_connection_issue.json", "account.disconnected", "lemlist:id:act_C0nN3ct1onIssu3x", "None"),
        ("lemlist_lead_paused.json", "vendor.other", "lemlist:id:act_P4us3dL3adQw8ErTy", CAMPAIGN),
    ],
)
def test_fixture_normalizes_to_expected_type_campaign_and_id(
    payload: Payload, received_at: datetime, name: str, event_type: str, event_id: str, campaign: str
) -> None:
    event = one(payload(name), received_at)
    assert (event.type, event.source, str(event.campaign), event.id) == (event_type, "lemlist", campaign, event_id)
    assert one(payload(name), received_at) == event                # the same body, the same event


def test_mapping_is_a_small_table_of_canonical_types() -> None:
    assert set(TYPES.values()) <= set(EVENT_TYPES)
    assert TYPES["emailsBounced"] == "email.bounced" and TYPES["emailsUnsubscribed"] == "lead.unsubscribed"
    # lead activities and lead-state groups are never campaign events (they would count emails twice)
    assert not {"paused", "resumed", "contacted", "hooked", "warmed", "interested"} & set(TYPES)


def test_sent_carries_what_rules_and_people_need(payload: Payload, received_at: datetime) -> None:
    event = one(payload("lemlist_emails_sent.json"), received_at)
    assert event.occurred_at == datetime(2026, 11, 22, 10, 15, 3, 418000, tzinfo=UTC)
    assert {"vendor_type": "emailsSent", "campaign_name": "Q4 founders outreach", "to_email": "jane.doe@example.org",
            "from_email": "sales@example.com", "lead_id": "lea_Hd83kWq0sXbVn2pLm", "email_id": "eml_7bN2xQ4kLm9sVt1Wc",
            "sequence_step": 0, "is_first": True}.items() <= event.data.items()


def test_bounce_keeps_the_reason(payload: Payload, received_at: datetime) -> None:
    event = one(payload("lemlist_emails_bounced.json"), received_at)
    assert event.data["reason"].startswith("550 5.1.1")
    assert event.data["from_email"] == "sales@example.com"


def test_interested_is_a_category(payload: Payload, received_at: datetime) -> None:
    assert one(payload("lemlist_emails_interested.json"), received_at).data["category"] == "interested"


def test_connection_issue_names_the_mailbox(payload: Payload, received_at: datetime) -> None:
    event = one(payload("lemlist_connection_issue.json"), received_at)
    assert (event.data["email"], event.data["account"]) == ("sales@example.com", "usm_JLtj28DpEdrwseTAc")
    assert event.campaign is None


def test_a_lead_pause_is_not_a_campaign_pause(payload: Payload, received_at: datetime) -> None:
    event = one(payload("lemlist_lead_paused.json"), received_at)
    assert (event.type, event.data["vendor_type"]) == ("vendor.other", "paused")


def test_without_an_activity_id_the_id_is_derived_and_stable(payload: Payload, received_at: datetime) -> None:
    body = payload("lemlist_no_activity_id.json")
    event = one(body, received_at)
    assert event.id == "lemlist:email.bounced:cam_aaWL92T22Sei3Bz6v|eml_7bN2xQ4kLm9sVt1Wc"
    reordered = json.dumps(dict(reversed(list(json.loads(body).items())))).encode()
    assert one(reordered, received_at).id == event.id                # key order does not matter
    sent = json.loads(body) | {"type": "emailsSent"}
    assert one(json.dumps(sent).encode(), received_at).id != event.id   # sent and bounced of one email differ


def test_repeatable_facts_without_ids_key_on_their_time(received_at: datetime) -> None:
    body = {"type": "emailsOpened", "campaignId": "cam_abc", "emailId": "eml_1", "createdAt": "2026-11-22T10:00:00Z"}
    first = one(json.dumps(body).encode(), received_at)
    later = one(json.dumps(body | {"createdAt": "2026-11-22T11:00:00Z"}).encode(), received_at)
    assert first.type == "email.opened" and first.id != later.id
    bare = {"type": "emailsOpened", "campaignId": "cam_abc"}                 # nothing identifies it: a hash
    assert one(json.dumps(bare).encode(), received_at).id.startswith("lemlist:sha256:")


def test_unknown_types_are_kept_as_vendor_other(received_at: datetime) -> None:
    event = one(json.dumps({"_id": "act_1", "type": "linkedinInviteDone"}).encode(), received_at)
    assert (event.type, event.campaign, event.occurred_at) == ("vendor.other", None, received_at)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("lemlist_bad_campaign_id.json", "field campaignId: invalid lemlist campaign id"),
        ("lemlist_no_type.json", "field type: missing"),
    ],
)
def test_unusable_fixtures_raise_payload_error(payload: Payload, received_at: datetime, name: str,
                                               reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        normalize("lemlist", payload(name), received_at=received_at)


def test_an_email_event_needs_its_campaign(received_at: datetime) -> None:
    with pytest.raises(PayloadError, match=r"field campaignId: missing \(required for email.bounced\)"):
        normalize("lemlist", json.dumps({"_id": "act_2", "type": "emailsBounced"}).encode(), received_at=received_at)


# ------------------------------------------------------------------ authentication (pure)

SECRET = "lemlist-hook-secret-31c4"
TOKEN = "shared-webhook-token-8d2e"


def check(*, headers: dict[str, str] | None = None, query: dict[str, str] | None = None, secret: str | None = SECRET,
          token: str | None = TOKEN) -> AuthResult:
    config = VendorConfig("lemlist", {"webhook_secret": SecretStr(secret) if secret else None})
    request = WebhookRequest("lemlist", CIMultiDict(headers or {}), query or {}, b"{}", token)
    return authenticate(request, config)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"query": {"token": SECRET}},
        {"query": {"token": TOKEN}},
        {"headers": {TOKEN_HEADER: SECRET}},
        {"headers": {TOKEN_HEADER.lower(): TOKEN}},
        {"headers": {"Authorization": f"Bearer {SECRET}"}},
        {"query": {"token": SECRET}, "token": None},
        {"query": {"token": TOKEN}, "secret": None},
    ],
)
def test_either_secret_passes(kwargs: dict[str, Any]) -> None:
    assert check(**kwargs) == AuthResult.passed("token")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"query": {"token": "guess"}},
         "invalid token (matches neither BOT_LEMLIST_WEBHOOK_SECRET nor BOT_WEBHOOK_TOKEN)"),
        ({"headers": {TOKEN_HEADER: SECRET + "x"}}, "invalid token"),
        ({"query": {"token": TOKEN}, "token": None}, "invalid token"),    # the shared token, once unset, is no key
        ({"headers": {"Authorization": f"Basic {SECRET}"}}, "missing token"),
        ({}, "missing token: ?token=<token>, X-Lemlist-Token or Authorization: Bearer"),
        ({"query": {"token": SECRET}, "secret": None, "token": None},
         "no secret configured for lemlist (set BOT_LEMLIST_WEBHOOK_SECRET or BOT_WEBHOOK_TOKEN)"),
    ],
)
def test_refusals_name_the_setting(kwargs: dict[str, Any], reason: str) -> None:
    result = check(**kwargs)
    assert not result.ok and reason in result.reason
    assert SECRET not in result.reason and TOKEN not in result.reason
