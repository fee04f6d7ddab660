"""Fleet benchmark: real `python -m bot worker` processes on SQLite and on PostgreSQL, 1 worker against 2 and 3.

    .venv/bin/python -m bench.fleet                       # 20,000 events per case, about a minute here
    .venv/bin/python -m bench.fleet --events 200 --workers 1 --stores sqlite,postgres    # smoke run

Each case (store, number of workers) gets its own broker prefix and its own state (a SQLite file in a temp
directory; a scratch PostgreSQL database, dropped afterwards). N canonical events (bench.load's mix: 500
campaigns, sends with a bounce in 40, few decisions; vendors keyless, so dry run) are published into the
prefix's work queue first; then K workers start with 100 rules loaded (10 measuring sends), at info level.

Measured from the moment the last of the K workers logs `worker.started` (its imports, schema upgrade and
connections are not counted) to the last event recorded in the state database:
- events/s: events recorded in that window (`events.recorded_at`) over its length; per worker: / K;
- CPU µs/event: the workers' utime + stime (/proc/<pid>/stat) over the window, summed over the K processes,
  over the events recorded in it. The state has no column naming the worker that recorded an event, and
  a debug line per event would cost CPU, so this is total CPU over total events (the per-process split of
  the CPU is printed to show the balance);
- box CPU: the share of the machine's cores busy during the window (/proc/stat), everything included
  (RabbitMQ, PostgreSQL, the workers, anything else running);
- PostgreSQL server CPU µs/event: the local `postgres` processes' CPU over the window (a server shared with
  other work counts that too; absent when the server is on another machine).
The workers' warning and error log lines are counted and printed by name (retries, deadlocks, lost
leases), and dead-lettered messages too: a clean run has neither.
SQLite takes one worker per file (bot.state.worker_lock), so its 3-worker case is skipped.

Broker: BOT_BENCH_AMQP_URL, else BOT_TEST_AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/. PostgreSQL
server: BOT_BENCH_POSTGRES_URL, else BOT_TEST_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import aio_pika
import psycopg

from bench._common import REPO, amqp_url, delete_queues, scratch_database
from bench.load import RETRY, events, publish_events, rules_dir
from bot.broker.topology import Names
from bot.log import configure_logging

STORES: Final = ("sqlite", "postgres")
CAMPAIGNS: Final = 500
_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
#: a measuring window with fewer events than this is too short to say anything (all done before the last
#: worker started): the case reports no figure rather than a wrong one
_MIN_MEASURED: Final = 20


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def box_ticks() -> tuple[int, int]:
    """(busy, total) ticks of the whole machine, from /proc/stat's first line."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]                                    # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


def server_ticks() -> dict[int, int]:
    """CPU ticks of every local `postgres` process (the server's backends serving the workers, and whatever
    else that server does meanwhile), by pid; empty where PostgreSQL runs elsewhere."""
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    ticks[int(entry.name)] = cpu_ticks(int(entry.name))
            except OSError:
                continue                            # it ended meanwhile
    return ticks


class WorkerProcess:
    """One `python -m bot worker`; its stdout (JSON log lines, info level) read by a thread that notes when
    it logged `worker.started` and keeps the last lines for an error message."""

    def __init__(self, env: dict[str, str]) -> None:
        # nothing of the caller's BOT_* settings leaks in (a vendor key would make it live)
        base = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
        self.process = subprocess.Popen([sys.executable, "-m", "bot", "worker"], env={**base, **env}, cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started = threading.Event()
        self.tail: deque[str] = deque(maxlen=40)
        #: log lines at warning or error, by event name (retries, deadlocks, lost leases): printed if any
        self.warnings: Counter[str] = Counter()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.tail.append(line.rstrip())
            if '"worker.started"' in line:
                self.started.set()
            elif '"level": "warning"' in line or '"level": "error"' in line:
                try:
                    self.warnings[str(json.loads(line).get("event"))] += 1
                except ValueError:
                    self.warnings["(unparsed)"] += 1

    @property
    def pid(self) -> int:
        return self.process.pid

    def check(self) -> None:
        if self.process.poll() is not None:
            self._reader.join(timeout=2)
            raise RuntimeError(f"worker {self.pid} exited with {self.process.returncode}:\n" + "\n".join(self.tail))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class Case:
    store: str
    workers: int
    skipped: str | None = None
    measured: int = 0                   # events recorded in the window
    seconds: float = 0.0                # the window: the last worker started → the last event recorded
    cpu_seconds: list[float] = field(default_factory=list)       # per worker process, over the window
    box_busy: float = float("nan")      # share of the machine's cores busy over the window
    server_seconds: float | None = None  # CPU of the local PostgreSQL server's processes over the window
    database: str | None = None         # the scratch database's name (dropped afterwards)
    dead: int = 0                       # messages dead-lettered (should be 0)
    warnings: Counter[str] = field(default_factory=Counter)     # the workers' warning/error log lines

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.measured >= _MIN_MEASURED and self.seconds > 0

    @property
    def rate(self) -> float:
        return self.measured / self.seconds if self.ok else float("nan")

    @property
    def per_worker(self) -> float:
        return self.rate / self.workers

    @property
    def cpu_us(self) -> float:
        return sum(self.cpu_seconds) / self.measured * 1e6 if self.ok else float("nan")


class Recorded:
    """The state database's `events` table, read from outside the workers on one connection, opened once
    the workers have created the schema (`open`) and closed with `close`."""

    def __init__(self, store: str, target: str) -> None:
        self.store, self.target = store, target
        self._sqlite: sqlite3.Connection | None = None
        self._pg: psycopg.Connection[tuple[object, ...]] | None = None

    def open(self) -> None:
        if self.store == "sqlite":
            self._sqlite = sqlite3.connect(self.target)
        else:
            self._pg = psycopg.connect(self.target, autocommit=True, connect_timeout=5)

    def close(self) -> None:
        for conn in (self._sqlite, self._pg):
            if conn is not None:
                conn.close()
        self._sqlite = self._pg = None

    def _rows(self, query: str) -> list[tuple[object, ...]]:
        if self._sqlite is not None:
            return self._sqlite.execute(query).fetchall()
        assert self._pg is not None
        return self._pg.execute(query.encode()).fetchall()

    def count(self) -> int:
        return int(str(self._rows("SELECT count(*) FROM events")[0][0]))

    def times(self) -> list[float]:
        """recorded_at of every event, as epoch seconds."""
        rows = self._rows("SELECT recorded_at FROM events")
        if self.store == "sqlite":
            return [datetime.fromisoformat(str(at)).timestamp() for (at,) in rows]
        return [at.timestamp() for (at,) in rows if isinstance(at, datetime)]


def worker_env(url: str, prefix: str, state_url: str, rules: Path) -> dict[str, str]:
    return {"BOT_BROKER_URL": url, "BOT_BROKER_PREFIX": prefix, "BOT_STATE_URL": state_url,
            "BOT_RULES_DIR": str(rules), "BOT_RETRY_DELAYS": json.dumps(list(RETRY)), "BOT_LOG_LEVEL": "info",
            "BOT_DRAIN_SECONDS": "2"}


async def dead_letters(url: str, prefix: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(Names(prefix).dead_queue, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def measure(url: str, prefix: str, store: str, workers: int, count: int, state_url: str,
                  recorded: Recorded, rules: Path) -> Case:
    """Publish `count` events, start `workers` worker processes, time them to the last event."""
    await publish_events(url, prefix, events(count, campaigns=CAMPAIGNS))
    env = worker_env(url, prefix, state_url, rules)
    processes = [WorkerProcess(env) for _ in range(workers)]
    case = Case(store, workers)
    try:
        deadline = time.monotonic() + 120
        while not all(p.started.is_set() for p in processes):
            for p in processes:
                p.check()
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not start within 120 s")
            await asyncio.sleep(0.01)               # another process: poll its log
        recorded.open()                             # the workers created the schema before they started
        began = time.time()
        cpu0 = [cpu_ticks(p.pid) for p in processes]
        box0 = box_ticks()
        server0 = server_ticks() if store == "postgres" else {}
        deadline = time.monotonic() + max(120.0, count / 50)
        while recorded.count() < count:
            for p in processes:
                p.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {recorded.count()} of {count} events recorded")
            await asyncio.sleep(0.05)               # another process: poll its database
        cpu1 = [cpu_ticks(p.pid) for p in processes]
        box1 = box_ticks()
        server1 = server_ticks() if store == "postgres" else {}
        times = recorded.times()
    finally:
        recorded.close()
        for p in processes:
            p.stop()
            case.warnings.update(p.warnings)
    within = [t for t in times if t >= began]
    case.measured = len(within)
    case.seconds = max(times) - began if within else 0.0
    case.cpu_seconds = [(b - a) / _CLK_TCK for a, b in zip(cpu0, cpu1, strict=True)]
    busy, total = box1[0] - box0[0], box1[1] - box0[1]
    case.box_busy = busy / total if total else float("nan")
    if server1:
        case.server_seconds = sum(t - server0.get(pid, 0) for pid, t in server1.items()) / _CLK_TCK
    case.dead = await dead_letters(url, prefix)
    return case


async def run_case(url: str, prefix: str, store: str, workers: int, count: int, tmp: Path, rules: Path) -> Case:
    if store == "sqlite":
        if workers != 1:
            return Case(store, workers, skipped="SQLite takes one worker per file (the worker lock)")
        path = tmp / f"{prefix}.db"
        return await measure(url, prefix, store, workers, count, f"sqlite:///{path}", Recorded(store, str(path)),
                             rules)
    async with scratch_database() as database:
        case = await measure(url, prefix, store, workers, count, database, Recorded(store, database), rules)
    case.database = urlsplit(database).path.lstrip("/")
    return case


def _ratio(new: float, base: float) -> str:
    return "n/a" if math.isnan(new) or math.isnan(base) or not base else f"{new / base:.0%}"


def _overhead(new: float, base: float) -> str:
    return "n/a" if math.isnan(new) or math.isnan(base) or not base else f"{new / base - 1:+.0%}"


def _verdict(value: str, *, at_least: float | None = None, below: float | None = None) -> str:
    if value == "n/a":
        return ""
    number = float(value.rstrip("%")) / 100
    met = number >= at_least if at_least is not None else number < (below or 0)
    return "met" if met else "MISSED"


def report(cases: Sequence[Case], count: int) -> None:
    print(f"\nstore     workers  events/s  per worker  CPU µs/event  (window: events, s; box CPU busy; "
          f"worker CPU split)   {count:,} events per case")
    for c in cases:
        if c.skipped:
            print(f"{c.store:<9} {c.workers:>7}  skipped: {c.skipped}")
            continue
        if not c.ok:
            print(f"{c.store:<9} {c.workers:>7}  n/a: only {c.measured} events after the last worker started "
                  f"(use more --events)")
            continue
        split = "/".join(f"{s / sum(c.cpu_seconds):.0%}" for s in c.cpu_seconds) if sum(c.cpu_seconds) else "-"
        dead = f"  DEAD-LETTERED {c.dead}" if c.dead else ""
        if c.server_seconds is not None:
            dead += f"  PostgreSQL server CPU {c.server_seconds / c.measured * 1e6:,.0f} µs/event"
        if c.warnings:
            dead += "  warnings: " + ", ".join(f"{n} x{k}" for n, k in c.warnings.most_common(4))
        print(f"{c.store:<9} {c.workers:>7}  {c.rate:8,.0f}  {c.per_worker:10,.0f}  {c.cpu_us:12,.0f}  "
              f"({c.measured:,}, {c.seconds:.2f} s; {c.box_busy:.0%}; {split}){dead}")
    print()
    for name, value, target, verdict in summary(cases):
        print(f"{name:<48} {value:>6}   {target}  {verdict}".rstrip())


def summary(cases: Sequence[Case]) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, verdict) rows comparing the cases."""
    found = {(c.store, c.workers): c for c in cases}
    nan = Case("", 1, skipped="absent")
    sqlite1, pg1, pg2, pg3 = (found.get(k, nan) for k in (("sqlite", 1), ("postgres", 1), ("postgres", 2),
                                                          ("postgres", 3)))
    rows = [
        ("PG / SQLite events/s per worker, 1 worker", _ratio(pg1.per_worker, sqlite1.per_worker), ">= 80%",
         {"at_least": 0.8}),
        ("PG / SQLite events/s per worker, PG 3 workers", _ratio(pg3.per_worker, sqlite1.per_worker),
         "(context: 3 workers share the cores)", None),
        ("PG 3 / PG 1 events/s total", _ratio(pg3.rate, pg1.rate), "(context)", None),
        ("CPU per event, PG 1 worker vs SQLite 1 worker", _overhead(pg1.cpu_us, sqlite1.cpu_us), "< +15%",
         {"below": 0.15}),
        ("CPU per event, PG 3 workers vs PG 1 worker", _overhead(pg3.cpu_us, pg1.cpu_us), "< +15%",
         {"below": 0.15}),
        # as many workers as cores: the coordination's cost with no worker waiting for a core
        ("CPU per event, PG 2 workers vs PG 1 worker", _overhead(pg2.cpu_us, pg1.cpu_us),
         "(context: a worker per core)", None),
    ]
    return [(name, value, target, _verdict(value, **check) if check else "") for name, value, target, check in rows]


async def main(count: int = 20_000, workers: Sequence[int] = (1, 2, 3), stores: Sequence[str] = STORES, *,
               prefix: str | None = None) -> list[Case]:
    """Run every (store, workers) case, print the table; returns the cases. Queues and exchanges under
    `prefix` (default `bench.<random>`) and the scratch databases are deleted afterwards."""
    url = amqp_url()
    base = prefix or f"bench.{uuid.uuid4().hex[:8]}"
    cases: list[Case] = []
    used: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="campaign-guard-fleet-") as name:
            tmp = Path(name)
            rules = rules_dir(tmp / "rules-100")
            for store in stores:
                for k in workers:
                    case_prefix = f"{base}.{store}-{k}"
                    if not (store == "sqlite" and k != 1):
                        used.append(case_prefix)
                    case = await run_case(url, case_prefix, store, k, count, tmp, rules)
                    cases.append(case)
                    detail = case.skipped or (f"{case.rate:,.0f} events/s, {case.cpu_us:,.0f} µs CPU/event"
                                              if case.ok else "too few events measured")
                    print(f"{store}, {k} worker(s): {detail}", flush=True)
    finally:
        for used_prefix in used:
            names = Names(used_prefix)
            await delete_queues(url, names.all_queues(RETRY), names.all_exchanges())
    report(cases, count)
    return cases


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events per case (default 20,000: a case then lasts seconds, not one)")
    parser.add_argument("--workers", default="1,2,3", help="worker counts, comma-separated (default 1,2,3)")
    parser.add_argument("--stores", default="sqlite,postgres", help="sqlite, postgres or both (default)")
    args = parser.parse_args(argv)
    workers = [int(k) for k in args.workers.split(",") if k]
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = sorted(set(stores) - set(STORES))
    if unknown or not stores or not workers or min(workers) < 1:
        parser.error(f"--stores takes {', '.join(STORES)}; --workers positive counts")
    # the bench's own broker client logs at info: keep the table readable
    configure_logging(json=True, level="warning", stream=sys.stderr)
    asyncio.run(main(args.events, workers, stores))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
