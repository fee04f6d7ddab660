"""The worker is SIGKILLed ten times at seeded random points of a stream and restarted each time.

A real `python -m bot worker` process; the vendor simulator and the publisher live in the test. A kill
lands either after the worker recorded a random number of further events, or while a pause is in flight
(the simulator applied it and holds the answer back, so the worker dies between the vendor's effect and
its own record). Afterwards: every event recorded once, one vendor write per spiking campaign and none
elsewhere, one hold per spiking campaign, nothing left in any queue.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bot.broker.topology import Names
from bot.testing import Fault
from tests.faults.conftest import (
    Sim,
    WorkerProcesses,
    db_count,
    db_rows,
    publish_stream,
    queue_states,
    spike_stream,
    until,
    worker_env,
)

pytestmark = pytest.mark.integration

SEED = 20261123
KILLS = 10
CAMPAIGNS = 60                    # half of them spike
RETRY_DELAYS = (0.1, 0.2)
#: each kill hands the worker's in-flight messages back, and RabbitMQ counts that as a delivery
MAX_DELIVERIES = 25
WRITE_KILL_CHANCE = 0.35          # otherwise: after a random number of further events
OWNER = "rule:bounce-guard"


def _hit(fault: Fault) -> bool:
    return fault.hits >= 1


def _recorded(state: Path, count: int) -> bool:
    return db_count(state) >= count


def _started(workers: WorkerProcesses, index: int) -> bool:
    return any(e.get("event") == "worker.started" for e in workers.logs(index))


async def _finished(state: Path, total: int, spiking: set[str], sim: Any, url: str, names: Names) -> bool:
    if db_count(state) < total or db_count(state, "SELECT COUNT(*) FROM campaigns WHERE pending IS NOT NULL"):
        return False
    if any(sim.status_of(ref) != "PAUSED" for ref in spiking):
        return False
    return all(q.ready == 0 for q in (await queue_states(url, names, RETRY_DELAYS)).values())


@pytest.mark.timeout(120)
async def test_sigkill_ten_times_mid_stream_loses_and_repeats_nothing(
        amqp_url: str, prefix: str, served_sim: Sim, spawn: Any, tmp_path: Path, cleanup_prefix: Any,
        figures: Any) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    sim = served_sim.sim
    campaigns = [f"smartlead:{2000 + n}" for n in range(CAMPAIGNS)]
    spiking = set(rng.sample(campaigns, CAMPAIGNS // 2))
    for ref in campaigns:
        sim.add_campaign(ref, "ACTIVE")
    stream = spike_stream(rng, campaigns, spiking, tag="kill")
    total = len(stream)
    state, names = tmp_path / "state.db", Names(prefix)
    cleanup_prefix(RETRY_DELAYS)

    await publish_stream(amqp_url, prefix, stream, delivery_limit=MAX_DELIVERIES, retry_delays=RETRY_DELAYS)

    workers = spawn(worker_env(
        url=amqp_url, prefix=prefix, state=state, sim=served_sim, BOT_RETRY_DELAYS=json.dumps(RETRY_DELAYS),
        BOT_MAX_DELIVERIES=str(MAX_DELIVERIES), BOT_BREAKER_LIMIT="1000", BOT_DRAIN_SECONDS="2",
        BOT_SWEEP_SECONDS="1", BOT_VENDOR_TIMEOUT="5",
    ))
    kinds: Counter[str] = Counter()
    at: list[int] = []
    # spread over the stream; a worker overshoots a threshold by what it does between two polls
    thresholds = sorted(rng.sample(range(total // 20, total * 9 // 10), KILLS))
    for kill in range(KILLS):
        recorded = db_count(state)
        unpaused = any(sim.status_of(ref) != "PAUSED" for ref in spiking)
        fault, threshold = None, 0
        if unpaused and recorded < total * 3 // 4 and rng.random() < WRITE_KILL_CHANCE:
            kind = "while a pause is in flight"
            # in place before the worker starts: the next pause is applied, then its answer hangs
            fault = sim.inject("smartlead", "slow", method="POST", times=1, delay=60, after_apply=True)
        elif recorded < total:
            kind = "after k more events"
            threshold = min(total, max(thresholds[kill], recorded + 1))
        else:                   # a pause held up by the vendor's rate limit can outlast the stream
            kind = "right after start (stream done)"
        index = len(workers.processes)
        await workers.start()
        if fault is not None:
            await until(partial(_hit, fault), timeout=30, what="a pause in flight")
        elif threshold:
            await until(partial(_recorded, state, threshold), timeout=30, every=0.005,
                        what=f"{threshold} events recorded")
        else:
            await until(partial(_started, workers, index), timeout=30, every=0.01, what="worker started")
        assert await workers.signal(signal.SIGKILL) == -signal.SIGKILL, workers.text()
        if fault is not None:
            sim.release_hangs()            # the vendor did pause; its answer goes to a dead process
        kinds[kind] += 1
        at.append(db_count(state))

    index = len(workers.processes)
    await workers.start()
    # consuming first: the stream may be done already, and a SIGTERM before the handlers are installed
    # would end the process the default way, which says nothing about a graceful stop
    await until(partial(_started, workers, index), timeout=30, every=0.01, what="worker started")
    await until(lambda: _finished(state, total, spiking, sim, amqp_url, names), timeout=60, every=0.1,
                what="every event recorded, every pause done, queues empty")
    assert await workers.signal(signal.SIGTERM) == 0, workers.text()

    assert all(n < total for n in at), f"kills must land mid-stream; events recorded at each kill: {at} of {total}"
    queues = await queue_states(amqp_url, names, RETRY_DELAYS)
    assert {name: (q.ready, q.consumers) for name, q in queues.items()} == {name: (0, 0) for name in queues}
    assert {row[0] for row in db_rows(state, "SELECT id FROM events")} == {e.id for e in stream}
    assert db_count(state) == total

    posts = [c for c in sim.calls if c.method == "POST"]
    # `decided`: what the vendor did, also when the worker died before the answer went out (status None);
    # a pause held in flight may be one the rate limit refused
    applied = Counter(c.path for c in posts if c.decided == 200)
    assert applied == Counter({f"/campaigns/{ref.partition(':')[2]}/status": 1 for ref in spiking})
    assert len([c for c in posts if c.status is None]) == kinds["while a pause is in flight"]
    assert all(c.body == {"status": "PAUSED"} for c in posts)
    assert not [c for c in posts if c.status not in (200, 429, None)], "a refused second pause: a double write"
    assert {ref for ref in campaigns if sim.status_of(ref) == "PAUSED"} == spiking

    assert sorted(db_rows(state, "SELECT campaign, owner FROM holds")) == sorted((ref, f"{OWNER}@{ref}") for ref in spiking)
    decisions = Counter(r[0] for r in db_rows(state, "SELECT campaign FROM audit WHERE kind = 'decision'"))
    assert decisions == Counter(dict.fromkeys(spiking, 1))
    actions = db_rows(state, "SELECT campaign, outcome FROM audit WHERE kind = 'action'")
    assert Counter(r[0] for r in actions) == Counter(dict.fromkeys(spiking, 1))
    assert {r[1] for r in actions} <= {"paused", "confirmed"}
    assert {r[0] for r in db_rows(state, "SELECT campaign FROM campaigns WHERE bot_paused = 1")} == spiking

    handled = [e for e in workers.logs() if e.get("event") == "event.handled"]
    duplicates = sum(1 for e in handled if e.get("outcome") == "duplicate")
    confirmed = sum(1 for r in actions if r[1] == "confirmed")
    figures(f"events={total} campaigns={CAMPAIGNS} spiking={len(spiking)} kills={KILLS} "
            f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}; events recorded at each kill {at}, "
            f"{sum(1 for n in at if n < total)} before the stream's end) "
            f"worker starts={len(workers.processes)} redeliveries seen (duplicates)={duplicates} "
            f"messages handled={len(handled)} vendor writes={sum(applied.values())} "
            f"(POST attempts {len(posts)}, pauses confirmed after a restart {confirmed}) "
            f"holds={len(spiking)} in {time.monotonic() - started:.1f} s")
