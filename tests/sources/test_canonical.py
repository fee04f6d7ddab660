"""Canonical `/webhooks/events` bodies: one event, a list, or {"events": [...]}, validated by Event."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bot.errors import PayloadError
from bot.events import Event
from bot.sources import normalize
from bot.sources.canonical import MAX_EVENTS

Payload = Callable[[str], bytes]
BASE = {"type": "campaign.metrics", "campaign": "smartlead:1843021", "occurred_at": "2026-11-22T12:00:00Z",
        "data": {"sent": 10}}


def run(body: object, received_at: datetime, *, key: str | None = None, request_id: str = "r1") -> list[Event]:
    return normalize("events", json.dumps(body).encode(), received_at=received_at, idempotency_key=key,
                     request_id=request_id)


def test_metrics_fixture(payload: Payload, received_at: datetime) -> None:
    [event] = normalize("events", payload("events_campaign_metrics.json"), received_at=received_at)  # has an id
    assert event.id == "events:id:warehouse-2026-11-22T12:00Z-smartlead-1843021"
    assert (event.type, event.source, str(event.campaign)) == ("campaign.metrics", "events", "smartlead:1843021")
    assert event.data["bounce_rate"] == 0.0258
    assert event.routing_key == "events.campaign.metrics"


def test_batch_fixture_with_request_scoped_and_given_ids(payload: Payload, received_at: datetime) -> None:
    first, second = normalize("events", payload("events_batch.json"), received_at=received_at, request_id="abc")
    assert first.id == "events:post:abc#0"
    assert first.occurred_at == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)  # +01:00 stored as UTC
    assert str(first.campaign) == "leadterra:camp_8Hq2Lx"
    assert second.id == "events:id:crm-bounce-88121"
    again = normalize("events", payload("events_batch.json"), received_at=received_at, request_id="abd")
    assert again[0].id != first.id and again[1] == second             # a new POST: a new event, unless an id


def test_list_body(received_at: datetime) -> None:
    events = run([BASE, {**BASE, "type": "email.sent"}], received_at)
    assert [e.type for e in events] == ["campaign.metrics", "email.sent"]
    assert events[0].id != events[1].id


def test_identical_bodies_without_id_or_key_are_distinct_events(received_at: datetime) -> None:
    """Two complaints with the same body in the same second are two facts: never counted once."""
    complaint = {"type": "email.complained", "campaign": "smartlead:1843021"}
    [a] = run(complaint, received_at, request_id="1")
    [b] = run(complaint, received_at, request_id="2")
    assert a.id == "events:post:1" and b.id == "events:post:2"
    assert a.model_dump(exclude={"id"}) == b.model_dump(exclude={"id"})


def test_idempotency_key_identifies_events_without_id(received_at: datetime) -> None:
    [a] = run(BASE, received_at, key="crm-42", request_id="1")
    [b] = run(BASE, received_at, key="crm-42", request_id="2")          # a retry of the same request
    assert a.id == b.id == "events:key:crm-42"
    batch = run([BASE, BASE, {**BASE, "id": "own"}], received_at, key="crm-43")
    assert [e.id for e in batch] == ["events:key:crm-43#0", "events:key:crm-43#1", "events:id:own"]
    [long] = run(BASE, received_at, key="k" * 500)
    assert long.id.startswith("events:key:sha256:") and len(long.id) <= 200


def test_an_item_without_id_needs_a_key_or_a_request_id(received_at: datetime) -> None:
    with pytest.raises(ValueError, match="idempotency key or a request id"):
        normalize("events", json.dumps(BASE).encode(), received_at=received_at)
    [event] = normalize("events", json.dumps({**BASE, "id": "x"}).encode(), received_at=received_at)
    assert event.id == "events:id:x"


def test_given_id_without_time_uses_received_at(received_at: datetime) -> None:
    [event] = run({"id": "x-1", "type": "email.bounced", "campaign": "inbox:abc"}, received_at)
    assert (event.id, event.occurred_at) == ("events:id:x-1", received_at)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**BASE, "source": "smartlead"}, 'field source: must be "events"'),
        ({**BASE, "type": "email.exploded"}, "field type: unknown event type 'email.exploded'"),
        ({**BASE, "campaign": "smartlead:abc"}, "field campaign"),
        ({**BASE, "campaign": "mailchimp:1"}, "field campaign"),
        ({**BASE, "occurred_at": "2026-11-22T12:00:00"}, "field occurred_at"),
        ({**BASE, "surprise": 1}, "field surprise"),
        ({**BASE, "id": ""}, "field id: expected a non-empty string"),
        ({k: v for k, v in BASE.items() if k != "type"}, "field type"),
        ([BASE, {**BASE, "type": "nope.nope"}], r"field events\[1\].type: unknown event type"),
        ([BASE, "x"], r"events\[1\].expected a JSON object"),
        ([], "expected at least one event"),
        ({"events": {}}, "field events: expected a JSON array"),
        ({"events": [BASE], "other": 1}, "no other fields"),
        ("hello", "expected a JSON object"),
    ],
)
def test_invalid_bodies_raise_payload_error_with_reason(body: object, reason: str, received_at: datetime) -> None:
    with pytest.raises(PayloadError, match=reason):
        run(body, received_at)


def test_wrong_source_fixture(payload: Payload, received_at: datetime) -> None:
    with pytest.raises(PayloadError, match='must be "events"'):
        normalize("events", payload("events_wrong_source.json"), received_at=received_at)


def test_too_many_events(received_at: datetime) -> None:
    with pytest.raises(PayloadError, match="too many events"):
        run([BASE] * (MAX_EVENTS + 1), received_at)
