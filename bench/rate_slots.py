"""What one slot of a shared rate budget costs (bot.state.pg_budget): the time of `PostgresBudgets.take` (one
transaction under the budget's advisory lock: count, insert, prune) and of `done`, against a PostgreSQL server.

    .venv/bin/python -m bench.rate_slots                 # 1,000 takes per figure, a few seconds
    .venv/bin/python -m bench.rate_slots --takes 100     # smoke run

The server: BOT_BENCH_POSTGRES_URL, else BOT_TEST_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/postgres;
a scratch database is created there and dropped afterwards. Each figure is the median and the 99th percentile
of `--takes` takes (and their `done`), with the budget's window already holding `live` slots (10: Smartlead's
10 per 2 s at full use; 6,000: an Instantly workspace's minute window full, the worst case):

- lone: one process asking one take after another;
- 16 at once: two pools of 8 connections, 16 tasks asking the same budget together (the advisory lock's queue
  included: what a take waits when a fleet's workers all call one vendor at once);
- SharedLimiter: acquire + release through the vendor layer's limiter (local limiter, turn, take; `done` in a
  task, awaited).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from urllib.parse import urlsplit

from bench._common import percentile, scratch_database, server_url
from bot.state.pg_budget import PostgresBudgets
from bot.state.pg_schema import upgrade
from bot.state.postgres import Pool, open_pool, query
from bot.vendors.budget import SharedLimiter, Slot, Window

BUDGET = "smartlead@bench"


async def fill(pool: Pool, live: int) -> None:
    """The budget's window holds `live` finished slots, and nothing else."""
    await query(pool, "DELETE FROM rate_slots")
    await query(pool, "INSERT INTO rate_slots (budget, background, started_at, finished_at)"
                      " SELECT %s, false, clock_timestamp(), clock_timestamp() FROM generate_series(1, %s)",
                (BUDGET, live))


def windows(live: int) -> list[Window]:
    """A window with room above `live` (every take is granted), long enough that nothing leaves it."""
    return [Window(live + 1000, 600.0, (live + 1000) // 2)]


async def take_timed(budgets: PostgresBudgets, live: int, into: list[float]) -> Slot:
    started = time.perf_counter()
    slot = await budgets.take(BUDGET, windows(live), background=False)
    into.append((time.perf_counter() - started) * 1000)
    assert isinstance(slot, Slot)
    return slot


async def lone(budgets: PostgresBudgets, live: int, takes: int) -> tuple[list[float], list[float]]:
    take_ms: list[float] = []
    done_ms: list[float] = []
    for _ in range(takes):
        slot = await take_timed(budgets, live, take_ms)
        started = time.perf_counter()
        await budgets.done(slot, used=False)            # the window keeps `live` slots
        done_ms.append((time.perf_counter() - started) * 1000)
    return take_ms, done_ms


async def together(first: PostgresBudgets, second: PostgresBudgets, live: int, takes: int) -> list[float]:
    take_ms: list[float] = []

    async def asker(budgets: PostgresBudgets, count: int) -> None:
        for _ in range(count):
            await budgets.done(await take_timed(budgets, live, take_ms), used=False)

    each = max(1, takes // 16)
    await asyncio.gather(*(asker(budgets, each) for budgets in [first, second] * 8))
    return take_ms


async def through_limiter(budgets: PostgresBudgets, live: int, takes: int) -> list[float]:
    window = windows(live)[0]
    limiter = SharedLimiter(BUDGET, [(window.limit, window.period)], budgets)
    ms = []
    for _ in range(takes):
        started = time.perf_counter()
        await limiter.acquire()
        limiter.release(used=False)
        await limiter.drain()
        ms.append((time.perf_counter() - started) * 1000)
    return ms


def line(what: str, values: list[float]) -> str:
    return (f"{what:<44} median {percentile(values, 50):6.3f} ms   p99 {percentile(values, 99):6.3f} ms"
            f"   ({len(values)} takes)")


async def main(takes: int = 1000) -> None:
    async with scratch_database() as url, open_pool(url, max_size=8) as pool, open_pool(url, max_size=8) as other:
        await upgrade(pool)
        (version,) = (await query(pool, "SHOW server_version"))[0]
        print(f"PostgreSQL {version} at {urlsplit(server_url()).hostname}; {takes} takes per figure")
        first, second = PostgresBudgets(pool, stale_after=30), PostgresBudgets(other, stale_after=30)
        for _ in range(50):                                     # warm the pools and the plan caches
            slot = await first.take(BUDGET, windows(10), background=False)
            assert isinstance(slot, Slot)
            await first.done(slot, used=False)
        for live in (10, 6000):
            await fill(pool, live)
            take_ms, done_ms = await lone(first, live, takes)
            print(line(f"take, lone, {live:,} live slots", take_ms))
            print(line(f"done, lone, {live:,} live slots", done_ms))
            print(line(f"take, 16 at once, {live:,} live slots", await together(first, second, live, takes)))
        await fill(pool, 10)
        print(line("SharedLimiter acquire+release, 10 live slots", await through_limiter(first, 10, takes)))


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takes", type=int, default=1000)
    args = parser.parse_args(argv)
    asyncio.run(main(args.takes))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
