"""SIGTERM to a `python -m bot worker` under load, while a vendor call is in flight: it finishes what it
holds, exits 0, and leaves every other message ready in the queue (recorded + ready == published, no
consumer); a new worker then finishes the rest without seeing a single message twice."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot.broker.topology import Names
from tests.faults.conftest import (
    Sim,
    db_count,
    publish_stream,
    queue_state,
    queue_states,
    spike_stream,
    until,
    worker_env,
)

pytestmark = pytest.mark.integration

SEED = 4
CAMPAIGNS = 20
RETRY_DELAYS = (0.2, 0.5)
MAX_DELIVERIES = 10
DRAIN = 10.0                  # an upper bound: the worker exits as soon as its in-flight work is done
VENDOR_LATENCY = 0.3          # every simulated vendor request takes this long: calls are in flight


def _pending(state: Path) -> int:
    return db_count(state, "SELECT COUNT(*) FROM campaigns WHERE pending IS NOT NULL")


@pytest.mark.timeout(90)
async def test_sigterm_under_load_loses_nothing_and_leaves_nothing_unacked(
        amqp_url: str, prefix: str, served_sim: Sim, spawn: Any, tmp_path: Path, cleanup_prefix: Any,
        figures: Any) -> None:
    rng = random.Random(SEED)
    sim = served_sim.sim
    campaigns = [f"smartlead:{3000 + n}" for n in range(CAMPAIGNS)]
    spiking = set(rng.sample(campaigns, CAMPAIGNS // 2))
    for ref in campaigns:
        sim.add_campaign(ref, "ACTIVE")
    slow = sim.inject("smartlead", "slow", delay=VENDOR_LATENCY, forever=True)
    stream = spike_stream(rng, campaigns, spiking, tag="term")
    total = len(stream)
    state, names = tmp_path / "state.db", Names(prefix)
    cleanup_prefix(RETRY_DELAYS)

    await publish_stream(amqp_url, prefix, stream, delivery_limit=MAX_DELIVERIES, retry_delays=RETRY_DELAYS)

    workers = spawn(worker_env(
        url=amqp_url, prefix=prefix, state=state, sim=served_sim, BOT_RETRY_DELAYS="[0.2, 0.5]",
        BOT_MAX_DELIVERIES=str(MAX_DELIVERIES), BOT_BREAKER_LIMIT="1000", BOT_DRAIN_SECONDS=str(DRAIN),
    ))
    await workers.start()
    # A third of the stream done and a vendor request inside the simulator right now (hit, not yet answered).
    await until(lambda: db_count(state) >= total // 3 and slow.hits > len(sim.calls), timeout=45,
                what="load with a vendor call in flight")
    in_flight_vendor = slow.hits - len(sim.calls)
    stopping = time.monotonic()
    assert await workers.signal(signal.SIGTERM, timeout=DRAIN + 20) == 0, workers.text()
    stop_seconds = time.monotonic() - stopping

    recorded = db_count(state)
    work = await queue_state(amqp_url, names.work)
    drained = [e for e in workers.logs(0) if e.get("event") == "broker.drained"]
    assert work.consumers == 0
    assert work.ready + recorded == total, f"ready {work.ready} + recorded {recorded} != published {total}"
    assert 0 < recorded < total
    assert [(e["finished"] > 0, e["cancelled"]) for e in drained] == [(True, 0)], drained
    assert _pending(state) == 0, "a vendor action was left half done"
    others = {n: q for n, q in (await queue_states(amqp_url, names, RETRY_DELAYS)).items() if n != names.work}
    assert all(q.ready == 0 for q in others.values()), others

    await workers.start()

    async def finished() -> bool:
        return (db_count(state) == total and not _pending(state)
                and all(sim.status_of(ref) == "PAUSED" for ref in spiking)
                and (await queue_state(amqp_url, names.work)).ready == 0)

    await until(finished, timeout=45, every=0.1, what="the second worker finishing the stream")
    assert await workers.signal(signal.SIGTERM, timeout=DRAIN + 20) == 0, workers.text()

    queues = await queue_states(amqp_url, names, RETRY_DELAYS)
    assert {n: (q.ready, q.consumers) for n, q in queues.items()} == {n: (0, 0) for n in queues}
    second = [e for e in workers.logs(1) if e.get("event") == "event.handled"]
    assert len(second) == total - recorded
    assert not [e for e in second if e.get("outcome") == "duplicate"], "a message came back after it was processed"
    writes = Counter(c.path for c in sim.calls if c.method == "POST" and c.status == 200)
    assert writes == Counter({f"/campaigns/{ref.partition(':')[2]}/status": 1 for ref in spiking})
    assert {ref for ref in campaigns if sim.status_of(ref) == "PAUSED"} == spiking

    figures(f"published={total} recorded at SIGTERM={recorded} ready after exit={work.ready} "
            f"consumers after exit={work.consumers} (recorded + ready = {recorded + work.ready}) "
            f"in flight at SIGTERM: {drained[0]['finished']} messages finished, {drained[0]['cancelled']} cancelled, "
            f"{in_flight_vendor} vendor call(s); exit 0 after {stop_seconds:.2f} s (drain limit {DRAIN:g} s); "
            f"second worker handled {len(second)} (duplicates 0); vendor writes={sum(writes.values())} "
            f"for {len(spiking)} spiking campaigns")
