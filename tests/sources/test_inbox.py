"""Inbox normalizer: `{id, seq, teamId, type, timestamp, version, data}` against tests/payloads/inbox_*.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bot.errors import PayloadError
from bot.events import EVENT_TYPES, Event
from bot.sources import normalize
from bot.vendors.inbox.webhooks import TYPES

Payload = Callable[[str], bytes]


def one(body: bytes, received_at: datetime) -> Event:
    events = normalize("inbox", body, received_at=received_at)
    assert len(events) == 1
    return events[0]


@pytest.mark.parametrize(
    ("name", "event_type", "event_id"),
    [
        ("inbox_campaign_paused_system.json", "campaign.paused", "inbox:id:cm3x9k2l70001qz8v5t1h4d2e"),
        ("inbox_campaign_paused_user.json", "campaign.paused", "inbox:id:cm3x9m7q20004qz8vbx9k1c6a"),
        ("inbox_campaign_started.json", "campaign.started", "inbox:id:cm3w1a8b30000qz8v2r6y0n9f"),
        ("inbox_target_contacted.json", "vendor.other", "inbox:id:cm3x9p1d50007qz8vh2m4t8s3"),
    ],
)
def test_fixture_normalizes_to_expected_type_campaign_and_id(
    payload: Payload, received_at: datetime, name: str, event_type: str, event_id: str
) -> None:
    event = one(payload(name), received_at)
    assert (event.type, event.source, str(event.campaign), event.id) == (
        event_type, "inbox", "inbox:usdjpdql3f90seqk13rwuo7z", event_id)
    assert one(payload(name), received_at) == event


def test_mapping_targets_canonical_types() -> None:
    assert set(TYPES.values()) <= set(EVENT_TYPES)


def test_system_pause_is_recorded_with_reason_seq_and_counts(payload: Payload, received_at: datetime) -> None:
    event = one(payload("inbox_campaign_paused_system.json"), received_at)
    assert event.data["by"] == "system"
    assert event.data["reason"] == "account_link_disconnected"
    assert event.data["seq"] == 18342
    assert event.data["team_id"] == "t8x2k9w4q1z7m3n5"
    assert event.data["campaign_status"] == "paused"
    assert (event.data["contacted_count"], event.data["replies_count"]) == (640, 41)
    assert event.occurred_at == datetime(2026, 11, 22, 12, 40, 19, 512000, tzinfo=UTC)


def test_user_pause_reads_actor_object_and_epoch_ms(payload: Payload, received_at: datetime) -> None:
    event = one(payload("inbox_campaign_paused_user.json"), received_at)
    assert event.data["by"] == "user"
    assert event.occurred_at == datetime(2026, 11, 22, 13, 0, tzinfo=UTC)


def test_pause_without_actor_leaves_by_unset(received_at: datetime) -> None:
    body = {"id": "e1", "type": "campaign.paused", "data": {"campaign": {"id": "abc", "status": "paused"}}}
    assert "by" not in one(json.dumps(body).encode(), received_at).data


def test_resumed_is_a_start_marked_resumed(received_at: datetime) -> None:
    body = {"id": "e2", "type": "campaign.resumed", "data": {"campaign": {"id": "abc", "status": "active"}}}
    event = one(json.dumps(body).encode(), received_at)
    assert (event.type, event.data["resumed"]) == ("campaign.started", True)


def test_completed(received_at: datetime) -> None:
    body = {"id": "e3", "type": "campaign.completed", "data": {"campaign": {"id": "abc", "status": "completed"}}}
    assert one(json.dumps(body).encode(), received_at).type == "campaign.completed"


def test_dm_target_events_are_vendor_other_not_email(payload: Payload, received_at: datetime) -> None:
    event = one(payload("inbox_target_contacted.json"), received_at)
    assert event.type == "vendor.other"
    assert event.data["vendor_type"] == "target.contacted"
    assert event.data["target_id"] == "tg9w2e4r6t"


def test_distinct_event_ids_give_distinct_ids(received_at: datetime) -> None:
    body = {"id": "e1", "type": "campaign.paused", "data": {"campaign": {"id": "abc"}}}
    first = one(json.dumps(body).encode(), received_at)
    second = one(json.dumps({**body, "id": "e2"}).encode(), received_at)
    assert first.id != second.id


def test_missing_event_id_falls_back_to_a_body_hash(received_at: datetime) -> None:
    body = json.dumps({"type": "campaign.started", "data": {"campaign": {"id": "abc"}}}).encode()
    event = one(body, received_at)
    assert event.id.startswith("inbox:sha256:") and one(body, received_at).id == event.id


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"id": "e", "type": "campaign.paused", "data": {"campaign": {"id": "ABC-1"}}},
         "field data.campaign.id: invalid inbox campaign id"),
        ({"id": "e", "type": "campaign.paused", "data": "paused"}, "field data: expected a JSON object"),
        ({"id": "e", "data": {}}, "field type: missing"),
    ],
)
def test_unusable_bodies_raise_payload_error(body: object, reason: str, received_at: datetime) -> None:
    with pytest.raises(PayloadError, match=reason):
        normalize("inbox", json.dumps(body).encode(), received_at=received_at)


def test_campaign_event_without_campaign_is_refused(payload: Payload, received_at: datetime) -> None:
    with pytest.raises(PayloadError, match=r"field data.campaign.id: missing \(required for campaign.paused\)"):
        normalize("inbox", payload("inbox_missing_campaign.json"), received_at=received_at)
