"""Smartlead normalizer: formats A, B, legacy and C against tests/payloads/smartlead_*.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bot.errors import PayloadError
from bot.events import EVENT_TYPES, CampaignRef, Event
from bot.sources import normalize
from bot.vendors.smartlead.webhooks import DOTTED_TYPES, FLAT_TYPES

Payload = Callable[[str], bytes]


def one(body: bytes, received_at: datetime) -> Event:
    events = normalize("smartlead", body, received_at=received_at)
    assert len(events) == 1
    return events[0]


@pytest.mark.parametrize(
    ("name", "event_type", "campaign", "event_id"),
    [
        ("smartlead_a_email_sent.json", "email.sent", "smartlead:1843021",
         "smartlead:email.sent:<CAF7a1b2c3d4e5f6.9001@outreach-example.com>"),
        ("smartlead_a_email_bounce.json", "email.bounced", "smartlead:1843021",
         "smartlead:email.bounced:<CAF7a1b2c3d4e5f6.9001@outreach-example.com>"),
        ("smartlead_b_email_bounced.json", "email.bounced", "smartlead:1843021",
         "smartlead:email.bounced:<CAF7b9c8d7e6f5a4.9002@outreach-example.com>"),
        ("smartlead_b_email_replied.json", "email.replied", "smartlead:1843021",
         "smartlead:email.replied:2026-11-22T10:10:00+00:00|<CAF7c1c2c3c4c5c6.9003@outreach-example.com>"),
        ("smartlead_legacy_reply.json", "email.replied", "smartlead:1843021",
         "smartlead:email.replied:<BN8PR11MB3601.reply.4471@prospect-example.co>"),
        ("smartlead_legacy_category_updated.json", "lead.category_updated", "smartlead:1843021",
         "smartlead:lead.category_updated:2026-11-22T14:01:00+00:00|144029337|1"),
        ("smartlead_c_account_disconnected.json", "account.disconnected", None, "smartlead:id:evt_2f8c1e9a7b6d4c3e"),
        ("smartlead_c_bounce_threshold.json", "campaign.bounce_threshold", "smartlead:1843021",
         "smartlead:id:evt_7d1e0b4a9c2f8e6d"),
        ("smartlead_c_email_sent.json", "email.sent", "smartlead:1843021", "smartlead:id:evt_0a9b8c7d6e5f4a3b"),
    ],
)
def test_fixture_normalizes_to_expected_type_campaign_and_id(
    payload: Payload, received_at: datetime, name: str, event_type: str, campaign: str | None, event_id: str
) -> None:
    event = one(payload(name), received_at)
    assert event.type == event_type
    assert event.source == "smartlead"
    assert (str(event.campaign) if event.campaign else None) == campaign
    assert event.id == event_id
    assert event.routing_key == f"smartlead.{event_type}"
    assert one(payload(name), received_at) == event  # stable across calls


def test_every_mapped_vendor_type_is_a_canonical_type() -> None:
    assert set(FLAT_TYPES.values()) | set(DOTTED_TYPES.values()) <= set(EVENT_TYPES)


def test_sent_and_bounce_of_one_message_have_different_ids(payload: Payload, received_at: datetime) -> None:
    sent = one(payload("smartlead_a_email_sent.json"), received_at)
    bounced = one(payload("smartlead_a_email_bounce.json"), received_at)
    assert sent.data["message_id"] == bounced.data["message_id"]
    assert sent.id != bounced.id


def test_first_email_sent_dedupes_with_email_sent_of_the_same_message(received_at: datetime) -> None:
    base = {"campaign_id": 7, "message_id": "<m1@x>", "time_sent": "2026-11-22T09:00:00Z"}
    sent = one(json.dumps({**base, "event_type": "EMAIL_SENT"}).encode(), received_at)
    first = one(json.dumps({**base, "event_type": "FIRST_EMAIL_SENT"}).encode(), received_at)
    assert sent.id == first.id
    assert first.data["first_email"] is True


def test_format_a_fields_land_in_data(payload: Payload, received_at: datetime) -> None:
    event = one(payload("smartlead_a_email_bounce.json"), received_at)
    assert event.occurred_at == datetime(2026, 11, 22, 9, 14, 39, tzinfo=UTC)
    assert event.data["to_email"] == "jordan.lee@prospect-example.org"
    assert event.data["from_email"] == "alex@outreach-example.com"
    assert event.data["sequence_number"] == 1
    assert event.data["bounce_type"] == "hard"
    assert event.data["vendor_type"] == "EMAIL_BOUNCE"


def test_format_b_reads_nested_lead_and_email(payload: Payload, received_at: datetime) -> None:
    event = one(payload("smartlead_b_email_bounced.json"), received_at)
    assert event.data["to_email"] == "sam.ortiz@prospect-example.org"
    assert event.data["message_id"] == "<CAF7b9c8d7e6f5a4.9002@outreach-example.com>"
    assert event.data["email_account_id"] == "310442"
    assert "bounce_type" not in event.data  # not in the payload: not invented


def test_epoch_seconds_timestamp(payload: Payload, received_at: datetime) -> None:
    event = one(payload("smartlead_b_email_replied.json"), received_at)
    assert event.occurred_at == datetime(2026, 11, 22, 10, 10, tzinfo=UTC)


def test_legacy_reply_keeps_campaign_status_and_never_the_secret(payload: Payload, received_at: datetime) -> None:
    event = one(payload("smartlead_legacy_reply.json"), received_at)
    assert event.data["campaign_status"] == "ACTIVE"
    assert event.data["reply_message_id"] == "<BN8PR11MB3601.reply.4471@prospect-example.co>"
    assert event.data["message_id"] == "<CAF7e1e2e3e4e5e6.9005@outreach-example.com>"
    assert "fake-smartlead-secret-0001" not in event.model_dump_json()


def test_secret_key_does_not_change_a_hashed_id(received_at: datetime) -> None:
    body = {"event_type": "LEAD_UNSUBSCRIBED", "campaign_id": 5, "lead_email": "a@b.c"}
    with_secret = one(json.dumps({**body, "secret_key": "s1"}).encode(), received_at)
    other_secret = one(json.dumps({**body, "secret_key": "s2"}).encode(), received_at)
    assert with_secret.type == "lead.unsubscribed"
    assert with_secret.id == other_secret.id
    assert with_secret.id.startswith("smartlead:sha256:")


def test_format_c_disconnect_carries_account_and_email(payload: Payload, received_at: datetime) -> None:
    event = one(payload("smartlead_c_account_disconnected.json"), received_at)
    assert event.campaign is None
    assert event.data["account"] == "310442"
    assert event.data["email"] == "alex@outreach-example.com"
    assert event.data["reason"].startswith("SMTP authentication failed")


def test_format_c_bounce_threshold_reads_percent_strings(payload: Payload, received_at: datetime) -> None:
    event = one(payload("smartlead_c_bounce_threshold.json"), received_at)
    assert event.campaign == CampaignRef(vendor="smartlead", id="1843021")
    assert event.data["bounce_rate"] == 5.4
    assert event.data["threshold"] == 5
    assert event.data["campaign_status"] == "PAUSED"
    assert (event.data["bounced"], event.data["sent"]) == (27, 500)


def test_format_c_retry_without_id_dedupes_despite_new_attempt(received_at: datetime) -> None:
    body = {"type": "email.bounced", "created_at": "2026-11-22T09:00:00Z",
            "data": {"campaign_id": 9, "to_email": "a@b.c"}, "meta": {"attempt": 1}}
    first = one(json.dumps(body).encode(), received_at)
    retry = one(json.dumps({**body, "meta": {"attempt": 2}}).encode(), received_at)
    assert first.id == retry.id


def test_unknown_type_is_accepted_as_vendor_other(payload: Payload, received_at: datetime) -> None:
    event = one(payload("smartlead_unknown_type.json"), received_at)
    assert event.type == "vendor.other"
    assert event.data["vendor_type"] == "LEAD_MOVED_TO_SUBSEQUENCE"
    assert event.campaign is not None


def test_unknown_dotted_type_without_campaign_is_accepted(received_at: datetime) -> None:
    body = {"id": "evt_1", "type": "email.account.warmup_paused", "data": {"account_id": 1}}
    event = one(json.dumps(body).encode(), received_at)
    assert (event.type, event.campaign, event.data["vendor_type"]) == (
        "vendor.other", None, "email.account.warmup_paused")


def test_key_order_and_whitespace_do_not_change_a_hashed_id(received_at: datetime) -> None:
    a = b'{"event_type": "LEAD_UNSUBSCRIBED", "campaign_id": 5, "lead_email": "a@b.c"}'
    b = b'{"lead_email":"a@b.c","campaign_id":5,\n "event_type":"LEAD_UNSUBSCRIBED"}'
    assert one(a, received_at).id == one(b, received_at).id


def test_missing_timestamp_falls_back_to_received_at(received_at: datetime) -> None:
    event = one(b'{"event_type": "EMAIL_SENT", "campaign_id": 5, "message_id": "<m@x>"}', received_at)
    assert event.occurred_at == received_at


def test_long_message_ids_are_hashed_to_fit(received_at: datetime) -> None:
    body = {"event_type": "EMAIL_SENT", "campaign_id": 5, "message_id": "<" + "x" * 400 + "@y>"}
    event = one(json.dumps(body).encode(), received_at)
    assert len(event.id) <= 200
    assert event.id.startswith("smartlead:email.sent:sha256:")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event_type": "EMAIL_SENT", "campaign_id": "abc"}', "field campaign_id: invalid smartlead campaign id"),
        (b'{"event_type": "EMAIL_SENT", "campaign_id": 0}', "field campaign_id"),
        (b'{"event_type": "EMAIL_SENT", "campaign_id": true}', "field campaign_id"),
        (b'{"event_type": "EMAIL_SENT", "campaign_id": 1.5}', "field campaign_id"),
        (b'{"event_type": "EMAIL_SENT"}', "field campaign_id: missing"),
        (b'{"type": "email.bounced", "data": {"campaign_id": "1 OR 1"}}', "field data.campaign_id"),
        (b'{"type": "email.bounced", "data": {}}', "field data.campaign_id: missing"),
        (b"[]", "expected a JSON object"),
        (b'"EMAIL_SENT"', "expected a JSON object"),
        (b"{", "body is not valid JSON"),
        (b"", "body is empty"),
        (b'{"campaign_id": NaN, "event_type": "EMAIL_SENT"}', "body is not valid JSON"),
        (b"\xff\xfe\x00garbage", "body is not valid JSON"),
    ],
)
def test_unusable_bodies_raise_payload_error_with_reason(body: bytes, reason: str, received_at: datetime) -> None:
    with pytest.raises(PayloadError, match=reason.replace("(", r"\(")):
        normalize("smartlead", body, received_at=received_at)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("smartlead_bad_campaign_id.json", "field campaign_id: invalid smartlead campaign id"),
        ("smartlead_no_type.json", "no `event_type`, `event` or dot-style `type`"),
        ("malformed_truncated.json", "body is not valid JSON"),
        ("malformed_array.json", "expected a JSON object, got a JSON array"),
    ],
)
def test_malformed_fixtures_are_refused(payload: Payload, received_at: datetime, name: str, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        normalize("smartlead", payload(name), received_at=received_at)


def test_deeply_nested_json_is_a_payload_error(received_at: datetime) -> None:
    with pytest.raises(PayloadError, match="not valid JSON"):
        normalize("smartlead", b"[" * 100_000 + b"]" * 100_000, received_at=received_at)


def test_unknown_source_is_a_payload_error(received_at: datetime) -> None:
    with pytest.raises(PayloadError, match="unknown source"):
        normalize("mailchimp", b"{}", received_at=received_at)
