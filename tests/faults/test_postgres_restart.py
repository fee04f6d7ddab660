"""PostgreSQL (a private cluster, never the shared server) is stopped and started again under a steady stream
of webhooks: webhooks keep their 202/503 contract; nothing acknowledged is lost, nothing is written twice.

One web (in this process: it needs RabbitMQ, not PostgreSQL) and two `python -m bot worker` processes on
the private cluster; real RabbitMQ; the vendor simulator served here. Canonical events go to
/webhooks/events a few at a time, open loop, over 16 Smartlead campaigns of which 8 spike past the bounce
guard (5 %) and 8 stay at 1.6 %. A third of the way in, the cluster is stopped (fast shutdown: every
session is cut, transactions in flight are rolled back) and started again a few seconds later, same port
and data.

Expected: every webhook is answered 202, or 503 with Retry-After (a sender retries it), never anything
else; the workers live through the outage (a StateError is retryable: the messages wait in the retry
queues) and beat again; afterwards every accepted event is recorded exactly once and counted once in its
campaign's window, each spiking campaign is paused exactly once at the simulator (one applied POST) and
held once, the others not at all; every queue is empty, the dead letters too.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from pydantic import SecretStr

from bot.broker.topology import Names
from bot.config import Settings
from bot.events import Event
from bot.service import running
from tests.conftest import REPO
from tests.faults.conftest import Sim, WorkerProcesses, queue_states, spike_stream, until, worker_env

pytestmark = pytest.mark.integration

SCRIPT = REPO / "scripts" / "test-postgres.sh"
SEED = 20261207
TOKEN = "fault-postgres-token"
OWNER = "rule:bounce-guard"
#: 15.5 s of retries in all: an outage of a few seconds plus the pools' reconnection fits, with room
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
MAX_DELIVERIES = 25
INTERVAL = 0.04             # one webhook every 40 ms, whatever the answers take (open loop)
PER_WEBHOOK = 4             # events per webhook
OUTAGE = 3.0                # seconds between the cluster's exit and its start


# ---------------------------------------------------------------- the private cluster

@dataclass(frozen=True, slots=True)
class Cluster:
    directory: Path
    url: str

    async def stop(self) -> None:
        """Fast shutdown; returns once the server has exited."""
        await _script("stop", self.directory)

    async def start(self) -> None:
        """The same cluster again (port, data); returns once it accepts connections."""
        await _script("start", self.directory)


async def _script(action: str, directory: Path) -> str:
    """scripts/test-postgres.sh, without blocking the event loop (the web runs in it); its last line."""
    process = await asyncio.create_subprocess_exec("bash", str(SCRIPT), action, str(directory),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"test-postgres.sh {action} failed ({process.returncode}): {err.decode()[-2000:]}")
    lines = out.decode().split()
    return lines[-1] if lines else ""


@pytest.fixture
async def private_postgres() -> AsyncIterator[Cluster]:
    """A throw-away cluster of its own (directory, port) for this test; stopped and removed afterwards."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        problem = "no PostgreSQL server in /usr/lib/postgresql (scripts/test-postgres.sh installs Debian's postgresql)"
        if os.environ.get("CI"):
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    # under /tmp, not pytest's tmp_path: as root, the server runs as `postgres`, which must reach the directory
    directory = Path(tempfile.mkdtemp(prefix="campaign-guard-pg-restart."))
    try:
        url = await _script("start", directory)
        yield Cluster(directory, url)
    finally:
        with contextlib.suppress(RuntimeError):
            await _script("stop", directory)
        shutil.rmtree(directory, ignore_errors=True)


def _rows(url: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql.encode(), args).fetchall()


def _scalar(url: str, sql: str, args: tuple[Any, ...] = ()) -> Any:
    rows = _rows(url, sql, args)
    return rows[0][0] if rows else None


# ---------------------------------------------------------------- the webhooks

@dataclass(frozen=True, slots=True)
class Answer:
    n: int
    attempt: int
    sent: float
    answered: float
    status: int
    ids: tuple[str, ...]
    retry_after: str | None


async def _send(http: aiohttp.ClientSession, url: str, n: int, batch: list[Event], answers: list[Answer]) -> None:
    """One webhook, sent again after a 503 as a sender does (sooner than its Retry-After: the test is short)."""
    body = {"events": [{"id": e.id, "type": e.type, "campaign": str(e.campaign),
                        "occurred_at": e.occurred_at.isoformat(), "data": e.data} for e in batch]}
    for attempt in range(50):
        sent = time.monotonic()
        async with http.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            payload: Any = await resp.json(content_type=None)
            ids = tuple(payload.get("ids", ())) if resp.status == 202 else ()
            answers.append(Answer(n, attempt, sent, time.monotonic(), resp.status, ids,
                                  resp.headers.get("Retry-After")))
            if resp.status != 503:
                return
        await asyncio.sleep(0.2)


async def _pace(http: aiohttp.ClientSession, url: str, batches: list[list[Event]], answers: list[Answer],
                tasks: list[asyncio.Task[None]], sent: list[int]) -> None:
    for n, batch in enumerate(batches):
        tasks.append(asyncio.create_task(_send(http, url, n, batch, answers)))
        sent[0] = n + 1
        await asyncio.sleep(INTERVAL)       # the stream's rate, not a synchronisation


# ---------------------------------------------------------------- the test

@pytest.mark.timeout(180)
async def test_postgresql_restart_under_webhooks_loses_nothing_and_writes_nothing_twice(
        private_postgres: Cluster, amqp_url: str, prefix: str, served_sim: Sim, spawn: Any, cleanup_prefix: Any,
        figures: Any) -> None:
    began = time.monotonic()
    database = private_postgres.url
    rng = random.Random(SEED)
    sim = served_sim.sim
    campaigns = [f"smartlead:{5000 + n}" for n in range(16)]
    for ref in campaigns:
        sim.add_campaign(ref, "ACTIVE")
    spiking = set(campaigns[::2])
    stream = spike_stream(rng, campaigns, spiking, tag="pg-restart", sends=60, group=4)
    batches = [stream[i:i + PER_WEBHOOK] for i in range(0, len(stream), PER_WEBHOOK)]
    expected = Counter(str(e.campaign) for e in stream)
    cleanup_prefix(RETRY_DELAYS)

    env = worker_env(url=amqp_url, prefix=prefix, state=Path("unused.db"), sim=served_sim,
                     BOT_STATE_URL=database, BOT_RETRY_DELAYS=json.dumps(RETRY_DELAYS),
                     BOT_MAX_DELIVERIES=str(MAX_DELIVERIES), BOT_BREAKER_LIMIT="1000", BOT_DRAIN_SECONDS="2",
                     BOT_SWEEP_SECONDS="1", BOT_VENDOR_TIMEOUT="5", BOT_LEASE_SECONDS="3", BOT_PREFETCH="8")
    workers: list[WorkerProcesses] = [spawn(env) for _ in range(2)]
    for worker in workers:
        await worker.start()

    def beating() -> int:
        try:
            return int(_scalar(database, "SELECT count(*) FROM heartbeats WHERE beat_at > now() - interval '3 s'"))
        except psycopg.errors.UndefinedTable:       # no worker has created the schema yet
            return 0

    await until(lambda: beating() == 2, timeout=60, every=0.1, what="both workers up and beating")

    settings = Settings(broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=database,
                        rules_dir=REPO / "rules", http_port=0, retry_delays=RETRY_DELAYS,
                        max_deliveries=MAX_DELIVERIES, webhook_token=SecretStr(TOKEN))
    answers: list[Answer] = []
    tasks: list[asyncio.Task[None]] = []
    sent = [0]
    recovering: asyncio.Task[float] | None = None
    async with running(settings, with_web=True, with_worker=False) as web, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{web.port}/webhooks/events"
        pacer = asyncio.create_task(_pace(http, url, batches, answers, tasks, sent))
        try:
            await until(lambda: sent[0] >= len(batches) // 3, timeout=30, what="a third of the stream sent")
            recorded_before = int(_scalar(database, "SELECT count(*) FROM events"))
            sent_by_stop = sent[0]
            stopping = time.monotonic()
            await private_postgres.stop()
            down = time.monotonic()
            await asyncio.sleep(OUTAGE)             # the outage itself: PostgreSQL is not there
            starting = time.monotonic()
            await private_postgres.start()
            up = time.monotonic()
            sent_by_up = sent[0]
            recovering = asyncio.create_task(_first_record_after(database))
            await pacer
            await asyncio.gather(*tasks)
        except BaseException:
            if recovering is not None:
                recovering.cancel()
            raise
        finally:
            pacer.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(pacer, *tasks, return_exceptions=True)
    streamed = time.monotonic()
    assert recovering is not None

    accepted = {i for a in answers if a.status == 202 for i in a.ids}

    async def drained() -> bool:
        if int(_scalar(database, "SELECT count(*) FROM events")) < len(accepted):
            return False
        if _scalar(database, "SELECT count(*) FROM campaigns WHERE pending IS NOT NULL"):
            return False
        if any(sim.status_of(ref) != "PAUSED" for ref in spiking):
            return False
        return all(q.ready == 0 for q in (await queue_states(amqp_url, Names(prefix), RETRY_DELAYS)).values())

    try:
        await until(drained, timeout=60, every=0.1, what="every accepted event recorded, every pause done, "
                                                        "queues empty")
    except TimeoutError:
        recovering.cancel()
        raise AssertionError(f"not drained; workers' logs:\n{_tails(workers)}") from None
    drain = time.monotonic() - up
    first_record = await asyncio.wait_for(recovering, 10) - up

    # the 202/503 contract
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {202, 503}, statuses
    assert all(a.retry_after for a in answers if a.status == 503)
    assert len({a.n for a in answers if a.status == 202}) == len(batches), "a webhook never accepted"
    while_down = [a for a in answers if a.sent >= stopping and a.answered <= up]
    assert len(while_down) >= OUTAGE / INTERVAL / 2, len(while_down)
    assert {a.status for a in while_down} == {202}, "the web needs no PostgreSQL"
    # nothing accepted lost, nothing written twice
    assert len(accepted) == len(stream)             # the web's ids (the source's id, namespaced)
    recorded = [r[0] for r in _rows(database, "SELECT id FROM events")]
    assert len(recorded) == len(set(recorded)) and set(recorded) == accepted
    counted = _window_counts(database)
    assert counted == expected, "an event folded into its window twice, or not at all"
    posts = [c for c in sim.calls if c.method == "POST"]
    applied = Counter(c.path for c in posts if c.decided == 200)
    assert applied == Counter({f"/campaigns/{ref.partition(':')[2]}/status": 1 for ref in spiking})
    assert {ref for ref in campaigns if sim.status_of(ref) == "PAUSED"} == spiking
    assert sorted(_rows(database, "SELECT campaign, owner FROM holds")) == \
        sorted((ref, f"{OWNER}@{ref}") for ref in spiking)
    placed = _rows(database, "SELECT campaign, count(*) FROM audit WHERE outcome = 'hold_placed' GROUP BY campaign")
    assert dict(placed) == dict.fromkeys(spiking, 1)
    logged = _rows(database, "SELECT campaign, count(*) FROM pause_log GROUP BY campaign")
    assert dict(logged) == dict.fromkeys(spiking, 1)
    queues = await queue_states(amqp_url, Names(prefix), RETRY_DELAYS)
    assert all(q.ready == 0 for q in queues.values()), queues        # the dead letters' queue among them
    # the workers lived through it, hit the outage, and beat again
    assert all(w.current.returncode is None for w in workers), _tails(workers)
    retried = [e for e in _logs(workers) if e.get("event") == "event.retry"]
    state_retries = [e for e in retried if str(e.get("error", "")).startswith("a state ")]
    assert state_retries, "no event met the outage: nothing was tested"
    assert not [e for e in _logs(workers) if e.get("event") in ("message.dead_lettered", "message.handler_failed")]
    await until(lambda: beating() == 2, timeout=10, every=0.1, what="both workers beating again")
    for worker in workers:
        assert await worker.signal(signal.SIGTERM) == 0, worker.text()
    assert int(_scalar(database, "SELECT count(*) FROM heartbeats")) == 0      # each deleted its own row

    figures(f"events={len(stream)} in {len(batches)} webhooks ({PER_WEBHOOK} each, one per {INTERVAL * 1000:.0f} ms) "
            f"over {len(campaigns)} campaigns ({len(spiking)} spiking), 1 web + 2 workers; answers {dict(statuses)}, "
            f"{len(while_down)} of them sent and answered while PostgreSQL was stopping, down or starting (all 202); "
            f"stop at webhook {sent_by_stop} ({recorded_before} events recorded), PostgreSQL stop {down - stopping:.1f} s"
            f" + down {starting - down:.1f} s + start {up - starting:.1f} s (outage {up - stopping:.1f} s), up at "
            f"webhook {sent_by_up}; {len(state_retries)} StateError retries in the workers, 0 dead letters; first "
            f"event recorded {first_record:.2f} s after PostgreSQL was up; stream ended {streamed - up:.1f} s and every"
            f" queue drained {drain:.1f} s after it was up; recorded {len(recorded)} (each once), pauses applied "
            f"{sum(applied.values())} of {len(spiking)} (POST attempts {len(posts)}); in {time.monotonic() - began:.1f} s")


async def _first_record_after(url: str) -> float:
    """When the workers record again: the events count grows past its first reading (monotonic time)."""
    first: int | None = None
    while True:
        with contextlib.suppress(psycopg.OperationalError):
            async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5) as conn:
                row = await (await conn.execute("SELECT count(*) FROM events")).fetchone()
                count = int(row[0]) if row else 0
                if first is not None and count > first:
                    return time.monotonic()
                first = count if first is None else first
        await asyncio.sleep(0.02)       # another process's progress: nothing here can wake this task


def _logs(workers: list[WorkerProcesses]) -> list[dict[str, Any]]:
    return [entry for worker in workers for entry in worker.logs()]


def _tails(workers: list[WorkerProcesses]) -> str:
    return "\n".join(worker.text() for worker in workers)


def _window_counts(url: str) -> Counter[str]:
    """Events each campaign's bounce-guard window counted (sends and bounces)."""
    counts: Counter[str] = Counter()
    for key, state in _rows(url, "SELECT key, state FROM windows WHERE rule = 'bounce-guard'"):
        counts[key] = _counted(state)
    return counts


def _counted(state: Any) -> int:
    """A `last: 200` window under 200 sends keeps every entry: `d` a send, `n` a bounce."""
    return len(state["seq"])
