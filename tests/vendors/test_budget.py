"""SharedLimiter's own logic against a scripted shared budget (no database): refused waiters wait at a gate for
the time the budget says and ask again one by one, in order; background waiters never ask while pauses are
refused; releases reach the budget; failures and cancellations give the local slot back; build_vendors hands
every client its budget's limiter. The fleet's count itself (PostgreSQL) is tests/state/test_pg_budget.py."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from bot.accounts import load_accounts
from bot.config import Settings
from bot.errors import StateError
from bot.vendors.budget import SharedLimiter, SharedLimiters, Slot, Window
from bot.vendors.build import build_vendors
from bot.vendors.guarded import VendorClient
from bot.vendors.ratelimit import SlidingWindowLimiter

Answer = float | BaseException | None        # refuse for that long / fail / grant


class ScriptedBudget:
    """A SharedBudget answering from `answers` (granting once they run out); records every call. `hold`: while
    set and not yet set free, a take waits for it (a slow database)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers: deque[Answer] = deque(answers)
        self.takes: list[tuple[str, tuple[Window, ...], bool]] = []
        self.granted: list[tuple[int, bool]] = []
        self.dones: list[tuple[int, bool]] = []
        self.hold: asyncio.Event | None = None
        self._ids = itertools.count(1)

    async def take(self, budget: str, windows: Sequence[Window], *, background: bool) -> Slot | float:
        self.takes.append((budget, tuple(windows), background))
        if self.hold is not None:
            await self.hold.wait()
        answer = self.answers.popleft() if self.answers else None
        if isinstance(answer, BaseException):
            raise answer
        if answer is None:
            slot = Slot(next(self._ids))
            self.granted.append((slot.id, background))
            return slot
        return answer

    async def done(self, slot: Slot, *, used: bool) -> None:
        self.dones.append((slot.id, used))


async def turns(until: Any, what: str) -> None:
    """Let the event loop run (bounded, no sleeping) until `until()` holds."""
    for _ in range(200):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def background_of(takes: list[tuple[str, tuple[Window, ...], bool]]) -> list[bool]:
    return [background for _, _, background in takes]


async def test_refused_waiters_wait_the_budgets_time_at_the_gate_then_ask_one_by_one_in_order() -> None:
    budget = ScriptedBudget(0.15, 0.15)             # refused twice, then granted
    limiter = SharedLimiter("smartlead", [(10, 2.0)], budget)
    loop = asyncio.get_running_loop()
    started = loop.time()
    order: list[int] = []

    async def request(n: int) -> None:
        await limiter.acquire()
        order.append(n)

    tasks = [asyncio.create_task(request(n)) for n in range(5)]
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert loop.time() - started >= 0.3 - 0.01                  # both waits, never polling in between
    assert len(budget.takes) == 2 + 5                           # one ask per refusal, one per grant: no herd
    assert order == [0, 1, 2, 3, 4]                             # FIFO through the gate
    assert limiter.waiting == (0, 0)
    for _ in range(5):
        limiter.release()
    await limiter.drain()
    assert sorted(budget.dones) == [(n, True) for n in range(1, 6)]


async def test_background_waiters_do_not_ask_while_pauses_are_refused() -> None:
    budget = ScriptedBudget(0.2)                    # the pause is refused once
    limiter = SharedLimiter("smartlead", [(10, 2.0)], budget)
    pause = asyncio.create_task(limiter.acquire())
    await turns(lambda: len(budget.takes) == 1 and limiter.waiting == (1, 0), "the pause refused")
    drift = asyncio.create_task(limiter.acquire(background=True))
    await turns(lambda: limiter.waiting == (1, 1), "the drift read waiting")
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(budget.takes) == 1                               # the drift read waits at the pause's gate
    await asyncio.wait_for(asyncio.gather(pause, drift), 5)
    assert background_of(budget.takes) == [False, False, True]   # the pause asked again first
    assert budget.granted == [(1, False), (2, True)]


async def test_a_background_refusal_leaves_pauses_alone() -> None:
    budget = ScriptedBudget(30.0)                   # the drift read is refused for long
    limiter = SharedLimiter("smartlead", [(10, 2.0)], budget)
    drift = asyncio.create_task(limiter.acquire(background=True))
    await turns(lambda: len(budget.takes) == 1, "the drift read refused")
    await asyncio.wait_for(limiter.acquire(), 5)               # a pause asks at once
    assert background_of(budget.takes) == [True, False]
    assert limiter.waiting == (0, 1)
    drift.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drift
    assert limiter.waiting == (0, 0)


async def test_a_slot_given_back_unused_opens_the_gate_at_once() -> None:
    budget = ScriptedBudget(None, 30.0)             # one grant, then "wait 30 s"
    limiter = SharedLimiter("smartlead", [(10, 2.0)], budget)
    await limiter.acquire()
    second = asyncio.create_task(limiter.acquire())
    await turns(lambda: len(budget.takes) == 2, "the second refused")
    limiter.release(used=False)                     # a withdrawn write: nothing was sent
    await asyncio.wait_for(second, 5)               # not 30 s later
    limiter.release()
    await limiter.drain()
    assert budget.dones == [(1, False), (2, True)]


async def test_a_failing_budget_raises_and_gives_the_local_slot_back() -> None:
    budget = ScriptedBudget(StateError("taking a slot of rate budget smartlead failed: OperationalError"))
    limiter = SharedLimiter("smartlead", [(1, 60.0)], budget)  # the local limiter has one slot a minute
    with pytest.raises(StateError):
        await limiter.acquire()
    await asyncio.wait_for(limiter.acquire(), 5)               # the one local slot was handed back unused
    assert limiter.waiting == (0, 0)


async def test_a_waiter_cancelled_while_the_budget_answers_gives_the_local_slot_back() -> None:
    budget = ScriptedBudget()
    budget.hold = asyncio.Event()
    limiter = SharedLimiter("smartlead", [(1, 60.0)], budget)
    waiter = asyncio.create_task(limiter.acquire())
    await turns(lambda: len(budget.takes) == 1, "asking")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    budget.hold.set()
    await asyncio.wait_for(limiter.acquire(), 5)


def test_background_share_per_window() -> None:
    limiter = SharedLimiter("instantly#ws", [(6000, 60), (100, 1)], ScriptedBudget(), background_share=0.3)
    assert limiter.windows == ((100, 1.0), (6000, 60.0))
    assert limiter.shared == (Window(100, 1.0, 30), Window(6000, 60.0, 1800))
    assert (limiter.limit, limiter.period) == (6000, 60.0)
    assert SharedLimiter("x", [(1, 1.0)], ScriptedBudget()).shared == (Window(1, 1.0, 1),)   # at least one
    with pytest.raises(ValueError, match="background_share"):
        SharedLimiter("x", [(10, 2.0)], ScriptedBudget(), background_share=0)


def _limiters(client: object) -> tuple[Any, Any]:
    assert isinstance(client, VendorClient)
    return client._http._read_limiter, client._http._write_limiter


async def test_build_vendors_gives_each_budget_one_shared_limiter() -> None:
    settings = Settings.model_validate({
        "smartlead_api_key": "s", "inbox_api_key": "i", "lemlist_api_key": "l", "leadterra_api_key": "t",
        "inbox_read_rate_limit": "30/1", "inbox_write_rate_limit": "3/1"})
    env = {f"BOT_ACCOUNT_{n}_{key}": value for n, account in enumerate((
        {"VENDOR": "instantly", "NAME": "w1", "API_KEY": "i-1", "WORKSPACE": "ws"},
        {"VENDOR": "instantly", "NAME": "w2", "API_KEY": "i-2", "WORKSPACE": "ws"},
        {"VENDOR": "smartlead", "NAME": "acme", "API_KEY": "a", "RATE_LIMIT": "5/2"}), 1)
        for key, value in account.items()}
    accounts = load_accounts(settings, env)
    async with aiohttp.ClientSession() as session:
        shared = build_vendors(settings, session, accounts, budgets=ScriptedBudget())
        own = build_vendors(settings, session, accounts)
    named = {route: [(limiter.budget, limiter.windows) for limiter in _limiters(client)]
             for route, client in shared.items()}
    assert named == {
        "smartlead": [("smartlead", ((10, 2.0),))] * 2,
        "smartlead@acme": [("smartlead@acme", ((5, 2.0),))] * 2,
        "inbox": [("inbox/read", ((30, 1.0),)), ("inbox/write", ((3, 1.0),))],
        "lemlist": [("lemlist", ((20, 2.0),))] * 2,
        "leadterra": [("leadterra", ((60, 60.0),))] * 2,
        "instantly@w1": [("instantly#ws", ((100, 1.0), (6000, 60.0)))] * 2,
        "instantly@w2": [("instantly#ws", ((100, 1.0), (6000, 60.0)))] * 2,
    }
    assert _limiters(shared["instantly@w1"])[0] is _limiters(shared["instantly@w2"])[0]    # one workspace
    assert all(isinstance(limiter, SharedLimiter) for c in shared.values() for limiter in _limiters(c))
    assert all(isinstance(limiter, SlidingWindowLimiter) for c in own.values() for limiter in _limiters(c))


async def test_shared_limiters_make_one_limiter_per_budget() -> None:
    limiters = SharedLimiters(ScriptedBudget(), background_share=0.2)
    first = limiters("instantly#ws", [(100, 1.0)])
    assert limiters("instantly#ws", [(100, 1.0)]) is first and limiters["instantly#ws"] is first
    assert limiters("smartlead", [(10, 2.0)]) is not first
    assert first.shared == (Window(100, 1.0, 20),)
