"""SmartleadClient.inventory() against the simulator: campaign → senders, and no credential ever kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.errors import VendorAuthError
from bot.inventory import Inventory
from bot.inventory_refresh import InventoryRefresher
from bot.state.sqlite import SqliteStateStore
from bot.testing import ACCOUNT_SECRET, DEFAULT_KEYS, VendorSimulator, max_in_window
from bot.vendors import DryRunVendor, InboxClient, InventorySource, LeadterraClient, SmartleadClient
from bot.vendors.smartlead.client import campaign_items, sender_emails
from tests.vendors.conftest import FAST_RETRY, assert_secret_absent


def _fleet(sim: VendorSimulator) -> None:
    sim.add_campaign("smartlead:11", "ACTIVE", accounts=["Ana@Sales.Example", "bo@sales.example"])
    sim.add_campaign("smartlead:12", "PAUSED", accounts=["cy@other.example"])
    sim.add_campaign("smartlead:13", "DRAFTED")
    sim.add_campaign("smartlead:14", "COMPLETED", accounts=["ana@sales.example"])
    sim.add_campaign("smartlead:15", "ARCHIVED", accounts=["old@sales.example"])
    sim.add_campaign("smartlead:16", "STOPPED", accounts=["gone@sales.example"])


def _database_bytes(folder: Path) -> bytes:
    """The SQLite file with its WAL and shm, as stored on disk."""
    return b"".join(f.read_bytes() for f in sorted(folder.glob("state.db*")))


EXPECTED = {
    "smartlead:11": {"ana@sales.example", "bo@sales.example"},
    "smartlead:12": {"cy@other.example"},
    "smartlead:13": set(),
    "smartlead:14": {"ana@sales.example"},
}


async def test_builds_the_mapping_and_skips_archived_and_stopped(
    sim: VendorSimulator, smartlead: SmartleadClient
) -> None:
    _fleet(sim)
    assert await smartlead.inventory() == EXPECTED
    assert [(c.method, c.path, c.status) for c in sim.calls] == [
        ("GET", "/campaigns/", 200),
        *[("GET", f"/campaigns/{n}/email-accounts", 200) for n in (14, 13, 12, 11)],   # newest first
    ]


async def test_passwords_are_never_in_the_result_the_logs_or_the_database(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str],
    logs: list[dict[str, Any]], store: SqliteStateStore, tmp_path: Path,
) -> None:
    _fleet(sim)
    sim.set_limit("smartlead", None)                            # 11 calls: no need to wait for a window
    smartlead = SmartleadClient(session, api_key=DEFAULT_KEYS["smartlead"], base_url=base("smartlead"),
                                rate_limit=(100, 1.0), retry=FAST_RETRY, timeout=5)
    # the simulator really serves credentials, so the assertions below mean something
    async with session.get(f"{base('smartlead')}/campaigns/11/email-accounts",
                           params={"api_key": DEFAULT_KEYS["smartlead"]}) as resp:
        raw = await resp.json()
    assert ACCOUNT_SECRET in raw[0]["password"] and ACCOUNT_SECRET in raw[0]["imap_password"]

    result = await smartlead.inventory()
    assert_secret_absent(ACCOUNT_SECRET, result)
    refresher = InventoryRefresher(Inventory(), store, {"smartlead": smartlead})
    assert await refresher.refresh() == 4                       # (campaign, sender) pairs
    assert ACCOUNT_SECRET not in json.dumps(logs, default=str)
    assert any(line["event"] == "inventory.refreshed" for line in logs)
    assert ACCOUNT_SECRET not in str(await store.inventory())
    stored = _database_bytes(tmp_path)
    assert b"ana@sales.example" in stored and ACCOUNT_SECRET.encode() not in stored


async def test_429_is_retried(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    _fleet(sim)
    sim.inject("smartlead", "rate_limit", path="/campaigns/", retry_after=0.01)
    sim.inject("smartlead", "rate_limit", path="/campaigns/*/email-accounts", times=2, retry_after=0.01)
    assert await smartlead.inventory() == EXPECTED
    assert [c.status for c in sim.calls].count(429) == 3


async def test_respects_the_rate_limit(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str]
) -> None:
    period = 0.25
    sim.set_limit("smartlead", (3, period))
    for n in range(1, 9):
        sim.add_campaign(f"smartlead:{n}", "ACTIVE", accounts=[f"s{n}@sales.example"])
    client = SmartleadClient(session, api_key=DEFAULT_KEYS["smartlead"], base_url=base("smartlead"),
                             rate_limit=(3, period), retry=FAST_RETRY, timeout=5)
    assert len(await client.inventory()) == 8
    assert len(sim.calls) == 9
    assert all(c.status == 200 for c in sim.calls)               # never pushed into a 429
    assert max_in_window(sim.calls, period) <= 3


async def test_a_campaign_deleted_meanwhile_is_left_out(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    _fleet(sim)
    sim.inject("smartlead", "error", status=404, path="/campaigns/12/email-accounts")
    assert await smartlead.inventory() == {k: v for k, v in EXPECTED.items() if k != "smartlead:12"}


async def test_a_bad_key_fails_without_showing_it(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str], logs: list[dict[str, Any]],
    store: SqliteStateStore,
) -> None:
    _fleet(sim)
    secret = "wrong-key-0123456789"
    client = SmartleadClient(session, api_key=secret, base_url=base("smartlead"), retry=FAST_RETRY, timeout=5)
    with pytest.raises(VendorAuthError) as caught:
        await client.inventory()
    assert_secret_absent(secret, caught.value)
    assert await InventoryRefresher(Inventory(), store, {"smartlead": client}).refresh() == 0
    failed = [line for line in logs if line["event"] == "inventory.refresh_failed"]
    assert failed and failed[0]["vendor"] == "smartlead" and "401" in failed[0]["error"]
    assert secret not in json.dumps(logs, default=str)


def test_parses_wrapped_and_bare_shapes() -> None:
    listed = [{"id": 3, "status": "ACTIVE"}, {"id": "2", "status": "archived"}, {"id": "x"}, {"id": 0}, "junk"]
    expected = [("3", "active"), ("2", "archived")]
    for body in (listed, {"success": True, "data": listed}, {"data": listed}):
        assert [(i, str(s)) for i, s in campaign_items(body)] == expected
    assert list(campaign_items({"success": False, "error": "x"})) == []
    accounts = [{"from_email": " A@B.example ", "password": "p"}, {"from_email": None}, {"from_email": "nope"}]
    assert sender_emails(accounts) == sender_emails({"success": True, "data": accounts}) == {"a@b.example"}


async def test_only_smartlead_implements_it_and_dry_run_calls_nothing(
    sim: VendorSimulator, smartlead: SmartleadClient, leadterra: LeadterraClient, inbox: InboxClient
) -> None:
    assert isinstance(smartlead, InventorySource)
    assert not isinstance(leadterra, InventorySource) and not isinstance(inbox, InventorySource)
    dry = DryRunVendor("smartlead")
    assert isinstance(dry, InventorySource)
    assert await dry.inventory() == {}
    assert sim.calls == []
