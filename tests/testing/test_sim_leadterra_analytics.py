"""The simulated Leadterra's `GET /campaigns/{id}/stats`: the documented fields, the vendor's own rates
(over DELIVERED), per key, rate limited and open to faults."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.testing import VendorSimulator
from bot.vendors.leadterra.sim import set_stats
from tests.testing.conftest import MonoClock

LT = "/leadterra/v1"
AUTH = {"Authorization": "Bearer sk_live_sim_leadterra"}


async def test_stats_are_the_documented_fields_with_the_vendors_rates(sim: VendorSimulator,
                                                                      client: TestClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running", leads=500)
    set_stats(sim, "leadterra:camp_1", sent=420, delivered=400, bounced=20, replied=32, queued=80)
    set_stats(sim, "leadterra:camp_1", opened=168)                     # the others keep their value
    resp = await client.get(f"{LT}/campaigns/camp_1/stats", headers=AUTH)
    assert resp.status == 200 and await resp.json() == {
        "campaignId": "camp_1", "totalEnrolled": 500, "sent": 420, "delivered": 400, "bounced": 20, "replied": 32,
        "queued": 80, "openRate": 0.42, "replyRate": 0.08}             # replied / DELIVERED, not / sent


async def test_no_delivery_means_rates_of_zero(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("leadterra:camp_1", "draft")
    body = await (await client.get(f"{LT}/campaigns/camp_1/stats", headers=AUTH)).json()
    assert (body["sent"], body["openRate"], body["replyRate"]) == (0, 0.0, 0.0)


async def test_numbers_belong_to_the_campaign_they_were_set_on(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    set_stats(sim, "leadterra:camp_1", sent=9)
    sim.add_campaign("leadterra:camp_1", "running")                    # replaced
    assert (await (await client.get(f"{LT}/campaigns/camp_1/stats", headers=AUTH)).json())["sent"] == 0
    with pytest.raises(ValueError, match="unknown stats"):
        set_stats(sim, "leadterra:camp_1", opens=3)
    with pytest.raises(ValueError, match="non-negative"):
        set_stats(sim, "leadterra:camp_1", sent=-1)


async def test_stats_of_a_missing_or_foreign_campaign(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("leadterra:camp_mine", "running", key="sk_live_other")
    for cid in ("camp_mine", "camp_none"):
        resp = await client.get(f"{LT}/campaigns/{cid}/stats", headers=AUTH)
        assert (resp.status, (await resp.json())["error"]["code"]) == (404, "campaign_not_found")
    assert (await client.post(f"{LT}/campaigns/camp_mine/stats", headers=AUTH)).status == 404   # GET only


async def test_stats_keep_the_limits_and_faults(sim: VendorSimulator, client: TestClient, mono: MonoClock) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    assert (await client.get(f"{LT}/campaigns/camp_1/stats")).status == 401
    sim.inject("leadterra", "error", status=502, path="/campaigns/*/stats")
    assert (await client.get(f"{LT}/campaigns/camp_1/stats", headers=AUTH)).status == 502
    sim.set_limit("leadterra", (1, 5.0))
    assert [(await client.get(f"{LT}/campaigns/camp_1/stats", headers=AUTH)).status for _ in range(2)] == [200, 429]
    mono.advance(5.0)
    assert (await client.get(f"{LT}/campaigns/camp_1/stats", headers=AUTH)).status == 200


async def test_the_control_route(sim: VendorSimulator, aiohttp_client: Any) -> None:
    control: TestClient = await aiohttp_client(sim.app)
    sim.add_campaign("leadterra:camp_ctl", "running")
    assert (await control.put("/_sim/leadterra/stats/leadterra:camp_ctl", json={"replied": 3})).status == 200
    assert (await (await control.get("/leadterra/v1/campaigns/camp_ctl/stats", headers={"Authorization": "Bearer sk_live_sim_leadterra"})).json())["replied"] == 3
    for body in ({"replies": 1}, {"sent": -1}, {"sent": True}, ["sent"]):
        assert (await control.put("/_sim/leadterra/stats/leadterra:camp_ctl", json=body)).status == 400
    assert (await control.put("/_sim/leadterra/stats/leadterra:camp_none", json={})).status == 404
