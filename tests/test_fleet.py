"""bot.fleet over both lease stores: one writer per campaign across processes, a lease that runs out is
taken over, a write after a lost lease is fenced off, and a duty runs on one worker at a time and moves
when its holder stops renewing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import pytest

from bot.fleet import Duties, LeaseLost, Writers
from bot.state.leases import MemoryLeases
from bot.state.pg_leases import PostgresLeases
from bot.state.pg_schema import upgrade
from bot.state.postgres import open_pool
from bot.state.protocol import Leases
from tests.postgres_db import fresh_database


@pytest.fixture(params=["memory", "postgres"])
async def leases(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Leases, Leases]]:
    """Two views of one lease store, as two worker processes have."""
    if request.param == "memory":
        shared = MemoryLeases()
        yield shared, shared
        return
    async with fresh_database() as url, open_pool(url, max_size=4) as first, open_pool(url, max_size=4) as second:
        await upgrade(first)
        yield PostgresLeases(first), PostgresLeases(second)


async def test_a_claim_is_exclusive_renewable_and_released(leases: tuple[Leases, Leases]) -> None:
    a, b = leases
    assert await a.claim("writer:smartlead:1", "w1", 30)
    assert not await b.claim("writer:smartlead:1", "w2", 30)
    assert await a.claim("writer:smartlead:1", "w1", 30)          # renewed by its holder
    await b.release("writer:smartlead:1", "w2")                   # not w2's: nothing changes
    assert not await b.claim("writer:smartlead:1", "w2", 30)
    await a.release("writer:smartlead:1", "w1")
    assert await b.claim("writer:smartlead:1", "w2", 30)


async def test_a_claim_that_runs_out_is_taken_over(leases: tuple[Leases, Leases]) -> None:
    a, b = leases
    assert await a.claim("duty:sweep", "w1", 0.05)
    assert not await b.claim("duty:sweep", "w2", 30)
    await asyncio.sleep(0.2)                    # the time passing is what is tested: w1 died, no renewal
    assert await b.claim("duty:sweep", "w2", 30)
    assert not await a.claim("duty:sweep", "w1", 30)


async def test_one_writer_per_campaign_across_two_processes(leases: tuple[Leases, Leases]) -> None:
    first, second = Writers(leases[0], "w1"), Writers(leases[1], "w2")
    inside: list[str] = []
    overlaps = 0

    async def write(writers: Writers, n: int) -> None:
        nonlocal overlaps
        async with writers.lock("smartlead:7"):
            inside.append(writers.holder)
            overlaps += len(inside) > 1
            await writers.fence("smartlead:7")
            await asyncio.sleep(0.005)
            inside.remove(writers.holder)

    await asyncio.gather(*(write(first if n % 2 else second, n) for n in range(12)))
    assert overlaps == 0 and inside == []
    # the lease is free again for anyone
    assert await leases[0].claim("writer:smartlead:7", "w3", 30)


async def test_a_write_after_the_lease_ran_out_and_was_taken_is_fenced_off(leases: tuple[Leases, Leases]) -> None:
    ticks = [0.0]
    slow = Writers(leases[0], "w1", seconds=0.1, clock=lambda: ticks[0])
    async with slow.lock("smartlead:9"):
        await slow.fence("smartlead:9")                          # fresh: no round trip needed
        ticks[0] += 1.0                                          # frozen for longer than the lease ...
        await asyncio.sleep(0.2)                                 # ... which ran out meanwhile
        assert await leases[1].claim("writer:smartlead:9", "w2", 30)
        with pytest.raises(LeaseLost):
            await slow.fence("smartlead:9")


async def test_fence_refuses_a_write_outside_the_lock() -> None:
    with pytest.raises(LeaseLost, match="outside its writer lock"):
        await Writers(MemoryLeases(), "w1").fence("smartlead:1")


class Rounds:
    """Who ran each round of the duty, and a way to wait for a condition on it."""

    def __init__(self) -> None:
        self.by: list[str] = []
        self._changed = asyncio.Condition()

    async def add(self, holder: str) -> None:
        async with self._changed:
            self.by.append(holder)
            self._changed.notify_all()

    async def until(self, condition: Callable[[list[str]], bool]) -> None:
        async with asyncio.timeout(5), self._changed:
            await self._changed.wait_for(lambda: condition(self.by))


@asynccontextmanager
async def _running(duties: Duties, rounds: Rounds) -> AsyncIterator[None]:
    task = asyncio.create_task(duties.run("sweep", 0.01, partial(rounds.add, duties.holder), first=True))
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_duty_runs_on_one_worker_and_moves_when_it_stops(leases: tuple[Leases, Leases]) -> None:
    rounds = Rounds()
    one, two = Duties(leases[0], "w1", seconds=0.3), Duties(leases[1], "w2", seconds=0.3)
    async with _running(one, rounds):
        await rounds.until(lambda by: by.count("w1") >= 3)
        async with _running(two, rounds):
            before = len(rounds.by)
            await rounds.until(lambda by: len(by) >= before + 5)
            assert "w2" not in rounds.by                        # w1 holds it: w2 stands by
    # w1 stopped (its lease released); another worker takes over at once
    async with _running(Duties(leases[1], "w3", seconds=0.3), rounds):
        await rounds.until(lambda by: "w3" in by)
