"""Fault tests: shared pieces. The RabbitMQ fixtures of tests/integration, the vendor simulator served in
the test process, a `python -m bot worker` subprocess, probes of the state database and of queues,
seeded event streams, and `figures`: each test's measured numbers, printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest

import tests.integration.conftest as integration
from bot.broker.amqp import AmqpBroker
from bot.broker.base import Broker
from bot.broker.topology import Names
from bot.events import Event
from bot.notify import Notice
from bot.testing import DEFAULT_KEYS, VendorSimulator
from tests.conftest import REPO
from tests.integration.conftest import PrivateNode, delete_prefix

__all__ = ["PrivateNode", "delete_prefix"]

# The RabbitMQ fixtures of tests/integration, offered here too (pytest finds fixtures by name in conftest).
amqp_url = integration.amqp_url
prefix = integration.prefix
private_rabbitmq = integration.private_rabbitmq

_FIGURES: list[str] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """`figures("events=…")`: printed now (visible with -s) and in the run's terminal summary."""
    def add(line: str) -> None:
        text = f"{request.node.name}: {line}"
        _FIGURES.append(text)
        print(text, flush=True)
    return add


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("fault-test figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


async def until(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.02) -> Any:  # noqa: ASYNC109
    """Poll `condition` (sync or async) until it returns a truthy value; TimeoutError naming `what`.

    Only for state that lives in another process or in RabbitMQ (a SQLite row count, a queue depth):
    nothing there can wake this process up, so a short bounded poll is the only way to wait for it.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(every)


# ---------------------------------------------------------------- state database (read from outside)

def db_rows(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of `sql` on the worker's SQLite file (WAL: reading never blocks the writer); [] before the
    schema exists."""
    if not path.exists():
        return []
    with closing(sqlite3.connect(path, timeout=10)) as db:
        try:
            return [tuple(row) for row in db.execute(sql, args).fetchall()]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def db_count(path: Path, sql: str = "SELECT COUNT(*) FROM events", args: tuple[Any, ...] = ()) -> int:
    rows = db_rows(path, sql, args)
    return int(rows[0][0]) if rows else 0


# ---------------------------------------------------------------- queues

@dataclass(frozen=True, slots=True)
class QueueState:
    ready: int          # messages waiting (unacked ones are not counted by RabbitMQ)
    consumers: int


async def queue_state(url: str, queue: str) -> QueueState:
    """Passive declare: the queue's ready message count and consumer count."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return QueueState(result.message_count or 0, result.consumer_count or 0)


async def queue_states(url: str, names: Names, tiers: tuple[float, ...]) -> dict[str, QueueState]:
    return {queue: await queue_state(url, queue) for queue in names.all_queues(tiers)}


# ---------------------------------------------------------------- events

def spike_stream(rng: random.Random, campaigns: list[str], spiking: set[str], *, tag: str,
                 sends: int = 60, group: int = 4) -> list[Event]:
    """Each campaign: `sends` sends, then 3 bounces (5 %: bounce-guard pauses) if spiking, else 1 (1.7 %).
    Campaigns are taken in a seeded order, `group` at a time, their events randomly interleaved within
    the group (each campaign's own order kept), so pauses fall all along the stream."""
    order = list(campaigns)
    rng.shuffle(order)
    stream: list[Event] = []
    for start in range(0, len(order), group):
        lanes = {ref: _campaign_events(ref, sends, 3 if ref in spiking else 1, tag) for ref in order[start:start + group]}
        while lanes:
            ref = rng.choice(sorted(lanes))
            stream.append(lanes[ref].pop(0))
            if not lanes[ref]:
                del lanes[ref]
    return stream


def _campaign_events(ref: str, sends: int, bounces: int, tag: str) -> list[Event]:
    kinds = ["email.sent"] * sends + ["email.bounced"] * bounces
    return [Event.model_validate({"id": f"{tag}:{ref}:{n}", "type": kind, "source": "smartlead", "campaign": ref,
                                  "occurred_at": "2026-11-23T09:00:00Z", "data": {"from_email": "sender@example.com"}})
            for n, kind in enumerate(kinds)]


async def publish_all(broker: Broker, events: list[Event], batch: int = 200) -> None:
    for start in range(0, len(events), batch):
        await asyncio.gather(*(broker.publish(e.model_dump_json().encode(), message_id=e.id, routing_key=e.routing_key)
                               for e in events[start:start + batch]))


async def publish_stream(url: str, prefix: str, events: list[Event], *, delivery_limit: int,
                         retry_delays: tuple[float, ...]) -> None:
    """Declare the prefix's topology (as the worker will) and publish `events` with confirms, then close."""
    publisher = AmqpBroker(url, prefix=prefix, prefetch=1, delivery_limit=delivery_limit, retry_delays=retry_delays)
    await publisher.start()
    try:
        await publish_all(publisher, events)
    finally:
        await publisher.close()


# ---------------------------------------------------------------- simulator and worker process

@dataclass
class Sim:
    sim: VendorSimulator
    smartlead_url: str


@pytest.fixture
async def served_sim(aiohttp_server: Any) -> Sim:
    """The vendor simulator served from the test process (its call log is readable directly)."""
    sim = VendorSimulator()
    server = await aiohttp_server(sim.app)
    return Sim(sim, sim.base_urls(str(server.make_url("")))["smartlead"])


def worker_env(*, url: str, prefix: str, state: Path, sim: Sim | None, **extra: str) -> dict[str, str]:
    """Environment of a `python -m bot worker`: only what it is given (no BOT_* from the test run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update({
        "BOT_BROKER_URL": url, "BOT_BROKER_PREFIX": prefix, "BOT_STATE_URL": f"sqlite:///{state}",
        "BOT_RULES_DIR": str(REPO / "rules"), "BOT_LOG_JSON": "true",
        "BOT_LOG_LEVEL": "debug",            # `event.handled` of an ack or a duplicate is a debug line
        "BOT_INVENTORY_REFRESH": "0", "PYTHONUNBUFFERED": "1",
    })
    if sim is not None:
        env.update({"BOT_SMARTLEAD_API_KEY": DEFAULT_KEYS["smartlead"], "BOT_SMARTLEAD_BASE_URL": sim.smartlead_url})
    env.update(extra)
    return env


@dataclass
class WorkerProcesses:
    """Starts `python -m bot worker` processes one after another; logs go to files in `log_dir`."""

    env: dict[str, str]
    log_dir: Path
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    @property
    def current(self) -> asyncio.subprocess.Process:
        return self.processes[-1]

    async def start(self) -> asyncio.subprocess.Process:
        log = self.log_dir / f"worker-{len(self.processes)}.log"
        with log.open("wb") as out:   # the child keeps its own copy of the descriptor
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "worker", env=self.env, cwd=REPO,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    async def signal(self, sig: signal.Signals, *, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        """Send `sig` to the current worker and wait for it to exit; its exit code."""
        process = self.current
        process.send_signal(sig)
        async with asyncio.timeout(timeout):
            return await process.wait()

    def logs(self, index: int | None = None) -> list[dict[str, Any]]:
        """The JSON log lines of one worker (or of all); a line cut short by SIGKILL is skipped."""
        files = sorted(self.log_dir.glob("worker-*.log")) if index is None else [self.log_dir / f"worker-{index}.log"]
        lines: list[dict[str, Any]] = []
        for path in files:
            for raw in path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    lines.append(entry)
        return lines

    def text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("worker-*.log")))

    async def kill_all(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, str]], WorkerProcesses]]:
    """`spawn(env)`: a WorkerProcesses; every process still running at the end is killed."""
    made: list[WorkerProcesses] = []

    def make(env: dict[str, str]) -> WorkerProcesses:
        log_dir = tmp_path / f"workers-{len(made)}"
        log_dir.mkdir()
        made.append(WorkerProcesses(env, log_dir))
        return made[-1]

    yield make
    for workers in made:
        await workers.kill_all()
        # captured: pytest shows it with a failed test's report (the log files go with their temp directory)
        print(f"--- {workers.log_dir.name}: each worker's last lines\n{workers.text()}")


@pytest.fixture
async def cleanup_prefix(amqp_url: str, prefix: str) -> AsyncIterator[Callable[[tuple[float, ...]], None]]:
    """Register the retry tiers used under `prefix`; every queue and exchange of it is deleted afterwards."""
    tiers: set[float] = set()
    yield tiers.update
    await delete_prefix(amqp_url, Names(prefix), tiers)


class RecordingNotifier:
    """A Notifier that keeps every notice (`running(..., notifier=...)`); `wait` wakes on each one."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self._changed = asyncio.Condition()

    async def notify(self, notice: Notice) -> None:
        async with self._changed:
            self.notices.append(notice)
            self._changed.notify_all()

    def of(self, kind: str) -> list[Notice]:
        return [n for n in self.notices if n.kind == kind]

    async def wait(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(condition)
        except TimeoutError:
            kinds = [(n.kind, n.campaign) for n in self.notices[-10:]]
            raise TimeoutError(f"{what} not reached within {timeout}s; last notices {kinds}") from None
