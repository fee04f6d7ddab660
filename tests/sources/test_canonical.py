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


def run(body: object, received_at: datetime) -> list[Event]:
    return normalize("events", json.dumps(body).encode(), received_at=received_at)


def test_metrics_fixture(payload: Payload, received_at: datetime) -> None:
    [event] = normalize("events", payload("events_campaign_metrics.json"), received_at=received_at)
    assert event.id == "events:id:warehouse-2026-11-22T12:00Z-smartlead-1843021"
    assert (event.type, event.source, str(event.campaign)) == ("campaign.metrics", "events", "smartlead:1843021")
    assert event.data["bounce_rate"] == 0.0258
    assert event.routing_key == "events.campaign.metrics"


def test_batch_fixture_with_derived_and_given_ids(payload: Payload, received_at: datetime) -> None:
    first, second = normalize("events", payload("events_batch.json"), received_at=received_at)
    assert first.id.startswith("events:sha256:")
    assert first.occurred_at == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)  # +01:00 stored as UTC
    assert str(first.campaign) == "leadterra:camp_8Hq2Lx"
    assert second.id == "events:id:crm-bounce-88121"
    assert normalize("events", payload("events_batch.json"), received_at=received_at) == [first, second]


def test_list_body(received_at: datetime) -> None:
    events = run([BASE, {**BASE, "type": "email.sent"}], received_at)
    assert [e.type for e in events] == ["campaign.metrics", "email.sent"]
    assert events[0].id != events[1].id


def test_derived_id_ignores_representation_but_not_content(received_at: datetime) -> None:
    a = run(BASE, received_at)[0]
    b = run({**BASE, "campaign": {"vendor": "smartlead", "id": "1843021"},
             "occurred_at": "2026-11-22T13:00:00+01:00", "source": "events"}, received_at)[0]
    c = run({**BASE, "data": {"sent": 11}}, received_at)[0]
    assert a.id == b.id
    assert a.id != c.id


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
        ({k: v for k, v in BASE.items() if k != "occurred_at"}, "give `id` or `occurred_at`"),
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
