"""POST /webhooks/alertmanager and /webhooks/grafana: token or signature, one event per alert, 202 after publish."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest

from bot.errors import BrokerUnavailable
from bot.events import Event
from bot.web.alert_auth import grafana_signature
from tests.conftest import FrozenClock
from tests.web.conftest import TOKEN, FakeBroker, MakeClient, bearer

Payload = Callable[[str], bytes]
ALERTS_TOKEN = "alertmanager-token-1b9e"
GRAFANA_SECRET = "grafana-hmac-secret-77aa"
TS_HEADER = "X-Grafana-Alerting-Signature-Timestamp"


def grafana_headers(body: bytes, *, timestamp: int | None = None, secret: str = GRAFANA_SECRET) -> dict[str, str]:
    """What Grafana sends: hex HMAC-SHA256 of the body, or of `timestamp:body` with a timestamp header."""
    signed = f"{timestamp}:".encode() + body if timestamp is not None else body
    headers = {"X-Grafana-Alerting-Signature": hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest(),
               "Content-Type": "application/json"}
    if timestamp is not None:
        headers[TS_HEADER] = str(timestamp)
    return headers


async def test_alertmanager_notification_becomes_one_published_event_per_alert(
    make_client: MakeClient, broker: FakeBroker, payload: Payload, logs: list[dict[str, Any]]
) -> None:
    client = await make_client()
    response = await client.post("/webhooks/alertmanager", data=payload("alertmanager_firing.json"), headers=bearer())
    assert response.status == 202, await response.text()
    answer = await response.json()
    assert answer["accepted"] == 2 and answer["truncated_alerts"] == 0
    assert answer["ids"] == [p.message_id for p in broker.published]
    assert [p.routing_key for p in broker.published] == ["alertmanager.alert.firing"] * 2
    assert Event.model_validate_json(broker.published[0].body).data["fingerprint"] == "9c0d27e1f4b1a6d2"
    assert TOKEN not in json.dumps(logs, default=str)
    # the same notification again (a repeat, a retry, the HA peer): the very same ids, deduped downstream
    again = await client.post("/webhooks/alertmanager", data=payload("alertmanager_firing.json"), headers=bearer())
    assert (await again.json())["ids"] == answer["ids"]


async def test_truncated_alerts_are_reported_in_the_answer_and_a_warning(
    make_client: MakeClient, broker: FakeBroker, payload: Payload, logs: list[dict[str, Any]]
) -> None:
    client = await make_client()
    response = await client.post("/webhooks/alertmanager", data=payload("alertmanager_truncated.json"),
                                 headers=bearer())
    assert response.status == 202
    assert (await response.json())["truncated_alerts"] == 3
    [warning] = [line for line in logs if line["event"] == "alerts.truncated"]
    assert warning["log_level"] == "warning" and warning["truncated_alerts"] == 3 and warning["accepted"] == 2
    assert all(Event.model_validate_json(p.body).data["truncated_alerts"] == 3 for p in broker.published)


@pytest.mark.parametrize(
    ("settings", "headers", "status", "reason"),
    [
        ({"webhook_token": None}, bearer(), 401,
         "no secret configured for alertmanager (BOT_ALERTMANAGER_TOKEN, BOT_WEBHOOK_TOKEN)"),
        ({}, {}, 401, "missing token: Authorization: Bearer <token> (BOT_WEBHOOK_TOKEN)"),
        ({}, bearer("wrong"), 401, "invalid token (does not match BOT_WEBHOOK_TOKEN)"),
        ({"alertmanager_token": ALERTS_TOKEN}, bearer(), 401,
         "invalid token (does not match BOT_ALERTMANAGER_TOKEN)"),                  # dedicated replaces shared
        ({"alertmanager_token": ALERTS_TOKEN}, bearer(ALERTS_TOKEN), 202, ""),
        ({"webhook_token": None, "alertmanager_token": ALERTS_TOKEN}, bearer(ALERTS_TOKEN), 202, ""),
        ({}, bearer(), 202, ""),
    ],
)
async def test_alertmanager_bearer_token(
    make_client: MakeClient, broker: FakeBroker, payload: Payload,
    settings: dict[str, Any], headers: dict[str, str], status: int, reason: str,
) -> None:
    client = await make_client(**settings)
    response = await client.post("/webhooks/alertmanager", data=payload("alertmanager_resolved.json"),
                                 headers=headers)
    assert response.status == status
    if reason:
        assert reason in (await response.json())["error"] and broker.published == []


@pytest.mark.parametrize("timestamped", [False, True])
async def test_grafana_signature_over_body_or_timestamp_and_body(
    make_client: MakeClient, broker: FakeBroker, payload: Payload, clock: FrozenClock, timestamped: bool
) -> None:
    client = await make_client(webhook_token=None, grafana_webhook_secret=GRAFANA_SECRET)
    body = payload("grafana_firing.json")
    headers = grafana_headers(body, timestamp=int(clock().timestamp()) - 30 if timestamped else None)
    response = await client.post("/webhooks/grafana", data=body, headers=headers)
    assert response.status == 202, await response.text()
    assert [p.routing_key for p in broker.published] == ["grafana.alert.firing"]


MISSING = "missing X-Grafana-Alerting-Signature (required while BOT_GRAFANA_WEBHOOK_SECRET is set)"
INVALID = "invalid X-Grafana-Alerting-Signature (not signed with BOT_GRAFANA_WEBHOOK_SECRET)"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, ts: {k: v for k, v in h.items() if k != "X-Grafana-Alerting-Signature"}, MISSING),
        (lambda h, ts: {**h, "X-Grafana-Alerting-Signature": "0" * 64}, INVALID),
        (lambda h, ts: {**h, TS_HEADER: str(ts + 1)}, INVALID),    # ts is signed
        (lambda h, ts: {k: v for k, v in h.items() if k != TS_HEADER}, INVALID),
        (lambda h, ts: {**bearer(), **{k: v for k, v in h.items() if "Signature" not in k}},
         MISSING),                                                  # with a secret a token is not enough
    ],
)
async def test_grafana_bad_signature_is_refused(
    make_client: MakeClient, broker: FakeBroker, payload: Payload, clock: FrozenClock,
    mutate: Callable[[dict[str, str], int], dict[str, str]], reason: str,
) -> None:
    client = await make_client(grafana_webhook_secret=GRAFANA_SECRET)
    body = payload("grafana_firing.json")
    ts = int(clock().timestamp())
    response = await client.post("/webhooks/grafana", data=body, headers=mutate(grafana_headers(body, timestamp=ts),
                                                                                 ts))
    assert response.status == 401 and (await response.json())["error"] == reason
    assert broker.published == []


def test_grafana_timestamp_window_and_custom_header(clock: FrozenClock) -> None:
    body = b'{"alerts": []}'
    now = int(clock().timestamp())

    def check(ts: int, header: str = TS_HEADER, max_age: float = 300) -> str | None:
        signed = grafana_headers(body, timestamp=ts)
        headers = {"X-Grafana-Alerting-Signature": signed["X-Grafana-Alerting-Signature"], header: str(ts)}
        return grafana_signature(body, headers, secret=GRAFANA_SECRET, timestamp_header=header, max_age=max_age,
                                 now=clock())

    assert check(now - 299) is None and check(now + 200) is None
    assert check(now - 301) == f"stale {TS_HEADER}: more than 300 s from now (BOT_GRAFANA_SIGNATURE_MAX_AGE)"
    assert check(now - 86400, max_age=0) is None                                 # 0: no age check
    assert check(now, header="X-Grafana-Alerting-Timestamp") is None
    headers = {"X-Grafana-Alerting-Signature": "sha256=" + grafana_headers(body)["X-Grafana-Alerting-Signature"]}
    assert grafana_signature(body, headers, secret=GRAFANA_SECRET, timestamp_header="", max_age=300,
                             now=clock()) is None                                # prefix tolerated, body only
    default = {"X-Grafana-Alert-Signature": grafana_headers(body)["X-Grafana-Alerting-Signature"]}
    assert grafana_signature(body, default, secret=GRAFANA_SECRET, timestamp_header=TS_HEADER, max_age=300,
                             now=clock()) is None                                # Grafana's default header name


async def test_grafana_without_secret_takes_the_alert_token(
    make_client: MakeClient, broker: FakeBroker, payload: Payload
) -> None:
    closed = await make_client(webhook_token=None)
    response = await closed.post("/webhooks/grafana", data=payload("grafana_firing.json"), headers=bearer())
    assert response.status == 401
    assert "no secret configured for grafana" in (await response.json())["error"]
    client = await make_client(alertmanager_token=ALERTS_TOKEN)
    response = await client.post("/webhooks/grafana", data=payload("grafana_resolved.json"),
                                 headers=bearer(ALERTS_TOKEN))
    assert response.status == 202 and len(broker.published) == 1


@pytest.mark.parametrize(
    ("source", "name", "status", "reason"),
    [
        ("alertmanager", "alertmanager_oversized.json", 413, "body larger than 8192 bytes"),
        ("grafana", "grafana_oversized.json", 413, "body larger than 8192 bytes"),
        ("alertmanager", "alertmanager_bad_version.json", 400, "unsupported alertmanager webhook version '3'"),
        ("alertmanager", "alertmanager_alerts_not_a_list.json", 400, "field alerts: expected a JSON array"),
        ("alertmanager", "alertmanager_missing_starts_at.json", 400, "field alerts[1].startsAt"),
        ("grafana", "grafana_legacy.json", 400, "legacy Grafana alerting payload"),
        ("grafana", "grafana_label_not_a_string.json", 400, "field alerts[0].labels.severity: expected a string"),
        ("grafana", "malformed_array.json", 400, ""),
    ],
)
async def test_malformed_and_oversized_payloads_get_a_clear_4xx(
    make_client: MakeClient, broker: FakeBroker, payload: Payload, source: str, name: str, status: int, reason: str
) -> None:
    client = await make_client()
    response = await client.post(f"/webhooks/{source}", data=payload(name), headers=bearer())
    assert response.status == status
    assert reason in (await response.json())["error"]
    assert broker.published == []                   # a valid first alert is not published either


async def test_broker_down_is_503_with_retry_after(make_client: MakeClient, broker: FakeBroker,
                                                   payload: Payload) -> None:
    broker.error, broker.fail_after = BrokerUnavailable("down"), 1
    client = await make_client()
    response = await client.post("/webhooks/alertmanager", data=payload("alertmanager_firing.json"), headers=bearer())
    assert response.status == 503 and response.headers["Retry-After"] == "5"
    assert "accepted" not in await response.json()
