"""GET /healthz, /readyz and /metrics."""

from __future__ import annotations

from bot.errors import BrokerUnavailable
from tests.web.conftest import FakeBroker, MakeClient, bearer


async def test_healthz_is_always_200(make_client: MakeClient, broker: FakeBroker) -> None:
    client = await make_client()
    broker.is_ready = False
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_follows_the_broker(make_client: MakeClient, broker: FakeBroker) -> None:
    client = await make_client()
    assert (await client.get("/readyz")).status == 200
    broker.is_ready = False
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"error": "broker not ready"}


async def test_readyz_is_503_when_the_broker_raises(make_client: MakeClient, broker: FakeBroker) -> None:
    client = await make_client()
    broker.ready_error = BrokerUnavailable("connection refused")
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"error": "broker unavailable"}


async def test_metrics_exposes_the_webhook_counter(make_client: MakeClient) -> None:
    client = await make_client()
    await client.post("/webhooks/inbox", data=b"{}", headers=bearer("wrong"))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    assert 'campaign_guard_webhooks_total{source="inbox",status="401"}' in text
    assert "campaign_guard_webhook_seconds_bucket" in text
