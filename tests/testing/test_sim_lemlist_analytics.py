"""The simulated lemlist's campaign list (`GET /campaigns`, v2 and legacy, paginated) and campaign stats
(`GET /v2/campaigns/{id}/stats`): per key, Basic auth, rate limited with lemlist's headers, open to faults."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.testing import VendorSimulator
from bot.vendors.lemlist.sim import STATS_FIELDS, set_stats
from tests.testing.conftest import MonoClock

LL = "/lemlist/api"


def basic(key: str = "sim-lemlist-key") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f":{key}".encode()).decode()}


async def get(client: TestClient, path: str, **params: Any) -> tuple[int, Any]:
    resp = await client.get(f"{LL}{path}", headers=basic(), params=params)
    return resp.status, await resp.json() if resp.content_type == "application/json" else await resp.text()


def campaigns(sim: VendorSimulator, count: int) -> list[str]:
    ids = [f"cam_list{n:04d}" for n in range(count)]
    for n, cid in enumerate(ids):
        sim.add_campaign(f"lemlist:{cid}", ("running", "paused", "draft")[n % 3])
    return ids


async def test_the_v2_list_is_paginated(sim: VendorSimulator, client: TestClient) -> None:
    ids = campaigns(sim, 5)
    status, page = await get(client, "/campaigns", version="v2", limit=2, offset=2)
    assert status == 200 and [c["_id"] for c in page["campaigns"]] == ids[2:4]
    assert page["pagination"] == {"totalRecords": 5, "currentPage": 2, "nextPage": 3, "totalPage": 3}
    assert [c["status"] for c in page["campaigns"]] == ["draft", "running"]
    assert {"name", "createdAt", "hasError", "senders", "sequenceId"} <= set(page["campaigns"][0])
    _, last = await get(client, "/campaigns", version="v2", limit=2, page=3)
    assert [c["_id"] for c in last["campaigns"]] == ids[4:] and last["pagination"]["nextPage"] is None


async def test_at_most_100_per_page(sim: VendorSimulator, client: TestClient) -> None:
    campaigns(sim, 130)
    _, page = await get(client, "/campaigns", version="v2", limit=500)
    assert len(page["campaigns"]) == 100 and page["pagination"]["nextPage"] == 2
    _, default = await get(client, "/campaigns", version="v2", offset=100)
    assert len(default["campaigns"]) == 30
    for bad in ({"limit": 0}, {"offset": -1}, {"limit": "x"}):
        assert (await get(client, "/campaigns", version="v2", **bad))[0] == 400


async def test_without_version_v2_the_legacy_list(sim: VendorSimulator, client: TestClient) -> None:
    ids = campaigns(sim, 3)
    status, rows = await get(client, "/campaigns")
    assert status == 200 and rows == [{"_id": cid, "name": "Simulated campaign", "labels": []} for cid in ids]


async def test_the_list_holds_only_the_keys_campaigns(sim: VendorSimulator, client: TestClient) -> None:
    campaigns(sim, 2)
    sim.add_campaign("lemlist:cam_theirs", "running", key="another-key")
    _, page = await get(client, "/campaigns", version="v2")
    assert "cam_theirs" not in [c["_id"] for c in page["campaigns"]] and page["pagination"]["totalRecords"] == 2
    resp = await client.get(f"{LL}/campaigns", headers=basic("another-key"), params={"version": "v2"})
    assert len((await resp.json())["campaigns"]) == 3


async def test_stats_of_a_campaign(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("lemlist:cam_stats1", "running", leads=32)
    set_stats(sim, "lemlist:cam_stats1", sent=72, bounced=3, delivered=69, opened=47, replied=16, unsubscribed=1)
    status, stats = await get(client, "/v2/campaigns/cam_stats1/stats")
    assert status == 200 and set(stats) == {"nbLeads", *STATS_FIELDS.values(), "steps"}
    assert {k: stats[k] for k in ("nbLeads", "messagesSent", "messagesBounced", "delivered", "opened", "replied",
                                  "nbLeadsUnsubscribed", "clicked")} == {
        "nbLeads": 32, "messagesSent": 72, "messagesBounced": 3, "delivered": 69, "opened": 47, "replied": 16,
        "nbLeadsUnsubscribed": 1, "clicked": 0}


async def test_stats_errors(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("lemlist:cam_theirs", "running", key="another-key")
    assert await get(client, "/v2/campaigns/cam_theirs/stats") == (404, "Campaign not found")
    assert await get(client, "/v2/campaigns/cam_nothere/stats") == (404, "Campaign not found")
    assert await get(client, "/v2/campaigns/not-an-id/stats") == (400, "Invalid campaignId")
    assert (await client.get(f"{LL}/v2/campaigns/cam_theirs/stats")).status == 401
    with pytest.raises(ValueError, match="unknown stats"):
        set_stats(sim, "lemlist:cam_theirs", messagesSent=1)


async def test_numbers_belong_to_the_campaign_they_were_set_on(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("lemlist:cam_again", "running")
    set_stats(sim, "lemlist:cam_again", sent=9)
    set_stats(sim, "lemlist:cam_again", replied=2)                     # the others keep their value
    assert [(await get(client, "/v2/campaigns/cam_again/stats"))[1][k] for k in ("messagesSent", "replied")] == [9, 2]
    sim.add_campaign("lemlist:cam_again", "running")
    assert (await get(client, "/v2/campaigns/cam_again/stats"))[1]["messagesSent"] == 0


async def test_the_polled_routes_keep_the_limit_and_faults(sim: VendorSimulator, client: TestClient,
                                                           mono: MonoClock) -> None:
    sim.add_campaign("lemlist:cam_limit1", "running")
    sim.inject("lemlist", "error", status=503, path="/v2/campaigns/*/stats")
    assert (await get(client, "/v2/campaigns/cam_limit1/stats"))[0] == 503
    sim.set_limit("lemlist", (2, 2.0))
    first = await client.get(f"{LL}/campaigns", headers=basic(), params={"version": "v2"})
    assert first.status == 200 and first.headers["X-RateLimit-Limit"] == "2"
    assert (await get(client, "/v2/campaigns/cam_limit1/stats"))[0] == 200
    refused = await client.get(f"{LL}/campaigns", headers=basic(), params={"version": "v2"})
    assert refused.status == 429 and refused.headers["Retry-After"] and "GMT" in refused.headers["X-RateLimit-Reset"]
    mono.advance(2.0)
    assert (await get(client, "/campaigns", version="v2"))[0] == 200


async def test_the_control_route(sim: VendorSimulator, aiohttp_client: Any) -> None:
    control: TestClient = await aiohttp_client(sim.app)
    sim.add_campaign("lemlist:cam_ctl", "running")
    assert (await control.put("/_sim/lemlist/stats/lemlist:cam_ctl", json={"replied": 3})).status == 200
    assert (await (await control.get("/lemlist/api/v2/campaigns/cam_ctl/stats", headers=basic())).json())["replied"] == 3
    for body in ({"messagesSent": 1}, {"sent": -1}, {"sent": True}, ["sent"]):
        assert (await control.put("/_sim/lemlist/stats/lemlist:cam_ctl", json=body)).status == 400
    assert (await control.put("/_sim/lemlist/stats/lemlist:cam_none", json={})).status == 404
