"""What the PostgreSQL outbox adds: several workers' deliverers share it, and each item is handed to one of
them at a time (claims). The behaviour both outboxes share is tested through the deliverer, in
tests/slack/test_delivery.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.state.outbox import OutboxItem
from bot.state.pg_outbox import PostgresOutbox
from tests.postgres_db import open_outbox

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
async def outboxes(url: str) -> AsyncIterator[tuple[PostgresOutbox, PostgresOutbox]]:
    """Two outboxes on one database, as two worker processes have."""
    async with open_outbox(url) as first, open_outbox(url) as second:
        yield first, second


async def _queue(outbox: PostgresOutbox, *texts: str, group: str | None = None, due: datetime = NOW) -> None:
    for text in texts:
        assert await outbox.enqueue("channel", {"channel": "C1", "text": text}, now=NOW, key=text, group=group,
                                    due_at=due)


def _keys(items: list[OutboxItem]) -> list[str | None]:
    return [item.key for item in items]


async def test_due_hands_each_item_to_one_outbox_until_it_is_recorded(
    outboxes: tuple[PostgresOutbox, PostgresOutbox],
) -> None:
    first, second = outboxes
    await _queue(first, "a", "b", "c")
    mine = await first.due(NOW, limit=2)
    assert _keys(mine) == ["a", "b"]
    assert _keys(await second.due(NOW)) == ["c"]                # a and b are the first outbox's
    assert _keys(await first.due(NOW)) == ["a", "b"]            # its own claims, again (as SQLite's)
    await first.record([mine[0].id], now=NOW, ok=True, detail="ok")
    await first.record([mine[1].id], now=NOW, ok=False, detail="http 503", retry_at=NOW + timedelta(seconds=5))
    assert _keys(await second.due(NOW + timedelta(seconds=5))) == ["c", "b"]   # a retry is anyone's again
    assert [i.status for i in await second.items()] == ["sent", "queued", "queued"]


async def test_deliverers_asking_at_once_get_different_items(
    outboxes: tuple[PostgresOutbox, PostgresOutbox],
) -> None:
    await _queue(outboxes[0], *(f"m{n}" for n in range(10)))
    first, second = await asyncio.gather(outboxes[0].due(NOW, limit=6), outboxes[1].due(NOW, limit=6))
    assert len(first) + len(second) == 10
    assert not {i.id for i in first} & {i.id for i in second}


async def test_next_due_leaves_out_what_another_outbox_claimed(
    outboxes: tuple[PostgresOutbox, PostgresOutbox],
) -> None:
    first, second = outboxes
    await _queue(first, "early")
    await _queue(first, "late", due=NOW + timedelta(minutes=5))
    await first.due(NOW)
    assert await second.next_due() == NOW + timedelta(minutes=5)
    assert await first.next_due() == NOW


async def test_a_digest_group_is_shared_item_by_item(outboxes: tuple[PostgresOutbox, PostgresOutbox]) -> None:
    first, second = outboxes
    await _queue(first, "x", "y", "z", group="shadow:1")
    assert _keys(await first.due(NOW, limit=1)) == ["x"]
    assert _keys(await second.grouped("shadow:1")) == ["y", "z"]
    assert _keys(await first.grouped("shadow:1")) == ["x"]      # never an item the other one sends


async def test_claims_are_handed_back_when_an_outbox_closes(url: str) -> None:
    async with open_outbox(url) as survivor:
        async with open_outbox(url) as leaving:
            await _queue(leaving, "a")
            assert _keys(await leaving.due(NOW)) == ["a"]
            assert await survivor.due(NOW) == []
        assert _keys(await survivor.due(NOW)) == ["a"]


async def test_a_lapsed_claim_is_taken_over(url: str, outboxes: tuple[PostgresOutbox, PostgresOutbox]) -> None:
    first, second = outboxes
    await _queue(first, "a")
    await first.due(NOW)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        # as if the first worker had died mid-delivery longer ago than CLAIM
        await conn.execute("UPDATE outbox SET claimed_until = clock_timestamp() - interval '1 second'")
    assert _keys(await second.due(NOW)) == ["a"]
    assert await first.due(NOW) == []


async def test_wait_settled_returns_once_the_item_is_recorded(outboxes: tuple[PostgresOutbox, PostgresOutbox]) -> None:
    first, _ = outboxes
    await _queue(first, "a")
    [item] = await first.due(NOW)
    async with asyncio.timeout(5):
        waiting = asyncio.create_task(first.wait_settled(item.id))
        await first.record([item.id], now=NOW, ok=True, detail="ok")
        assert (await waiting).status == "sent"
