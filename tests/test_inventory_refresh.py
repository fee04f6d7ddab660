"""InventoryRefresher: merges vendor inventories into the worker's Inventory and persists them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.engine import Target
from bot.errors import VendorUnavailable
from bot.fleet import Duties
from bot.inventory import Inventory
from bot.inventory_refresh import InventoryRefresher
from bot.state.leases import MemoryLeases
from bot.state.sqlite import SqliteStateStore
from tests.conftest import FakeVendor, FrozenClock


class FakeSource:
    """An InventorySource answering from a queue of results (an exception is raised instead)."""

    def __init__(self, *answers: dict[str, set[str]] | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def inventory(self) -> dict[str, set[str]]:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _resolve(inventory: Inventory, scope: str, value: str) -> list[str]:
    return [str(ref) for ref in inventory.resolve([Target(scope, value)])]


async def test_merges_into_the_inventory_and_persists_new_pairs(store: SqliteStateStore, clock: FrozenClock) -> None:
    inventory = Inventory({"smartlead:1": ["old@sales.example"]})
    source = FakeSource({"smartlead:1": {"Ana@Sales.Example"}, "smartlead:2": set(),
                         "smartlead:3": {"ana@sales.example", "bo@sales.example"}})
    refresher = InventoryRefresher(inventory, store, {"smartlead": source, "leadterra": FakeVendor("leadterra")},
                                   clock=clock)
    assert refresher.vendors == ["smartlead"]                   # FakeVendor is no InventorySource
    assert await refresher.refresh() == 3
    assert _resolve(inventory, "sender_account", "ana@sales.example") == ["smartlead:1", "smartlead:3"]
    assert _resolve(inventory, "sender_account", "old@sales.example") == ["smartlead:1"]   # added, not replaced
    assert _resolve(inventory, "vendor", "smartlead") == ["smartlead:1", "smartlead:2", "smartlead:3"]
    rows = sorted(await store.inventory())
    assert rows == [("smartlead:1", "ana@sales.example"), ("smartlead:2", ""),
                    ("smartlead:3", "ana@sales.example"), ("smartlead:3", "bo@sales.example")]

    assert await refresher.refresh() == 0                       # nothing new: nothing written
    assert sorted(await store.inventory()) == rows
    restarted = Inventory()                                     # as bot.service._inventory rebuilds it
    for campaign, sender in rows:
        restarted.add(campaign, sender or None)
    assert _resolve(restarted, "sender_domain", "sales.example") == ["smartlead:1", "smartlead:3"]
    assert "smartlead:2" in restarted


async def test_a_failing_vendor_is_logged_and_the_others_still_merge(
    store: SqliteStateStore, logs: list[dict[str, Any]]
) -> None:
    inventory = Inventory()
    failing = FakeSource(VendorUnavailable("inbox", 503, "GET /campaigns", "HTTP_503: unavailable"))
    refresher = InventoryRefresher(inventory, store, {"inbox": failing,
                                                      "smartlead": FakeSource({"smartlead:7": {"a@x.example"}})})
    assert await refresher.refresh() == 1
    assert _resolve(inventory, "sender_account", "a@x.example") == ["smartlead:7"]
    failed = [line for line in logs if line["event"] == "inventory.refresh_failed"]
    assert [(f["vendor"], "503" in f["error"]) for f in failed] == [("inbox", True)]
    refreshed = [line for line in logs if line["event"] == "inventory.refreshed"]
    assert [(r["vendor"], r["campaigns"], r["senders"], r["new"]) for r in refreshed] == [("smartlead", 1, 1, 1)]


async def test_a_bug_in_a_source_does_not_leak_what_it_held(
    store: SqliteStateStore, logs: list[dict[str, Any]]
) -> None:
    refresher = InventoryRefresher(Inventory(), store, {"smartlead": FakeSource(KeyError("password=hunter2"))})
    assert await refresher.refresh() == 0
    assert "hunter2" not in json.dumps(logs, default=str)
    assert [line["error"] for line in logs if line["event"] == "inventory.refresh_failed"] == ["KeyError"]


async def test_keys_of_another_vendor_or_invalid_ids_are_dropped(
    store: SqliteStateStore, logs: list[dict[str, Any]]
) -> None:
    inventory = Inventory()
    source = FakeSource({"leadterra:camp_1": {"a@x.example"}, "smartlead:abc": {"a@x.example"},
                         "smartlead:9": {"a@x.example", "not-an-email"}})
    assert await InventoryRefresher(inventory, store, {"smartlead": source}).refresh() == 1
    assert len(inventory) == 1 and inventory.senders("smartlead:9") == {"a@x.example"}
    assert sum(line["event"] == "inventory.bad_campaign" for line in logs) == 2


async def test_as_a_duty_it_refreshes_at_once_retries_next_period_and_cancels_cleanly(
        store: SqliteStateStore) -> None:
    inventory = Inventory()
    source = FakeSource(VendorUnavailable("smartlead", 429, "GET /campaigns/", "rate limited"),
                        {"smartlead:5": {"a@x.example"}})
    refresher = InventoryRefresher(inventory, store, {"smartlead": source})
    duties = Duties(MemoryLeases(), "worker-1", seconds=3)
    task = asyncio.create_task(duties.run("inventory", 0.01, refresher.refresh, first=True))
    try:
        await refresher.wait_rounds(1)
        assert "smartlead:5" not in inventory                   # the first round failed ...
        await refresher.wait_rounds(2)
        assert inventory.senders("smartlead:5") == {"a@x.example"}   # ... the next period got it
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert task.cancelled()
