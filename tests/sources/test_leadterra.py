"""Leadterra normalizer: `{event, timestamp, data}` against tests/payloads/leadterra_*.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bot.errors import PayloadError
from bot.events import EVENT_TYPES, Event
from bot.sources import normalize
from bot.vendors.leadterra.webhooks import TYPES

Payload = Callable[[str], bytes]


def one(body: bytes, received_at: datetime) -> Event:
    events = normalize("leadterra", body, received_at=received_at)
    assert len(events) == 1
    return events[0]


@pytest.mark.parametrize(
    ("name", "event_type", "event_id"),
    [
        ("leadterra_message_sent.json", "email.sent", "leadterra:email.sent:msg_01JDAX7K3N4P"),
        ("leadterra_message_bounced.json", "email.bounced", "leadterra:email.bounced:msg_01JDAX7K3N4P"),
        ("leadterra_reply_received.json", "email.replied", "leadterra:email.replied:rep_01JDB2M4XK"),
    ],
)
def test_fixture_normalizes_to_expected_type_campaign_and_id(
    payload: Payload, received_at: datetime, name: str, event_type: str, event_id: str
) -> None:
    event = one(payload(name), received_at)
    assert (event.type, event.source, str(event.campaign), event.id) == (
        event_type, "leadterra", "leadterra:camp_8Hq2Lx", event_id)
    assert one(payload(name), received_at) == event


def test_mapping_targets_canonical_types() -> None:
    assert set(TYPES.values()) <= set(EVENT_TYPES)


def test_bounce_carries_type_and_reason(payload: Payload, received_at: datetime) -> None:
    event = one(payload("leadterra_message_bounced.json"), received_at)
    assert event.data["bounce_type"] == "hard"
    assert event.data["bounce_reason"].startswith("550 5.1.1")
    assert event.data["to_email"] == "maria.k@prospect-example.net"
    assert event.data["sender_account"] == "sa_204"
    assert event.data["sequence_number"] == 1
    assert event.occurred_at == datetime(2026, 11, 22, 9, 16, 40, tzinfo=UTC)


def test_sent_and_bounced_of_one_message_differ(payload: Payload, received_at: datetime) -> None:
    sent = one(payload("leadterra_message_sent.json"), received_at)
    bounced = one(payload("leadterra_message_bounced.json"), received_at)
    assert sent.data["message_id"] == bounced.data["message_id"]
    assert sent.id != bounced.id


def test_campaign_started_uses_epoch_ms_and_a_body_hash_id(payload: Payload, received_at: datetime) -> None:
    event = one(payload("leadterra_campaign_started.json"), received_at)
    assert event.type == "campaign.started"
    assert event.occurred_at == datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    assert event.id.startswith("leadterra:sha256:")
    assert event.data["campaign_status"] == "running"


def test_reply_id_identifies_each_reply(received_at: datetime) -> None:
    base = {"event": "reply.received", "timestamp": "2026-11-22T11:00:00Z",
            "data": {"campaignId": "camp_1", "messageId": "msg_1", "reply": {"id": "rep_1"}}}
    second = json.loads(json.dumps(base))
    second["data"]["reply"]["id"] = "rep_2"
    assert one(json.dumps(base).encode(), received_at).id != one(json.dumps(second).encode(), received_at).id


def test_soft_bounce_in_any_case(received_at: datetime) -> None:
    body = {"event": "message.bounced", "data": {"campaignId": "camp_1", "messageId": "m", "bounceType": "SOFT"}}
    assert one(json.dumps(body).encode(), received_at).data["bounce_type"] == "soft"


def test_unknown_event_is_vendor_other(received_at: datetime) -> None:
    body = {"event": "message.opened", "timestamp": "2026-11-22T11:00:00Z", "data": {"messageId": "m"}}
    event = one(json.dumps(body).encode(), received_at)
    assert (event.type, event.campaign, event.data["vendor_type"]) == ("vendor.other", None, "message.opened")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"event": "message.sent", "data": {"campaignId": "123"}}, "field data.campaignId: invalid leadterra"),
        ({"event": "message.sent", "data": {"campaignId": 123}}, "field data.campaignId: invalid leadterra"),
        ({"event": "message.sent", "data": {"messageId": "m"}}, "field data.campaignId: missing"),
        ({"event": "message.sent", "data": []}, "field data: expected a JSON object"),
        ({"event": "message.sent"}, "field data: expected a JSON object"),
        ({"data": {"campaignId": "camp_1"}}, "field event: missing"),
        (["message.sent"], "expected a JSON object"),
    ],
)
def test_unusable_bodies_raise_payload_error(body: object, reason: str, received_at: datetime) -> None:
    with pytest.raises(PayloadError, match=reason):
        normalize("leadterra", json.dumps(body).encode(), received_at=received_at)


def test_bad_campaign_fixture_is_refused(payload: Payload, received_at: datetime) -> None:
    with pytest.raises(PayloadError, match="invalid leadterra campaign id"):
        normalize("leadterra", payload("leadterra_bad_campaign_id.json"), received_at=received_at)
