"""The simulated Smartlead's email accounts (§1.5): the paged list (reputation "95%", passwords included),
get-by-id (reputation 95, `is_warmup_blocked`), mailboxes on campaigns, and the `/_sim/smartlead/` control."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.testing import ACCOUNT_SECRET, VendorSimulator
from bot.vendors.smartlead.sim_data import account_id, add_mailbox, added_mailboxes, forget
from tests.testing.conftest import Get

SL = "/smartlead/api/v1"
KEY = "sim-smartlead-key"


@pytest.fixture
async def control(sim: VendorSimulator, aiohttp_client: Callable[..., Any]) -> TestClient:
    return await aiohttp_client(sim.app)  # type: ignore[no-any-return]


async def test_the_list_has_every_documented_field_the_string_reputation_and_passwords(
    sim: VendorSimulator, get: Get
) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    add_mailbox(sim, "Ana@Sales.Example", campaigns=["smartlead:1"], reputation=95, smtp_ok=False,
                smtp_failure_error="535 authentication failed", warmup_status="BLOCKED", blocked_reason="spam trap")
    status, accounts = await get(f"{SL}/email-accounts/")
    assert status == 200 and isinstance(accounts, list) and len(accounts) == 1
    [account] = accounts
    assert {"id", "from_email", "from_name", "type", "message_per_day", "daily_sent_count", "is_smtp_success",
            "is_imap_success", "smtp_failure_error", "imap_failure_error", "campaign_count", "warmup_details",
            "password", "imap_password"} <= set(account)
    assert (account["id"], account["from_email"], account["campaign_count"]) == (
        account_id("ana@sales.example"), "Ana@Sales.Example", 1)
    assert (account["is_smtp_success"], account["is_imap_success"]) == (False, True)
    assert account["smtp_failure_error"] == "535 authentication failed"
    assert account["warmup_details"] == {"status": "BLOCKED", "total_sent_count": 0, "total_spam_count": 0,
                                         "warmup_reputation": "95%", "reply_rate": 0, "blocked_reason": "spam trap"}
    assert ACCOUNT_SECRET in account["password"] and ACCOUNT_SECRET in account["imap_password"]


async def test_get_by_id_gives_the_number_and_is_warmup_blocked(sim: VendorSimulator, get: Get) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE", name="One")
    sim.add_campaign("smartlead:2", "PAUSED", name="Two")
    add_mailbox(sim, "bo@sales.example", campaigns=["smartlead:1", "smartlead:2"], reputation=95,
                warmup_blocked=True)
    number = account_id("bo@sales.example")
    status, account = await get(f"{SL}/email-accounts/{number}/")
    assert status == 200 and account["warmup_details"]["warmup_reputation"] == 95
    assert account["warmup_details"]["is_warmup_blocked"] is True and account["campaign_count"] == 2
    assert {"warmup_max_count", "warmup_min_count", "max_email_per_day"} <= set(account["warmup_details"])
    assert "campaigns" not in account and ACCOUNT_SECRET in account["password"]
    _, fetched = await get(f"{SL}/email-accounts/{number}", fetch_campaigns="true")
    assert fetched["campaigns"] == [{"id": 1, "name": "One", "status": "ACTIVE"},
                                    {"id": 2, "name": "Two", "status": "PAUSED"}]
    assert (await get(f"{SL}/email-accounts/999/"))[0] == 404
    assert (await get(f"{SL}/email-accounts/{number}/", fetch_campaigns="yes"))[0] == 400


async def test_the_list_pages_with_offset_and_limit_by_id(sim: VendorSimulator, get: Get) -> None:
    emails = [f"s{n}@sales.example" for n in range(7)]
    for email in emails:
        add_mailbox(sim, email)
    by_id = sorted(emails, key=account_id)
    pages = [[a["from_email"] for a in (await get(f"{SL}/email-accounts/", offset=o, limit=3))[1]] for o in (0, 3, 6, 9)]
    assert pages == [by_id[:3], by_id[3:6], by_id[6:], []]
    assert len((await get(f"{SL}/email-accounts/"))[1]) == 7                      # default limit 100
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}):
        status, body = await get(f"{SL}/email-accounts/", **bad)
        assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR"


async def test_the_documented_filters(sim: VendorSimulator, get: Get) -> None:
    add_mailbox(sim, "ok@sales.example")
    add_mailbox(sim, "smtp@sales.example", smtp_ok=False)
    add_mailbox(sim, "idle@sales.example", warmup_status="INACTIVE")

    async def listed(**params: str) -> set[str]:
        return {a["from_email"] for a in (await get(f"{SL}/email-accounts/", **params))[1]}

    assert await listed(isSmtpSuccess="false") == {"smtp@sales.example"}
    assert await listed(emailWarmupStatus="INACTIVE") == {"idle@sales.example"}
    assert await listed(emailWarmupStatus="ACTIVE", isSmtpSuccess="true") == {"ok@sales.example"}
    assert (await get(f"{SL}/email-accounts/", emailWarmupStatus="PAUSED"))[0] == 400


async def test_each_key_sees_its_own_mailboxes_and_those_of_its_campaigns(sim: VendorSimulator, get: Get) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE", key="key-acme", accounts=["sender@acme.example"])
    sim.add_campaign("smartlead:2", "ACTIVE", key="key-globex")
    add_mailbox(sim, "spare@acme.example", key="key-acme")
    add_mailbox(sim, "shared@globex.example", campaigns=["smartlead:2"], key="key-globex")
    add_mailbox(sim, "anyone@example.com")

    async def listed(key: str) -> set[str]:
        return {a["from_email"] for a in (await get(f"{SL}/email-accounts/", key=key))[1]}

    assert await listed("key-acme") == {"sender@acme.example", "spare@acme.example", "anyone@example.com"}
    assert await listed("key-globex") == {"shared@globex.example", "anyone@example.com"}
    spare = account_id("spare@acme.example")
    assert (await get(f"{SL}/email-accounts/{spare}/", key="key-globex"))[0] == 404
    assert (await get(f"{SL}/email-accounts/{spare}/", key="key-acme"))[0] == 200


async def test_a_campaigns_email_accounts_carry_the_mailboxes_health(sim: VendorSimulator, get: Get) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE", accounts=["plain@sales.example"])
    add_mailbox(sim, "sick@sales.example", campaigns=["smartlead:1"], imap_ok=False, reputation=40)
    add_mailbox(sim, "SICK@sales.example", campaigns=["smartlead:1"], imap_ok=False, reputation=40)
    _, accounts = await get(f"{SL}/campaigns/1/email-accounts")
    assert [(a["from_email"], a["is_imap_success"], a["warmup_details"]["warmup_reputation"]) for a in accounts] == [
        ("plain@sales.example", True, "100%"), ("SICK@sales.example", False, "40%")]   # replaced, listed once


async def test_faults_and_authentication_apply(sim: VendorSimulator, get: Get) -> None:
    add_mailbox(sim, "a@sales.example")
    sim.inject("smartlead", "rate_limit", path="/email-accounts/")
    sim.inject("smartlead", "error", status=503, path="/email-accounts/*")
    status, body = await get(f"{SL}/email-accounts/")
    assert status == 429 and body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert (await get(f"{SL}/email-accounts/{account_id('a@sales.example')}/"))[0] == 503
    assert (await get(f"{SL}/email-accounts/", key="wrong"))[0] == 401
    assert (await get(f"{SL}/email-accounts/"))[0] == 200


def test_adding_a_mailbox_checks_its_fields(sim: VendorSimulator) -> None:
    with pytest.raises(ValueError, match="email"):
        add_mailbox(sim, "nobody")
    with pytest.raises(ValueError, match="unknown mailbox fields"):
        add_mailbox(sim, "a@b.example", password="x")
    with pytest.raises(ValueError, match="smtp_ok must be bool"):
        add_mailbox(sim, "a@b.example", smtp_ok="yes")
    with pytest.raises(ValueError, match="reputation must be int"):
        add_mailbox(sim, "a@b.example", reputation=True)
    with pytest.raises(KeyError):
        add_mailbox(sim, "a@b.example", campaigns=["smartlead:404"])
    assert added_mailboxes(sim) == []
    add_mailbox(sim, "a@b.example", blocked_reason=None)
    forget(sim)
    assert added_mailboxes(sim) == []


async def test_the_control_routes(sim: VendorSimulator, control: TestClient) -> None:
    assert (await control.post("/_sim/campaigns", json={"campaign": "smartlead:1"})).status == 201
    resp = await control.put("/_sim/smartlead/stats/smartlead:1",
                             json={"sent": 500, "bounced": 8, "first_sent_at": "2026-01-02T00:00:00+00:00"})
    assert resp.status == 200 and (await resp.json())["steps"]["1"]["sent"] == 500
    resp = await control.post("/_sim/smartlead/mailboxes", json={
        "email": "ana@sales.example", "campaigns": ["smartlead:1"], "key": "key-acme", "smtp_ok": False})
    assert resp.status == 201
    shown = await resp.json()
    assert (shown["email"], shown["smtp_ok"]) == ("ana@sales.example", False)
    assert shown["owner"].startswith("key#")                               # the key's fingerprint, never the key
    assert "key-acme" not in str(await (await control.get("/_sim/smartlead/mailboxes")).json())
    assert sim.campaign("smartlead:1").accounts == ["ana@sales.example"]
    resp = await control.get(f"{SL}/analytics/campaign/overall-stats",
                             params={"api_key": KEY, "start_date": "2026-01-01", "end_date": "2030-01-01"})
    assert (await resp.json())["data"]["campaign_wise_performance"][0]["bounce_rate"] == "1.6%"
    for bad in ({"sent": "5"}, {"sent": True}, {"color": 1}, {"first_sent_at": "2026-01-02T00:00:00"}):
        assert (await control.put("/_sim/smartlead/stats/smartlead:1", json=bad)).status == 400
    assert (await control.put("/_sim/smartlead/stats/smartlead:9", json={"sent": 1})).status == 404
    for bad_box in ({"email": "b@x.example", "reputation": "95%"}, {"email": "b@x.example", "key": 5},
                    {"email": "b@x.example", "campaigns": "smartlead:1"}, {"campaigns": []}, [1]):
        assert (await control.post("/_sim/smartlead/mailboxes", json=bad_box)).status == 400
