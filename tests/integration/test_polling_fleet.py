"""The poll duty in a fleet: two `python -m bot worker` processes on one PostgreSQL and one RabbitMQ, polling every
second. Exactly one of them polls (it holds the lease `duty:poll`); SIGKILLed, the other takes the duty over
within the lease time and polls on. Each worker's /metrics (BOT_METRICS_PORT) counts its rate-budget slots by
budget name and priority (polls: background), never naming the key."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from bot.broker.topology import Names
from bot.testing import DEFAULT_KEYS, CallRecord
from bot.vendors.smartlead.sim_data import set_campaign_stats
from tests.faults.conftest import Sim, served_sim, spawn, until, worker_env
from tests.integration.conftest import delete_prefix
from tests.integration.test_polling import ANALYTICS_RULE, free_port
from tests.postgres_db import fresh_database

__all__ = ["served_sim", "spawn"]           # fixtures, used by name

pytestmark = pytest.mark.integration

LEASE_SECONDS = 3.0
RETRY_DELAYS = (0.1, 0.2)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


def poll_holder(url: str) -> str | None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(b"SELECT holder FROM leases WHERE name = 'duty:poll' AND until > now()").fetchone()
    except psycopg.errors.UndefinedTable:       # no worker has created the schema yet
        return None
    return str(row[0]) if row else None


def analytics(call: CallRecord) -> bool:
    return call.method == "GET" and call.path == "/analytics/campaign/overall-stats"


async def metrics_of(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


@pytest.mark.timeout(120)
async def test_one_worker_polls_and_the_duty_moves_within_the_lease_time_when_it_is_killed(
        amqp_url: str, prefix: str, served_sim: Sim, spawn: Any, database: str, tmp_path: Path) -> None:
    sim = served_sim.sim
    for n in range(5):
        sim.add_campaign(f"smartlead:{900 + n}", "ACTIVE", leads=400)
        set_campaign_stats(sim, f"smartlead:{900 + n}", sent=100, bounced=1)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "test-rule.yaml").write_text(ANALYTICS_RULE)
    ports = [free_port(), free_port()]
    workers = [spawn(worker_env(url=amqp_url, prefix=prefix, state=Path("unused.db"), sim=served_sim,
                                BOT_STATE_URL=database, BOT_RULES_DIR=str(rules), BOT_POLL_SECONDS="1",
                                BOT_LEASE_SECONDS=str(LEASE_SECONDS), BOT_SWEEP_SECONDS="1",
                                BOT_RECONCILE_SECONDS="0", BOT_DRAIN_SECONDS="1",
                                BOT_RETRY_DELAYS=",".join(map(str, RETRY_DELAYS)), BOT_HTTP_HOST="127.0.0.1",
                                BOT_METRICS_PORT=str(port)))
               for port in ports]
    try:
        for worker in workers:
            await worker.start()
        holder = await until(lambda: poll_holder(database), timeout=30, what="a worker holding duty:poll")
        [polling] = [n for n, w in enumerate(workers) if w.current.pid == int(holder.split(":")[1])]
        other = 1 - polling

        def rounds(n: int) -> int:
            return sum(1 for line in workers[n].logs() if line.get("event") == "poll.done" and line.get("kind") == "metrics")

        await until(lambda: rounds(polling) >= 3, timeout=30, what="three poll rounds")
        assert rounds(other) == 0                                           # one poller in the fleet
        text = await metrics_of(ports[polling])
        assert 'campaign_guard_budget_slots_total{budget="smartlead",priority="background"}' in text
        assert DEFAULT_KEYS["smartlead"] not in text

        killed = time.monotonic()
        assert await workers[polling].signal(signal.SIGKILL) == -signal.SIGKILL
        last_before = max(c.at for c in sim.calls if analytics(c))
        await until(lambda: any(line.get("event") == "poll.done" for line in workers[other].logs()),
                    timeout=LEASE_SECONDS * 4, what="the other worker polling")
        handover = time.monotonic() - killed
        first_after = min(c.at for c in sim.calls if analytics(c) and c.at > last_before)
        gap = first_after - last_before
        assert poll_holder(database) not in (None, holder)
        assert handover <= LEASE_SECONDS + 2 * 1.0 + 1.0, handover       # the lease runs out, then a round is due
        print(f"\npoll duty handed over {handover:.2f} s after the SIGKILL; polls paused {gap:.2f} s "
              f"(lease {LEASE_SECONDS:g} s, interval 1 s)")
        text = await metrics_of(ports[other])
        assert 'campaign_guard_polls_total{kind="metrics",result="ok",route="smartlead"}' in text
    finally:
        for worker in workers:
            await worker.kill_all()
        await delete_prefix(amqp_url, Names(prefix), set(RETRY_DELAYS))
