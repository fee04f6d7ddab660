"""Instantly normalizer (one flat object per event) against tests/payloads/instantly_*.json, and its
webhook authentication (a custom header token, or BOT_WEBHOOK_TOKEN; fail closed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from multidict import CIMultiDict

from bot.errors import PayloadError
from bot.events import EVENT_TYPES, Event
from bot.sources import normalize
from bot.sources.auth import WebhookRequest
from bot.vendors.instantly.webhooks import TOKEN_HEADER, TYPES, authenticate
from bot.vendors.spec import VendorConfig

Payload = Callable[[str], bytes]
CID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"


def one(body: bytes, received_at: datetime) -> Event:
    events = normalize("instantly", body, received_at=received_at)
    assert len(events) == 1
    return events[0]


@pytest.mark.parametrize(
    ("name", "event_type"),
    [
        ("instantly_email_sent.json", "email.sent"),
        ("instantly_email_bounced.json", "email.bounced"),
        ("instantly_reply_received.json", "email.replied"),
        ("instantly_lead_unsubscribed.json", "lead.unsubscribed"),
        ("instantly_account_error.json", "account.disconnected"),
        ("instantly_campaign_completed.json", "campaign.completed"),
        ("instantly_lead_meeting_booked.json", "lead.category_updated"),
        ("instantly_auto_reply_received.json", "vendor.other"),
    ],
)
def test_fixture_normalizes_to_expected_type_campaign_and_a_stable_id(
    payload: Payload, received_at: datetime, name: str, event_type: str
) -> None:
    event = one(payload(name), received_at)
    body = json.loads(payload(name))
    assert (event.type, event.source, str(event.campaign)) == (event_type, "instantly", f"instantly:{CID}")
    assert event.id.startswith(f"instantly:{body['event_type']}:{CID}|")
    assert event.id.endswith(f"|{body['timestamp']}")
    assert event.data["vendor_type"] == body["event_type"]
    assert event.data["campaign_name"] == "Q1 SaaS founders"
    assert event.data["workspace"] == "8c1d2e3f-4a5b-4c6d-9e7f-0a1b2c3d4e5f"
    assert event.occurred_at == datetime.fromisoformat(body["timestamp"])
    assert one(payload(name), received_at) == event                 # a redelivery is the same event


def test_mapping_targets_canonical_types() -> None:
    assert set(TYPES.values()) <= set(EVENT_TYPES)


def test_email_fields_are_kept_and_lead_columns_and_reply_bodies_are_not(
    payload: Payload, received_at: datetime
) -> None:
    sent = one(payload("instantly_email_sent.json"), received_at)
    assert sent.data == {
        "vendor_type": "email_sent", "workspace": "8c1d2e3f-4a5b-4c6d-9e7f-0a1b2c3d4e5f",
        "campaign_name": "Q1 SaaS founders", "to_email": "jordan.lee@prospect-example.org",
        "from_email": "alex@outreach-example.com", "message_id": "019372f4-8b1e-7c2d-9a3b-4c5d6e7f8a9b",
        "sequence_number": 1, "variant": 1, "first_email": True}
    assert sent.id == (f"instantly:email_sent:{CID}|019372f4-8b1e-7c2d-9a3b-4c5d6e7f8a9b|"
                       "2026-11-22T09:12:03.418Z")
    reply = one(payload("instantly_reply_received.json"), received_at)
    assert not {"reply_text_snippet", "reply_html", "reply_subject"} & set(reply.data)


def test_the_id_falls_back_to_the_lead_and_differs_per_type(payload: Payload, received_at: datetime) -> None:
    unsubscribed = one(payload("instantly_lead_unsubscribed.json"), received_at)
    assert unsubscribed.id == (f"instantly:lead_unsubscribed:{CID}|riley.chen@prospect-example.org|"
                               "2026-11-22T11:30:00.000Z")
    body = json.loads(payload("instantly_email_bounced.json"))
    bounced = one(json.dumps(body).encode(), received_at)
    sent = one(json.dumps(body | {"event_type": "email_sent"}).encode(), received_at)
    later = one(json.dumps(body | {"timestamp": "2026-11-22T09:15:00.000Z"}).encode(), received_at)
    assert len({bounced.id, sent.id, later.id}) == 3
    reordered = one(json.dumps(dict(reversed(list(body.items())))).encode(), received_at)
    assert reordered.id == bounced.id


def test_without_a_timestamp_the_id_is_a_hash_of_the_body(received_at: datetime) -> None:
    body = {"event_type": "email_bounced", "campaign_id": CID, "lead_email": "a@b.example"}
    event = one(json.dumps(body).encode(), received_at)
    assert event.id.startswith("instantly:sha256:") and event.occurred_at == received_at


def test_account_error_and_category(payload: Payload, received_at: datetime) -> None:
    account = one(payload("instantly_account_error.json"), received_at)
    assert (account.data["email"], account.data["reason"]) == ("alex@outreach-example.com",
                                                                "IMAP authentication failed")
    no_campaign = {"event_type": "account_error", "timestamp": "2026-11-22T12:05:44Z",
                   "email_account": "alex@outreach-example.com"}
    assert one(json.dumps(no_campaign).encode(), received_at).campaign is None
    booked = one(payload("instantly_lead_meeting_booked.json"), received_at)
    assert booked.data["category"] == "meeting_booked"


def test_unknown_types_are_accepted_as_vendor_other(received_at: datetime) -> None:
    body = {"event_type": "email_opened_twice", "timestamp": "2026-11-22T12:00:00Z", "campaign_id": CID}
    event = one(json.dumps(body).encode(), received_at)
    assert (event.type, event.data["vendor_type"]) == ("vendor.other", "email_opened_twice")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (None, "field campaign_id: invalid instantly campaign id"),
        ({"event_type": "email_bounced", "timestamp": "2026-11-22T12:00:00Z"}, "field campaign_id: missing"),
        ({"campaign_id": CID}, "field event_type: missing"),
        ({"event_type": "email_sent", "campaign_id": 12}, "field campaign_id: invalid"),
        ([{"event_type": "email_sent"}], "expected a JSON object"),
    ],
)
def test_bad_payloads_are_refused_with_the_field(payload: Payload, received_at: datetime, body: Any,
                                                 reason: str) -> None:
    raw = payload("instantly_bad_campaign_id.json") if body is None else json.dumps(body).encode()
    with pytest.raises(PayloadError, match=reason):
        normalize("instantly", raw, received_at=received_at)


# authentication --------------------------------------------------------------------------------------

SECRET = "instantly-webhook-secret-4d2c"
TOKEN = "shared-webhook-token-91ab"


def check(headers: dict[str, str] | None = None, query: dict[str, str] | None = None, *,
          secret: str | None = SECRET, token: str | None = TOKEN) -> tuple[bool, str, str]:
    request = WebhookRequest("instantly", CIMultiDict(headers or {}), query or {}, b"{}", token)
    result = authenticate(request, VendorConfig("instantly", {"webhook_secret": secret}))
    return result.ok, result.method, result.reason


def test_the_header_token_or_the_shared_token_opens_it() -> None:
    assert check({TOKEN_HEADER: SECRET})[:2] == (True, "header_token")
    assert check({TOKEN_HEADER.lower(): SECRET}, token=None)[:2] == (True, "header_token")
    assert check({"Authorization": f"Bearer {TOKEN}"})[:2] == (True, "token")
    assert check(query={"token": TOKEN}, secret=None)[:2] == (True, "token")


@pytest.mark.parametrize(
    ("headers", "query", "secret", "token", "reason"),
    [
        ({}, {}, None, None, ("no secret configured for instantly (set BOT_INSTANTLY_WEBHOOK_SECRET or "
                             "BOT_WEBHOOK_TOKEN)")),
        ({TOKEN_HEADER: SECRET}, {}, None, None, "no secret configured"),
        ({TOKEN_HEADER: "wrong"}, {}, SECRET, TOKEN, ("invalid X-Campaign-Guard-Token (does not match "
                                                     "BOT_INSTANTLY_WEBHOOK_SECRET)")),
        ({TOKEN_HEADER: TOKEN}, {}, SECRET, TOKEN, "invalid X-Campaign-Guard-Token"),   # a header is final
        ({TOKEN_HEADER: SECRET}, {}, None, TOKEN, "BOT_INSTANTLY_WEBHOOK_SECRET unset"),
        ({"Authorization": "Bearer wrong"}, {}, SECRET, TOKEN, "does not match BOT_WEBHOOK_TOKEN"),
        ({"Authorization": f"Bearer {SECRET}"}, {}, SECRET, None, "BOT_WEBHOOK_TOKEN unset"),
        ({}, {}, SECRET, TOKEN, "missing credentials"),
    ],
)
def test_refusals_name_the_setting(headers: dict[str, str], query: dict[str, str], secret: str | None,
                                   token: str | None, reason: str) -> None:
    ok, _, said = check(headers, query, secret=secret, token=token)
    assert not ok and reason in said
    assert SECRET not in said and TOKEN not in said
