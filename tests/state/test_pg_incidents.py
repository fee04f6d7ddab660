"""What the PostgreSQL outbox adds to incidents (bot.state.outbox.Outbox.enqueue_incident): several workers
file notices at once and each incident gets one open row; an incident's items are handed out one at a time,
oldest first, across the fleet's deliverers. Delivery itself is tested in tests/slack/test_incidents.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.state.pg_outbox import PostgresOutbox
from tests.postgres_db import open_outbox

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
async def outboxes(url: str) -> AsyncIterator[tuple[PostgresOutbox, PostgresOutbox]]:
    async with open_outbox(url) as first, open_outbox(url) as second:
        yield first, second


async def _file(outbox: PostgresOutbox, text: str, *, opens: bool = True, closes: bool = False,
                campaign: str = "smartlead:7") -> int | None:
    return await outbox.enqueue_incident("C1", campaign, {"channel": "C1", "text": text}, now=NOW, opens=opens,
                                         closes=closes)


async def test_notices_filed_at_once_by_two_workers_open_one_incident(
        outboxes: tuple[PostgresOutbox, PostgresOutbox]) -> None:
    filed = await asyncio.gather(*(_file(outboxes[n % 2], f"n{n}") for n in range(12)))
    assert len(set(filed)) == 1 and None not in filed
    assert len(await outboxes[0].items()) == 12


async def test_an_incidents_items_are_handed_out_one_at_a_time_across_outboxes(
        outboxes: tuple[PostgresOutbox, PostgresOutbox]) -> None:
    first, second = outboxes
    incident = await _file(first, "a")
    await _file(second, "b")
    await _file(first, "c", closes=True)
    await _file(second, "other", campaign="smartlead:8")
    [a, other] = await first.due(NOW)
    assert (a.payload["text"], a.incident, other.payload["text"]) == ("a", incident, "other")
    assert await second.due(NOW) == []                  # b waits for a, claimed or not
    await first.record([a.id], now=NOW, ok=False, detail="http 503", retry_at=NOW + timedelta(seconds=5))
    assert await second.due(NOW) == [] and await second.next_due() == NOW + timedelta(seconds=5)
    [a] = await second.due(NOW + timedelta(seconds=5))  # the retry is anyone's; still before b
    await second.record([a.id], now=NOW, ok=True, detail="ok", posted=("C1", "17.1"))
    [b] = [item for item in await first.due(NOW) if item.incident == incident]    # (`other` is first's too)
    assert b.payload["text"] == "b" and await second.due(NOW) == []
    found = await first.incident(incident or 0)
    assert found is not None and (found.ts, found.posted_channel, found.sent) == ("17.1", "C1", 1)
    assert found.closed_at == NOW and found.opening == {"channel": "C1", "text": "a"}


async def test_closing_ends_the_incident_and_the_next_opening_notice_starts_another(
        outboxes: tuple[PostgresOutbox, PostgresOutbox]) -> None:
    first, second = outboxes
    opened = await _file(first, "pause")
    assert await _file(second, "resume", opens=False, closes=True) == opened
    assert await _file(first, "withdrawn", opens=False) is None          # nothing open: a message of its own
    assert await _file(second, "pause again") not in (None, opened)
