"""Smartlead misbehaves while pauses are due: it is down (503), then hangs past the client timeout, then
answers every pause with 429 and Retry-After. Decisions wait and retry, each is applied exactly once,
Smartlead's documented 10 requests per 2 s is never exceeded. An outage longer than the retry budget ends
in a dead-lettered, recorded and notified failure, and the sweep applies the pause once the vendor is back.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.broker.topology import Names
from bot.config import Settings
from bot.service import Services, running
from bot.testing import DEFAULT_KEYS, CallRecord, max_in_window
from tests.conftest import REPO
from tests.faults.conftest import (
    RecordingNotifier,
    Sim,
    db_count,
    db_rows,
    publish_all,
    queue_state,
    queue_states,
    spike_stream,
    until,
)

pytestmark = pytest.mark.integration

LIMIT, PERIOD = 10, 2.0          # Smartlead: "10 requests every 2 seconds" (the client's default too)
RETRY_AFTER = 1.0
DOWN, HANGING, STORM = 2.5, 2.5, 4.0   # seconds of 503s, then of timeouts, then of 429s on every pause
_CAMPAIGN = re.compile(r"/campaigns/(\d+)")


@asynccontextmanager
async def _bot(amqp_url: str, prefix: str, sim: Sim, state: Path, notifier: RecordingNotifier,
               **overrides: Any) -> AsyncIterator[Services]:
    settings = Settings(
        broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=f"sqlite:///{state}",
        rules_dir=REPO / "rules", http_port=0, inventory_refresh=0, breaker_limit=1000, drain_seconds=1,
        smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]), smartlead_base_url=sim.smartlead_url,
        vendor_timeout=0.5, **overrides,
    )
    async with running(settings, with_web=False, with_worker=True, notifier=notifier) as services:
        yield services


def _pending(state: Path) -> int:
    return db_count(state, "SELECT COUNT(*) FROM campaigns WHERE pending IS NOT NULL")


def _applied(calls: list[CallRecord]) -> Counter[str]:
    return Counter(c.path for c in calls if c.method == "POST" and c.status == 200)


def _waits_after_429(calls: list[CallRecord]) -> list[float]:
    """For each 429, how long until the next request about the same campaign arrived."""
    def campaign(call: CallRecord) -> str:
        found = _CAMPAIGN.match(call.path)
        return found[1] if found else call.path

    waits = []
    for n, call in enumerate(calls):
        later = [c.at for c in calls[n + 1:] if campaign(c) == campaign(call)]
        if call.status == 429 and later:
            waits.append(min(later) - call.at)
    return waits


@pytest.mark.timeout(90)
async def test_outage_then_429_storm_pauses_each_campaign_once_within_the_rate_limit(
        amqp_url: str, prefix: str, served_sim: Sim, tmp_path: Path, cleanup_prefix: Any, figures: Any) -> None:
    sim, state, names = served_sim.sim, tmp_path / "state.db", Names(prefix)
    retry_delays = (0.5, 1.0, 2.0, 4.0, 8.0)       # the retry budget (with 3 attempts each) outlasts the outage
    cleanup_prefix(retry_delays)
    spiking = [f"smartlead:{5001 + n}" for n in range(6)]
    calm = [f"smartlead:{5011 + n}" for n in range(2)]
    for ref in spiking + calm:
        sim.add_campaign(ref, "ACTIVE")
    events = spike_stream(random.Random(3), spiking + calm, set(spiking), tag="outage")
    notices = RecordingNotifier()
    # The periodic sweep (30 s by default) stays out of it: each decision is carried by its own message,
    # retried in the call (Retry-After honoured) and then through RabbitMQ's retry queues.
    async with _bot(amqp_url, prefix, served_sim, state, notices, retry_delays=retry_delays,
                    vendor_max_attempts=3) as services:
        assert services.worker is not None
        sim.inject("smartlead", "error", status=503, seconds=DOWN)
        sim.inject("smartlead", "timeout", delay=1.0, seconds=DOWN + HANGING)          # past vendor_timeout
        sim.inject("smartlead", "rate_limit", method="POST", retry_after=RETRY_AFTER,
                   seconds=DOWN + HANGING + STORM)
        started = time.monotonic()
        await publish_all(services.broker, events)

        async def done() -> bool:
            return (all(sim.status_of(ref) == "PAUSED" for ref in spiking) and not _pending(state)
                    and db_count(state) == len(events)
                    and all(q.ready == 0 for q in (await queue_states(amqp_url, names, retry_delays)).values()))

        await until(done, timeout=60, every=0.05, what="every pause applied and every queue empty")
        elapsed = time.monotonic() - started
        retries = services.worker.handled["retry"]

    calls = sim.calls_for("smartlead")
    statuses = Counter("timeout" if c.status is None else c.status for c in calls)
    assert {503, "timeout", 429} <= set(statuses), statuses        # every phase of the outage was met
    assert _applied(calls) == Counter({f"/campaigns/{ref.partition(':')[2]}/status": 1 for ref in spiking})
    assert {ref for ref in spiking + calm if sim.status_of(ref) == "PAUSED"} == set(spiking)
    assert 422 not in statuses, "a second pause was sent"
    peak = max_in_window(calls, PERIOD)
    assert peak <= LIMIT, f"{peak} requests within {PERIOD} s"
    waits = _waits_after_429(calls)
    assert waits and min(waits) >= RETRY_AFTER, f"a retry came {min(waits):.3f} s after a 429"
    assert retries > 0, "the outage should have outlasted the in-call retries"
    actions = db_rows(state, "SELECT campaign, outcome FROM audit WHERE kind = 'action'")
    assert sorted(actions) == sorted((ref, "paused") for ref in spiking)
    assert db_count(state, "SELECT COUNT(*) FROM audit WHERE kind = 'failure'") == 0
    assert sorted(n.campaign or "" for n in notices.of("paused")) == sorted(spiking)
    assert not notices.of("failed")
    figures(f"vendor answers {dict(sorted(statuses.items(), key=str))} over {len(calls)} requests; "
            f"messages sent back to RabbitMQ's retry queues {retries}; busiest {PERIOD:g} s window {peak} "
            f"requests (limit {LIMIT}); after each 429 the campaign waited >= {min(waits):.2f} s "
            f"(Retry-After {RETRY_AFTER:g}); pauses applied {sum(_applied(calls).values())} for {len(spiking)} "
            f"campaigns, last {elapsed:.1f} s after the spike (outage {DOWN + HANGING + STORM:g} s)")


@pytest.mark.timeout(90)
async def test_outage_beyond_the_retry_budget_is_dead_lettered_recorded_notified_then_swept_once(
        amqp_url: str, prefix: str, served_sim: Sim, tmp_path: Path, cleanup_prefix: Any, figures: Any) -> None:
    sim, state, names = served_sim.sim, tmp_path / "state.db", Names(prefix)
    retry_delays = (0.2, 0.4)
    cleanup_prefix(retry_delays)
    ref = "smartlead:5101"
    sim.add_campaign(ref, "ACTIVE")
    events = spike_stream(random.Random(5), [ref], {ref}, tag="budget")
    notices = RecordingNotifier()
    async with _bot(amqp_url, prefix, served_sim, state, notices, retry_delays=retry_delays,
                    vendor_max_attempts=2, sweep_seconds=0.5) as services:
        assert services.worker is not None
        sim.inject("smartlead", "error", status=503, forever=True)
        started = time.monotonic()
        await publish_all(services.broker, events)
        await notices.wait(lambda: bool(notices.of("failed")), timeout=30, what="a failure notice")
        gave_up = time.monotonic() - started
        await until(lambda: _ready(amqp_url, names.dead_queue), timeout=10, what="a dead letter")
        dead = await services.broker.dead_letters(10, peek=True)
        failures = db_rows(state, "SELECT campaign, action, outcome, detail FROM audit WHERE kind = 'failure'")
        assert sim.status_of(ref) == "ACTIVE" and not _applied(sim.calls)
        assert _pending(state) == 1, "the pause intent must survive the dead letter"
        down_calls = len(sim.calls)

        sim.clear_faults()                                   # the vendor is back; only the sweep is left to act
        recovered = time.monotonic()
        await sim.wait_for_status(ref, "PAUSED", timeout=15)
        await until(lambda: not _pending(state), timeout=10, what="the pause recorded")
        swept = time.monotonic() - recovered
        await services.worker.sweep()                        # one more sweep: nothing left to do
        paused_notices = notices.of("paused")

    [(delivery, reason)] = dead
    assert delivery.message_id in {e.id for e in events}
    assert reason.startswith("retries exhausted:") and "503" in reason, reason
    assert [(f[0], f[1], f[2]) for f in failures] == [(ref, "pause", "failed")]
    assert "dead-lettered" in failures[0][3]
    [failed] = notices.of("failed")
    assert failed.campaign == ref
    assert _applied(sim.calls) == Counter({"/campaigns/5101/status": 1})
    assert [(n.campaign) for n in paused_notices] == [ref]
    actions = db_rows(state, "SELECT campaign, outcome FROM audit WHERE kind = 'action'")
    assert actions == [(ref, "paused")]
    assert max_in_window(sim.calls, PERIOD) <= LIMIT
    figures(f"{down_calls} requests answered 503 before giving up {gave_up:.1f} s after the spike "
            f"(retry budget: {len(retry_delays)} redeliveries x 2 attempts); dead letters 1 ({reason[:70]}…); "
            f"failure audit rows {len(failures)}; failure notices 1; after recovery the sweep paused it in "
            f"{swept:.2f} s with {sum(_applied(sim.calls).values())} vendor write")


async def _ready(url: str, queue: str) -> bool:
    return (await queue_state(url, queue)).ready > 0
