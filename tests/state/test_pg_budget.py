"""Vendor rate budgets shared through PostgreSQL (bot.state.pg_budget behind bot.vendors.budget.SharedLimiter):
each "process" here is its own pool and its own limiters or clients, as separate workers have. The vendor
simulator counts what it receives: together they never exceed a credential's (a workspace's) windows.
Background requests keep to their share while pauses find room; a killed holder's slot stops counting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.accounts import load_accounts
from bot.config import Settings
from bot.state.pg_budget import PostgresBudgets
from bot.state.pg_schema import upgrade
from bot.state.postgres import Pool, open_pool, query
from bot.testing import DEFAULT_KEYS, PREFIXES, VendorSimulator, max_in_window
from bot.vendors.base import CampaignVendor
from bot.vendors.budget import SharedLimiter, Slot, Window
from bot.vendors.build import build_vendors
from bot.vendors.guarded import VendorClient

SMARTLEAD_ID = "4242"


@asynccontextmanager
async def process(url: str, *, stale_after: float = 120.0, connections: int = 3,
                  ) -> AsyncIterator[tuple[PostgresBudgets, Pool]]:
    """One worker process's side: its own pool on the database (upgraded) and its budgets."""
    async with open_pool(url, max_size=connections) as pool:
        await upgrade(pool)
        yield PostgresBudgets(pool, stale_after=stale_after), pool


async def slots(pool: Pool) -> list[tuple[bool, bool]]:
    """(background, finished) of every row of `rate_slots`."""
    rows = await query(pool, "SELECT background, finished_at IS NOT NULL FROM rate_slots ORDER BY id")
    return [(bool(background), bool(finished)) for background, finished in rows]


class Holders:
    """Tasks that each take a slot of `limiter` and keep it until `let_go` is set; `granted` counts them."""

    def __init__(self, limiter: SharedLimiter, count: int, *, background: bool) -> None:
        self.limiter = limiter
        self.granted = 0
        self.let_go = asyncio.Event()
        self._changed = asyncio.Condition()
        self.tasks = [asyncio.create_task(self._hold(background)) for _ in range(count)]

    async def _hold(self, background: bool) -> None:
        async with self.limiter.slot(background=background):
            async with self._changed:
                self.granted += 1
                self._changed.notify_all()
            await self.let_go.wait()

    async def reach(self, count: int) -> None:
        async with asyncio.timeout(5), self._changed:
            await self._changed.wait_for(lambda: self.granted >= count)

    async def finish(self) -> None:
        self.let_go.set()
        for task in self.tasks:
            task.cancel()               # those still waiting for a slot
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.limiter.drain()


# ------------------------------------------------------------------------------------- the budget itself


async def test_takes_from_two_pools_at_once_never_grant_more_than_the_window(url: str) -> None:
    windows = [Window(10, 60.0, 5)]
    async with process(url, connections=10) as (first, pool), process(url, connections=10) as (second, _):
        answers = await asyncio.gather(*(budget.take("smartlead", windows, background=False)
                                         for budget in [first, second] * 15))
        granted = [a for a in answers if isinstance(a, Slot)]
        assert len(granted) == 10                                   # 30 asked at once, 10 fit
        assert all(50 < a <= 60 for a in answers if not isinstance(a, Slot))   # in flight: a period at least
        assert len(await slots(pool)) == 10


async def test_finished_slots_count_for_the_period_unused_ones_not_at_all_and_old_rows_go(url: str) -> None:
    windows = [Window(2, 60.0, 1)]
    async with process(url) as (budgets, pool):
        one, two = [await budgets.take("lemlist", windows, background=False) for _ in range(2)]
        assert isinstance(one, Slot) and isinstance(two, Slot)
        assert await budgets.take("lemlist", windows, background=False) == pytest.approx(60, abs=1)
        await budgets.done(one, used=False)                        # nothing was sent: free at once
        await budgets.done(two, used=True)                         # sent: counts for the period from now
        assert await slots(pool) == [(False, True)]
        three = await budgets.take("lemlist", windows, background=False)
        assert isinstance(three, Slot)
        wait = await budgets.take("lemlist", windows, background=False)
        assert isinstance(wait, float) and 55 < wait <= 60          # until `two` leaves the window
        assert isinstance(await budgets.take("smartlead", windows, background=False), Slot)   # another budget
        # a minute later (the row made older, not the test): `two` left the window, so there is room
        await query(pool, "UPDATE rate_slots SET finished_at = finished_at - interval '61 s' WHERE id = %s",
                    (two.id,))
        assert isinstance(await budgets.take("lemlist", windows, background=False), Slot)
        # past the window and the staleness bound (120 s): pruned by the next take of its budget
        assert len(await slots(pool)) == 4
        await query(pool, "UPDATE rate_slots SET finished_at = finished_at - interval '60 s' WHERE id = %s",
                    (two.id,))
        assert isinstance(await budgets.take("lemlist", windows, background=False), float)
        assert await slots(pool) == [(False, False)] * 3                 # three, the new one, smartlead's one


# ------------------------------------------------------------------------------------- two processes


@pytest.fixture
def sim() -> VendorSimulator:
    return VendorSimulator(
        keys={"instantly": ["key-a", "key-b"]}, workspaces={"key-a": "ws", "key-b": "ws"},
        limits={"instantly_second": (3, 0.5), "instantly_minute": (5, 2.0)})


@pytest.fixture
async def base(sim: VendorSimulator, aiohttp_server: Callable[..., Any]) -> Callable[[str], str]:
    server: TestServer = await aiohttp_server(sim.app)
    return lambda vendor: str(server.make_url(PREFIXES[vendor]))


def _clients(settings: Settings, session: aiohttp.ClientSession, budgets: PostgresBudgets,
             env: dict[str, str] | None = None) -> dict[str, CampaignVendor]:
    return build_vendors(settings, session, load_accounts(settings, env or {}), budgets=budgets)


async def _hammer(clients: Sequence[CampaignVendor], campaign_id: str, each: int) -> None:
    await asyncio.gather(*(client.observe(campaign_id) for client in clients for _ in range(each)))


async def _drain(*vendors: dict[str, CampaignVendor]) -> None:
    """Wait until every release reached the database (before the pools close)."""
    for clients in vendors:
        for client in clients.values():
            limiter = client._http._read_limiter if isinstance(client, VendorClient) else None
            if isinstance(limiter, SharedLimiter):
                await limiter.drain()


@pytest.mark.timeout(60)
async def test_two_processes_never_exceed_one_credentials_window_together(
        url: str, sim: VendorSimulator, base: Callable[[str], str]) -> None:
    sim.add_campaign(f"smartlead:{SMARTLEAD_ID}", "ACTIVE")
    settings = Settings.model_validate({"smartlead_api_key": DEFAULT_KEYS["smartlead"],
                                        "smartlead_base_url": base("smartlead")})     # 10 per 2 s
    async with process(url) as (first, _), process(url) as (second, _), \
            aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
        a, b = _clients(settings, one, first), _clients(settings, two, second)
        await _hammer([a["smartlead"], b["smartlead"]], SMARTLEAD_ID, 30)             # 60 reads at once
        await _drain(a, b)
    calls = sim.calls_for("smartlead")
    assert len(calls) == 60 and {c.status for c in calls} == {200}                   # no 429
    assert max_in_window(calls, 2.0) == 10                                             # full, never over


@pytest.mark.timeout(60)
async def test_two_processes_keep_both_instantly_windows_of_one_workspace(
        url: str, sim: VendorSimulator, base: Callable[[str], str]) -> None:
    campaign = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
    sim.add_campaign(f"instantly:{campaign}", "1")
    settings = Settings.model_validate({})
    env = {f"BOT_ACCOUNT_{n}_{key}": value for n, name in enumerate("ab", 1) for key, value in {
        "VENDOR": "instantly", "NAME": name, "API_KEY": f"key-{name}", "WORKSPACE": "ws",
        "BASE_URL": base("instantly"), "RATE_LIMIT": "3/0.5", "MINUTE_RATE_LIMIT": "5/2"}.items()}
    async with process(url) as (first, _), process(url) as (second, _), \
            aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
        a, b = _clients(settings, one, first, env), _clients(settings, two, second, env)
        # each process reads with both keys of the workspace: four clients, one budget
        await _hammer([a["instantly@a"], a["instantly@b"], b["instantly@a"], b["instantly@b"]], campaign, 3)
        await _drain(a, b)
    calls = sim.calls_for("instantly")
    assert len(calls) == 12 and {c.status for c in calls} == {200}
    assert len({c.credential for c in calls}) == 2                                      # both keys were used
    assert max_in_window(calls, 0.5) <= 3 and max_in_window(calls, 2.0) <= 5


async def test_background_keeps_to_its_share_and_pauses_from_another_process_find_room(url: str) -> None:
    async with process(url) as (first, pool), process(url) as (second, _):
        drift = SharedLimiter("smartlead", [(10, 2.0)], first)             # background share: 5 of 10
        pauses = SharedLimiter("smartlead", [(10, 2.0)], second)
        reads = Holders(drift, 8, background=True)
        await reads.reach(5)
        writes = Holders(pauses, 5, background=False)
        await writes.reach(5)                                               # at once, while the reads wait
        try:
            assert reads.granted == 5 and drift.waiting == (0, 3)
            assert sorted(await slots(pool)) == [(False, False)] * 5 + [(True, False)] * 5
            # the window is full: a pause waits, and so does a read even once pauses leave room
            assert isinstance(await second.take("smartlead", pauses.shared, background=False), float)
            writes.let_go.set()
            await asyncio.gather(*writes.tasks)
            await pauses.drain()
            await query(pool, "DELETE FROM rate_slots WHERE NOT background")     # their period is over
            assert isinstance(await second.take("smartlead", pauses.shared, background=True), float)
            assert reads.granted == 5
        finally:
            await reads.finish()
            await writes.finish()


async def test_a_killed_holders_slot_stops_counting_after_the_staleness_bound(url: str) -> None:
    windows = [(1, 60.0)]                                   # one request a minute
    async with process(url, stale_after=1.0) as (killed, _):
        held = await killed.take("leadterra", SharedLimiter("leadterra", windows, killed).shared, background=False)
        assert isinstance(held, Slot)
    # its process is gone (pool closed, slot never finished)
    async with process(url, stale_after=1.0) as (alive, pool):
        limiter = SharedLimiter("leadterra", windows, alive)
        wait = await alive.take("leadterra", limiter.shared, background=False)
        assert isinstance(wait, float) and wait <= 1.0                      # not the minute: until it goes stale
        await asyncio.wait_for(limiter.acquire(), 5)                        # the limiter's own wait
        assert len(await slots(pool)) == 1                                   # the stale row was pruned
        limiter.release()
        await limiter.drain()
        assert await slots(pool) == [(False, True)]
