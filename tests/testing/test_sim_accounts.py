"""Smartlead's `GET /campaigns/{id}/email-accounts` in the simulator, and `accounts` in the control API."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.testing import ACCOUNT_SECRET, VendorSimulator

SL = "/smartlead/api/v1"
SL_KEY = {"api_key": "sim-smartlead-key"}


async def test_email_accounts_are_served_with_their_fake_credentials(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("smartlead:7", "ACTIVE", accounts=["ana@sales.example", "bo@sales.example"])
    sim.add_campaign("smartlead:8", "ARCHIVED")
    resp = await client.get(f"{SL}/campaigns/7/email-accounts", params=SL_KEY)
    accounts = await resp.json()
    assert resp.status == 200 and [a["from_email"] for a in accounts] == ["ana@sales.example", "bo@sales.example"]
    assert all(ACCOUNT_SECRET in a["password"] and ACCOUNT_SECRET in a["imap_password"] for a in accounts)
    assert {"id", "from_name", "smtp_host", "imap_host", "warmup_details", "is_smtp_success"} <= set(accounts[0])
    assert await (await client.get(f"{SL}/campaigns/8/email-accounts", params=SL_KEY)).json() == []
    assert (await client.get(f"{SL}/campaigns/9/email-accounts", params=SL_KEY)).status == 404
    assert (await client.get(f"{SL}/campaigns/7/email-accounts")).status == 401
    listed = await (await client.get(f"{SL}/campaigns/", params=SL_KEY)).json()
    assert [(c["id"], c["status"]) for c in listed] == [(8, "ARCHIVED"), (7, "ACTIVE")]        # newest first
    sim.inject("smartlead", "rate_limit", path="/campaigns/*/email-accounts")
    assert (await client.get(f"{SL}/campaigns/7/email-accounts", params=SL_KEY)).status == 429


async def test_accounts_through_the_control_api(sim: VendorSimulator, client: TestClient) -> None:
    resp = await client.post("/_sim/campaigns", json={"campaign": "smartlead:5", "accounts": ["a@x.example"]})
    assert resp.status == 201 and (await resp.json())["accounts"] == ["a@x.example"]
    resp = await client.put("/_sim/campaigns/smartlead:5", json={"accounts": ["b@x.example"]})
    assert resp.status == 200 and sim.campaign("smartlead:5").accounts == ["b@x.example"]
    assert sim.status_of("smartlead:5") == "ACTIVE"                                  # status untouched
    assert (await client.put("/_sim/campaigns/smartlead:5", json={"accounts": "b@x.example"})).status == 400
    assert (await client.put("/_sim/campaigns/smartlead:5", json={})).status == 400
    assert (await client.post("/_sim/campaigns", json={"campaign": "smartlead:6", "accounts": [1]})).status == 400
