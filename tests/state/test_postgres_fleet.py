"""What the PostgreSQL store adds to the contract: several workers (each its own pool, as separate processes
have) on one database. A transaction that touches a key another one holds waits for it, then reads what it
committed; compare-and-set and event deduplication hold across stores; concurrent schema upgrades are one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from bot.errors import StaleRecord
from bot.events import Event
from bot.state.base import CampaignRecord, Hold, HoldKind
from bot.state.pg_schema import MIGRATIONS
from bot.state.postgres import PostgresStateStore
from bot.state.protocol import Transaction

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
C = "smartlead:1"


@pytest.fixture
async def stores(url: str) -> AsyncIterator[tuple[PostgresStateStore, PostgresStateStore]]:
    """Two stores on one database, as two worker processes have."""
    async with PostgresStateStore.open(url) as first, PostgresStateStore.open(url) as second:
        yield first, second


async def _until_blocked(url: str, *tasks: asyncio.Task[Any]) -> None:
    """Return once as many transactions in the database wait for a lock as there are `tasks`, or one of
    them ended (it did not wait)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while not any(task.done() for task in tasks):
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid)"
                " WHERE NOT granted AND datname = current_database()")
            if (row := await cursor.fetchone()) and row[0] >= len(tasks):
                return
            await asyncio.sleep(0.005)          # polling pg_locks: the server announces no lock wait


async def _taken(tx: Transaction, keys: list[tuple[str, str]]) -> dict[str, Any] | None:
    await tx.take_windows(keys)
    return await tx.window(*keys[0])


def _resolved(fingerprint: str, starts_at: str) -> Event:
    return Event(id=f"resolved-{fingerprint}", type="alert.resolved", source="alertmanager", occurred_at=NOW,
                 data={"fingerprint": fingerprint, "starts_at": starts_at})


Step = Callable[[Transaction], Awaitable[Any]]
#: (a write, a read of what it wrote): the read, in another store, waits for the write's transaction to end
KEYED: dict[str, tuple[Step, Step, Any]] = {
    "a campaign's holds": (lambda tx: tx.add_hold(Hold(C, "rule:x", HoldKind.RULE, "r", NOW)),
                           lambda tx: _owners(tx.holds(C)), ["rule:x"]),
    "a campaign's record": (lambda tx: tx.set_campaign(CampaignRecord(C, bot_paused=True), NOW),
                            lambda tx: _version(tx.campaign(C)), 1),
    "a campaign's overrides": (lambda tx: tx.add_override(C, by="user:U1", now=NOW, until=NOW + timedelta(days=1)),
                               lambda tx: tx.override(C, "bounce", NOW), ("user:U1", NOW + timedelta(days=1))),
    "a rule's window": (lambda tx: tx.set_window("bounce", C, {"n": 1}, NOW),
                        lambda tx: tx.window("bounce", C), {"n": 1}),
    "windows taken at once": (lambda tx: tx.set_window("bounce", C, {"n": 1}, NOW),
                              lambda tx: _taken(tx, [("bounce", C), ("other", C)]), {"n": 1}),
    "the campaigns an owner holds": (lambda tx: tx.add_hold(Hold(C, "alert:f1", HoldKind.ALERT, "r", NOW)),
                                     lambda tx: tx.held_by("alert:f1"), [C]),
    "an alert's resolution": (lambda tx: tx.record_event(_resolved("f1", "s1"), NOW),
                              lambda tx: tx.alert_resolved("f1", "s1"), True),
    "a vendor's pause count": (lambda tx: tx.log_pause("smartlead", C, NOW),
                               lambda tx: tx.recent_pauses("smartlead", NOW - timedelta(minutes=1)), 1),
    "the parked decisions": (lambda tx: tx.add_pending(Hold(C, "rule:x", HoldKind.RULE, "r", NOW), expires_at=NOW),
                             lambda tx: _count(tx.pending()), 1),
}


async def _owners(holds: Awaitable[list[Hold]]) -> list[str]:
    return [h.owner for h in await holds]


async def _version(record: Awaitable[CampaignRecord]) -> int:
    return (await record).version


async def _count(items: Awaitable[list[Any]]) -> int:
    return len(await items)


@pytest.mark.parametrize("case", KEYED)
async def test_a_transaction_touching_a_held_key_waits_then_reads_what_the_holder_committed(
    url: str, stores: tuple[PostgresStateStore, PostgresStateStore], case: str
) -> None:
    write, read, expected = KEYED[case]
    first, second = stores
    written, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with first.transaction() as tx:
            await write(tx)
            written.set()
            await release.wait()

    async def reader() -> Any:
        await written.wait()
        async with second.transaction() as tx:
            return await read(tx)

    writing, reading = asyncio.create_task(writer()), asyncio.create_task(reader())
    await _until_blocked(url, reading)
    assert not reading.done(), f"{case}: read without waiting for the writer"
    release.set()
    await writing
    assert await reading == expected


async def test_concurrent_compare_and_sets_on_one_campaign_one_wins(
    stores: tuple[PostgresStateStore, PostgresStateStore],
) -> None:
    async with stores[0].transaction() as tx:
        read = await tx.set_campaign(CampaignRecord(C), NOW)

    async def write(store: PostgresStateStore, n: int) -> CampaignRecord:
        async with store.transaction() as tx:
            return await tx.set_campaign(replace(read, vendor_status=f"writer {n}"), NOW)

    results = await asyncio.gather(*(write(stores[n % 2], n) for n in range(8)), return_exceptions=True)
    [won] = [r for r in results if isinstance(r, CampaignRecord)]
    assert all(isinstance(r, StaleRecord) for r in results if r is not won)
    async with stores[1].transaction() as tx:
        assert await tx.campaign(C) == won and won.version == 2


@pytest.mark.parametrize("first_commits", [True, False])
async def test_a_duplicate_recorded_meanwhile_waits_for_the_first_records_outcome(
    url: str, stores: tuple[PostgresStateStore, PostgresStateStore], first_commits: bool,
) -> None:
    first, second = stores
    event = Event(id="e1", type="email.bounced", source="smartlead", occurred_at=NOW)
    written, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with first.transaction() as tx:
            assert await tx.record_event(event, NOW)
            written.set()
            await release.wait()
            if not first_commits:
                raise RuntimeError("rolled back")

    async def duplicate() -> bool:
        await written.wait()
        async with second.transaction() as tx:
            return await tx.record_event(event, NOW)

    writing, recording = asyncio.create_task(writer()), asyncio.create_task(duplicate())
    await _until_blocked(url, recording)
    assert not recording.done()
    release.set()
    if first_commits:
        await writing
    else:
        with pytest.raises(RuntimeError):
            await writing
    assert await recording is not first_commits         # recorded by the second when the first rolled back
    assert len([line async for line in first.events()]) == 1


async def test_read_modify_writes_of_one_window_from_two_stores_lose_nothing(
    stores: tuple[PostgresStateStore, PostgresStateStore],
) -> None:
    async def bump(store: PostgresStateStore) -> None:
        async with store.transaction() as tx:
            state = await tx.window("rule", "key") or {"n": 0}
            await tx.set_window("rule", "key", {"n": state["n"] + 1}, NOW)

    await asyncio.gather(*(bump(stores[n % 2]) for n in range(20)))
    async with stores[0].transaction() as tx:
        assert await tx.window("rule", "key") == {"n": 20}


@pytest.mark.parametrize("existing", [False, True], ids=["new windows", "stored windows"])
async def test_windows_taken_at_once_by_two_stores_lose_nothing(
    stores: tuple[PostgresStateStore, PostgresStateStore], existing: bool,
) -> None:
    keys = [("a", "k1"), ("b", "k1"), ("b", "k2")]
    if existing:
        async with stores[0].transaction() as tx:
            for rule, key in keys:
                await tx.set_window(rule, key, {"n": 0}, NOW)

    async def bump(store: PostgresStateStore, n: int) -> None:
        async with store.transaction() as tx:
            await tx.take_windows(keys[n % 3:] + keys[:n % 3])      # each in another order
            for rule, key in keys:
                state = await tx.window(rule, key) or {"n": 0}
                await tx.set_window(rule, key, {"n": state["n"] + 1}, NOW)

    await asyncio.gather(*(bump(stores[n % 2], n) for n in range(20)))
    async with stores[0].transaction() as tx:
        assert [await tx.window(rule, key) for rule, key in keys] == [{"n": 20}] * 3


async def test_the_breaker_count_admits_one_pause_across_stores(
    stores: tuple[PostgresStateStore, PostgresStateStore],
) -> None:
    async def admit(store: PostgresStateStore, n: int) -> bool:
        async with store.transaction() as tx:
            if await tx.recent_pauses("smartlead", NOW - timedelta(minutes=10)) >= 1:
                return False
            await tx.log_pause("smartlead", f"smartlead:{n}", NOW)
            return True

    assert sorted(await asyncio.gather(*(admit(stores[n % 2], n) for n in range(6)))) == [False] * 5 + [True]


async def test_concurrent_schema_upgrades_apply_each_step_once(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as blocker, AsyncExitStack() as stack:
        async with blocker.transaction():
            # hold the migration lock: both opens queue behind it, and go on together once it is released
            await blocker.execute("SELECT pg_advisory_xact_lock(%s, %s)", (0x63677264, 1))
            opening = [asyncio.create_task(stack.enter_async_context(PostgresStateStore.open(url)))
                       for _ in range(2)]
            await _until_blocked(url, *opening)
            assert not any(task.done() for task in opening)
        for task in opening:
            assert isinstance(await task, PostgresStateStore)
        rows = await (await blocker.execute("SELECT version FROM schema_version ORDER BY version")).fetchall()
        assert rows == [(n,) for n in range(1, len(MIGRATIONS) + 1)]
