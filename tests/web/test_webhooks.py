"""POST /webhooks/<source>: 202 only after every publish; 401/400/413/404/503 publish nothing claimed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from bot.errors import BrokerUnavailable
from bot.events import Event
from bot.metrics import REGISTRY
from tests.web.conftest import (
    SMARTLEAD_SECRET,
    TOKEN,
    FakeBroker,
    MakeClient,
    bearer,
    leadterra_headers,
    smartlead_headers,
)

Payload = Callable[[str], bytes]


def count(source: str, status: int) -> float:
    value = REGISTRY.get_sample_value("campaign_guard_webhooks_total", {"source": source, "status": str(status)})
    return value or 0.0


def assert_no_secret_logged(logs: list[dict[str, Any]]) -> None:
    text = json.dumps(logs, default=str)
    assert TOKEN not in text and SMARTLEAD_SECRET not in text


@pytest.mark.parametrize(
    ("source", "name", "sign"),
    [
        ("smartlead", "smartlead_c_bounce_threshold.json", smartlead_headers),
        ("smartlead", "smartlead_a_email_bounce.json", lambda body: bearer()),
        ("smartlead", "smartlead_legacy_reply.json", lambda body: {}),  # body secret_key
        ("leadterra", "leadterra_message_bounced.json", leadterra_headers),
        ("inbox", "inbox_campaign_paused_system.json", lambda body: bearer()),
        ("events", "events_campaign_metrics.json", lambda body: bearer()),
    ],
)
async def test_signed_webhook_is_published_then_accepted(
    make_client: MakeClient, broker: FakeBroker, payload: Payload, logs: list[dict[str, Any]],
    source: str, name: str, sign: Callable[[bytes], dict[str, str]],
) -> None:
    client = await make_client()
    body = payload(name)
    before = count(source, 202)
    response = await client.post(f"/webhooks/{source}", data=body, headers=sign(body))
    assert response.status == 202, await response.text()
    answer = await response.json()
    assert answer["accepted"] == 1
    [published] = broker.published
    assert answer["ids"] == [published.message_id]
    event = Event.model_validate_json(published.body)
    assert (event.id, event.source, published.routing_key) == (published.message_id, source, event.routing_key)
    assert count(source, 202) == before + 1
    accepted = [line for line in logs if line["event"] == "webhook.accepted"]
    assert accepted and accepted[-1]["source"] == source and accepted[-1]["event_ids"] == answer["ids"]
    assert_no_secret_logged(logs)


async def test_query_token_works(make_client: MakeClient, broker: FakeBroker, payload: Payload) -> None:
    client = await make_client()
    response = await client.post("/webhooks/inbox", params={"token": TOKEN},
                                 data=payload("inbox_campaign_started.json"))
    assert response.status == 202
    assert len(broker.published) == 1


async def test_batch_of_canonical_events_publishes_each(
    make_client: MakeClient, broker: FakeBroker, payload: Payload
) -> None:
    client = await make_client()
    response = await client.post("/webhooks/events", data=payload("events_batch.json"), headers=bearer())
    answer = await response.json()
    assert response.status == 202
    assert answer["accepted"] == 2
    assert answer["ids"] == [p.message_id for p in broker.published]


COMPLAINT = json.dumps({"type": "email.complained", "campaign": "smartlead:1843021"}).encode()


async def test_events_without_id_or_key_are_distinct_per_post(make_client: MakeClient, broker: FakeBroker) -> None:
    """Two identical complaints in the same second are two events (the worker dedupes by event id)."""
    client = await make_client()
    answers = [await (await client.post("/webhooks/events", data=COMPLAINT, headers=bearer())).json()
               for _ in range(2)]
    first, second = (answer["ids"][0] for answer in answers)
    assert first != second and first.startswith("events:post:") and second.startswith("events:post:")
    assert [p.message_id for p in broker.published] == [first, second]


async def test_idempotency_key_makes_a_retry_a_duplicate(make_client: MakeClient, broker: FakeBroker) -> None:
    client = await make_client()
    headers = {**bearer(), "Idempotency-Key": "crm-complaint-42"}
    for _ in range(2):
        response = await client.post("/webhooks/events", data=COMPLAINT, headers=headers)
        assert response.status == 202
        assert (await response.json())["ids"] == ["events:key:crm-complaint-42"]
    assert [p.message_id for p in broker.published] == ["events:key:crm-complaint-42"] * 2   # deduped by the worker
    other = await client.post("/webhooks/events", data=COMPLAINT, headers={**bearer(), "Idempotency-Key": "43"})
    assert (await other.json())["ids"] == ["events:key:43"]
    own_id = json.dumps({"id": "c-1", "type": "email.complained", "campaign": "smartlead:1843021"}).encode()
    response = await client.post("/webhooks/events", data=own_id, headers={**bearer(), "Idempotency-Key": "44"})
    assert (await response.json())["ids"] == ["events:id:c-1"]          # the event's own id comes first


async def test_an_empty_idempotency_key_is_refused(make_client: MakeClient, broker: FakeBroker) -> None:
    client = await make_client()
    response = await client.post("/webhooks/events", data=COMPLAINT, headers={**bearer(), "Idempotency-Key": " "})
    assert response.status == 400
    assert "Idempotency-Key" in (await response.json())["error"]
    assert broker.published == []


async def test_redelivery_publishes_the_same_id(make_client: MakeClient, broker: FakeBroker, payload: Payload) -> None:
    client = await make_client()
    body = payload("leadterra_message_sent.json")
    for _ in range(2):
        assert (await client.post("/webhooks/leadterra", data=body, headers=leadterra_headers(body))).status == 202
    assert broker.published[0].message_id == broker.published[1].message_id


@pytest.mark.parametrize(
    ("source", "headers", "params", "settings", "reason"),
    [
        ("smartlead", {"X-Smartlead-Signature": "sha256=" + "0" * 64}, {}, {}, "invalid X-Smartlead-Signature"),
        ("smartlead", {}, {}, {}, "missing credentials"),
        ("smartlead", {}, {"token": "wrong"}, {}, "invalid token"),
        ("smartlead", {}, {"token": TOKEN}, {"smartlead_webhook_secret": None, "webhook_token": None},
         "no secret configured for smartlead"),
        ("leadterra", {"X-Leadterra-Signature": "f" * 64}, {}, {}, "invalid X-Leadterra-Signature"),
        ("leadterra", {}, {"token": TOKEN}, {}, "missing X-Leadterra-Signature"),
        ("leadterra", "signed", {}, {"leadterra_webhook_secret": None}, "no secret configured for leadterra"),
        ("inbox", {"Authorization": "Bearer wrong"}, {}, {}, "invalid token"),
        ("inbox", {}, {}, {}, "missing token"),
        ("inbox", {}, {"token": TOKEN}, {"webhook_token": None}, "no secret configured for inbox"),
        ("events", {"Authorization": "Bearer wrong"}, {}, {}, "invalid token"),
    ],
)
async def test_unauthenticated_requests_get_401_and_publish_nothing(
    make_client: MakeClient, broker: FakeBroker, logs: list[dict[str, Any]],
    source: str, headers: Any, params: dict[str, str], settings: dict[str, Any], reason: str,
) -> None:
    client = await make_client(**settings)
    body = json.dumps({"event": "message.sent", "data": {"campaignId": "camp_1", "messageId": "m1"}}).encode()
    if headers == "signed":
        headers = leadterra_headers(body)
    before = count(source, 401)
    response = await client.post(f"/webhooks/{source}", data=body, headers=headers, params=params)
    assert response.status == 401
    error = (await response.json())["error"]
    assert error.startswith(reason)
    assert any(setting in error for setting in ("BOT_WEBHOOK_TOKEN", "BOT_SMARTLEAD_WEBHOOK_SECRET",
                                                "BOT_LEADTERRA_WEBHOOK_SECRET")), error
    assert broker.published == []
    assert not broker.entered.is_set()
    assert count(source, 401) == before + 1
    rejected = [line for line in logs if line["event"] == "webhook.rejected"]
    assert rejected[-1]["source"] == source and rejected[-1]["status"] == 401
    assert rejected[-1]["log_level"] == "warning"
    assert_no_secret_logged(logs)


async def test_forged_body_with_a_real_signature_of_another_body_is_refused(
    make_client: MakeClient, broker: FakeBroker, payload: Payload
) -> None:
    client = await make_client()
    genuine = payload("smartlead_c_account_disconnected.json")
    forged = genuine.replace(b"310442", b"999999")
    response = await client.post("/webhooks/smartlead", data=forged, headers=smartlead_headers(genuine))
    assert response.status == 401
    assert broker.published == []


@pytest.mark.parametrize(
    ("source", "body", "reason"),
    [
        ("inbox", b"{not json", "body is not valid JSON"),
        ("inbox", b"[1, 2]", "expected a JSON object"),
        ("inbox", b'{"id": "e", "type": "campaign.paused", "data": {"campaign": {"id": "BAD-ID"}}}',
         "field data.campaign.id: invalid inbox campaign id"),
        ("events", b'{"type": "campaign.metrics", "source": "smartlead", "occurred_at": "2026-11-22T12:00:00Z"}',
         'field source: must be "events"'),
        ("smartlead", b'{"event_type": "EMAIL_SENT", "campaign_id": "12ab"}', "field campaign_id"),
    ],
)
async def test_unusable_bodies_get_400_with_the_reason(
    make_client: MakeClient, broker: FakeBroker, source: str, body: bytes, reason: str
) -> None:
    client = await make_client()
    response = await client.post(f"/webhooks/{source}", data=body, headers=bearer())
    assert response.status == 400
    assert (await response.json())["error"].startswith(reason)
    assert broker.published == []


async def test_malformed_body_from_an_unauthenticated_sender_is_401_not_400(
    make_client: MakeClient, payload: Payload
) -> None:
    client = await make_client()
    response = await client.post("/webhooks/smartlead", data=payload("malformed_truncated.json"))
    assert response.status == 401


async def test_body_over_the_limit_is_413(make_client: MakeClient, broker: FakeBroker) -> None:
    client = await make_client(max_body_bytes=1024)
    body = json.dumps({"type": "campaign.metrics", "data": {"pad": "x" * 2000}}).encode()
    response = await client.post("/webhooks/events", data=body, headers=bearer())
    assert response.status == 413
    assert (await response.json())["error"] == "body larger than 1024 bytes"
    assert broker.published == []


async def test_chunked_body_over_the_limit_is_413(make_client: MakeClient, broker: FakeBroker) -> None:
    client = await make_client(max_body_bytes=1024)

    async def chunks() -> Any:
        for _ in range(4):
            yield b"x" * 512

    response = await client.post("/webhooks/events", data=chunks(), headers=bearer())
    assert response.status == 413
    assert (await response.json())["error"] == "body larger than 1024 bytes"
    assert broker.published == []


async def test_unknown_source_is_404_before_the_body_is_read(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=1024)
    response = await client.post("/webhooks/mailchimp", data=b"x" * 5000, headers=bearer())
    assert response.status == 404
    assert await response.json() == {"error": "Not Found"}


async def test_wrong_method_is_a_json_405(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/webhooks/smartlead")
    assert response.status == 405
    assert await response.json() == {"error": "Method Not Allowed"}
    assert "POST" in response.headers["Allow"]


async def test_broker_unavailable_is_503_with_retry_after_and_no_acceptance(
    make_client: MakeClient, broker: FakeBroker, payload: Payload, logs: list[dict[str, Any]]
) -> None:
    client = await make_client()
    broker.error = BrokerUnavailable("publish not confirmed")
    before = count("inbox", 503)
    response = await client.post("/webhooks/inbox", data=payload("inbox_campaign_started.json"), headers=bearer())
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    answer = await response.json()
    assert "accepted" not in answer and "ids" not in answer
    assert answer["error"] == "broker unavailable; retry later"
    assert broker.published == []
    assert count("inbox", 503) == before + 1
    assert not [line for line in logs if line["event"] == "webhook.accepted"]


async def test_failure_midway_through_a_batch_claims_nothing(
    make_client: MakeClient, broker: FakeBroker, payload: Payload
) -> None:
    client = await make_client()
    broker.error, broker.fail_after = BrokerUnavailable("nack"), 1
    response = await client.post("/webhooks/events", data=payload("events_batch.json"), headers=bearer())
    assert response.status == 503
    assert "accepted" not in await response.json()
    assert len(broker.published) == 1  # redelivery republishes it under the same id: deduped downstream


async def test_publish_that_never_confirms_times_out_to_503(
    make_client: MakeClient, broker: FakeBroker, payload: Payload
) -> None:
    client = await make_client(publish_timeout=0.05)
    broker.gate = asyncio.Event()  # never set
    response = await client.post("/webhooks/inbox", data=payload("inbox_campaign_started.json"), headers=bearer())
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert (await response.json())["error"] == "broker did not confirm in time; retry later"


async def test_answer_waits_for_the_publish_confirmation(
    make_client: MakeClient, broker: FakeBroker, payload: Payload
) -> None:
    client = await make_client()
    broker.gate = asyncio.Event()
    request = asyncio.ensure_future(
        client.post("/webhooks/inbox", data=payload("inbox_campaign_started.json"), headers=bearer())
    )
    await asyncio.wait_for(broker.entered.wait(), timeout=5)
    assert not request.done()
    assert broker.published == []
    broker.gate.set()
    response = await asyncio.wait_for(request, timeout=5)
    assert response.status == 202
    assert len(broker.published) == 1


async def test_unexpected_error_is_a_bare_json_500(make_client: MakeClient, broker: FakeBroker, payload: Payload,
                                                   logs: list[dict[str, Any]]) -> None:
    client = await make_client()
    broker.error = RuntimeError("internal detail: /var/lib/secret-path")
    response = await client.post("/webhooks/inbox", data=payload("inbox_campaign_started.json"), headers=bearer())
    assert response.status == 500
    assert await response.json() == {"error": "internal server error"}
    assert any(line["event"] == "http.failed" for line in logs)
