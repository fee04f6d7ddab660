"""Smoke test: the fleet benchmark runs at tiny scale on SQLite and PostgreSQL (one worker process each) and
prints its table; its queues and its scratch databases are gone afterwards (no assertion on speed)."""

from __future__ import annotations

import aio_pika
import psycopg
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity

import tests.integration.conftest as integration
from bench import fleet
from bot.broker.topology import Names
from tests.postgres_db import SERVER_URL, fresh_database

pytestmark = pytest.mark.integration

amqp_url = integration.amqp_url         # the RabbitMQ fixtures (skip, or fail in CI, without a broker)
prefix = integration.prefix             # test.<uuid8>: this test's queues only


def _databases() -> set[str]:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}


@pytest.mark.timeout(180)
async def test_fleet_bench_prints_the_table_and_cleans_up(amqp_url: str, prefix: str,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    async with fresh_database():            # skips (or fails in CI) without a PostgreSQL server
        pass
    monkeypatch.setenv("BOT_BENCH_AMQP_URL", amqp_url)

    cases = await fleet.main(200, [1, 3], ["sqlite", "postgres"], prefix=prefix)

    out = capsys.readouterr().out
    assert "store     workers  events/s  per worker  CPU µs/event" in out
    rows = [line.split()[:2] for line in out.splitlines() if line.startswith(("sqlite ", "postgres "))]
    assert rows == [["sqlite", "1"], ["sqlite", "3"], ["postgres", "1"], ["postgres", "3"]]
    assert "sqlite          3  skipped: SQLite takes one worker per file" in out
    for name in ("PG / SQLite events/s per worker, 1 worker", "CPU per event, PG 1 worker vs SQLite 1 worker",
                 "CPU per event, PG 3 workers vs PG 1 worker"):
        assert name in out
    measured = [c for c in cases if not c.skipped]
    assert [(c.store, c.workers) for c in measured] == [("sqlite", 1), ("postgres", 1), ("postgres", 3)]
    # a fast first worker may take most of 200 events before the last one has started: the bench then says
    # n/a for that case (too few measured) instead of a figure, which is fine for this check
    assert all(c.dead == 0 and c.measured <= 200 for c in measured)

    scratch = {c.database for c in measured if c.store == "postgres"}
    assert len(scratch) == 2 and all(scratch)
    assert not scratch & _databases()                   # the scratch databases are dropped
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for case in measured:
            channel = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity):  # the queues are deleted
                await channel.declare_queue(Names(f"{prefix}.{case.store}-{case.workers}").work, passive=True)
