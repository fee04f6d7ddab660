"""Load benchmark: campaign-guard's figures next to the bare ceilings, measured in one run.

    .venv/bin/python -m bench.load            # full run (about two minutes)
    .venv/bin/python -m bench.load --quick    # smaller counts, for a smoke run

Broker: BOT_BENCH_AMQP_URL, else BOT_TEST_AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/. Every queue
is a quorum queue, as in production. Figures are noisy on a shared 2-core machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import hashlib
import hmac
import json
import math
import os
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from bench import bare
from bench._common import (
    REPO,
    amqp_url,
    delete_queues,
    free_port,
    http_load,
    paced_posts,
    percentile,
    rss_mib,
    spawn,
    stop,
    wait_http,
)
from bench.rules_bench import engine_pass
from bot.broker.amqp import AmqpBroker
from bot.broker.topology import Names
from bot.config import Settings
from bot.events import CampaignRef, Event
from bot.executor import Executor
from bot.log import configure_logging
from bot.ruleset import load_rules
from bot.service import settle_heap
from bot.state.sqlite import SqliteStateStore
from bot.vendors.dryrun import DryRunVendor
from bot.worker import Worker

SECRET = "bench-smartlead-secret"
_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
atexit.register(_DEVNULL.close)   # closed at exit, not left to the collector (a ResourceWarning under pytest)
RETRY = (1.0, 5.0)
#: the worker's defaults (BOT_PREFETCH, BOT_BATCH_SIZE)
PREFETCH: Final = Settings.model_fields["prefetch"].default
#: latency runs (bare and ours) begin with this much of the same load, not measured: a fresh state file's WAL
#: grows to its working size meanwhile (each fsync that extends a file also journals its new size, and the
#: disk RabbitMQ confirms on is shared), as do connections and caches; a running worker's are grown already
WARM_UP_SECONDS: Final = 1.0
#: bare consume and our worker take turns this many times; their medians are compared
ROUNDS: Final = 3
_PYTHON_GC: Final = gc.get_threshold()
BATCH: Final = Settings.model_fields["batch_size"].default


def signed_webhooks(count: int, campaigns: int) -> list[tuple[bytes, dict[str, str]]]:
    """Signed Smartlead EMAIL_SENT webhooks (format A), distinct message ids."""
    out = []
    run = uuid.uuid4().hex[:6]
    for n in range(count):
        body = json.dumps({"event_type": "EMAIL_SENT", "campaign_id": 1000 + n % campaigns,
                           "from_email": f"s{n % 50}@bench.example", "to_email": f"l{n}@lead.example",
                           "message_id": f"<{run}-{n}@bench.example>", "time_sent": "2026-11-23T09:00:00Z"}).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        out.append((body, {"Content-Type": "application/json", "X-Smartlead-Signature": signature}))
    return out


def rules_dir(target: Path, count: int = 100, *, on_sends: int = 10) -> Path:
    """The shipped rules plus variants up to `count`; `on_sends` of them listen to `email.sent` (the event
    the worker sees most), the rest to other event types (the rule index skips them for a send)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in (REPO / "rules").glob("*.yaml"):
        (target / path.name).write_text(path.read_text())
    others = ["email.replied", "lead.unsubscribed", "email.opened", "email.clicked", "lead.category_updated",
              "email.complained", "campaign.completed", "campaign.started", "vendor.other"]
    already = sum("email.sent" in p.read_text() for p in target.glob("*.yaml"))
    shipped = len(list(target.glob("*.yaml")))
    for n in range(count - shipped):
        if n < on_sends - already:
            kind = ["email.bounced", *others[:5]][n % 6]
            body = (f"description: bench variant {n}\non: [email.sent, {kind}]\n"
                    f"window: {{last: {100 + n}, of: email.sent}}\n"
                    f"measure: {{ratio: [{kind}, email.sent], min_sample: 50}}\npause: {{when: {{gte: {0.5 + n / 1000}}}}}\n")
        else:
            kind = others[n % len(others)]
            body = (f"description: bench variant {n}\non: {kind}\nwindow: {{duration: 1h}}\n"
                    f"measure: {{count: {kind}}}\npause: {{when: {{gte: 100000}}}}\n")
        (target / f"bench-variant-{n}.yaml").write_text(body)
    return target


def events(count: int, campaigns: int) -> list[Event]:
    run = uuid.uuid4().hex[:6]
    return [Event(id=f"bench:{run}:{n}", type="email.bounced" if n % 40 == 39 else "email.sent", source="smartlead",
                  occurred_at=datetime.now().astimezone(), campaign=CampaignRef.parse(f"smartlead:{1 + n % campaigns}"),
                  data={"from_email": f"s{n % 50}@bench.example"}) for n in range(count)]


async def publish_events(url: str, prefix: str, batch: list[Event]) -> None:
    broker = AmqpBroker(url, prefix=prefix, prefetch=16, delivery_limit=10, retry_delays=RETRY)
    await broker.start()
    try:
        for start in range(0, len(batch), 200):
            await asyncio.gather(*(broker.publish(e.model_dump_json().encode(), message_id=e.id,
                                                  routing_key=e.routing_key) for e in batch[start:start + 200]))
    finally:
        await broker.close()


async def worker_rate(url: str, prefix: str, count: int, tmp: Path, *, on_sends: int = 10, db: str = "worker.db",
                      prefetch: int = PREFETCH, batch: int = BATCH, no_rules: bool = False) -> tuple[float, int, float]:
    """Our worker as `campaign-guard worker` runs it (batches of deliveries, the default prefetch and batch
    size): `count` pre-published events, 100 rules (`on_sends` of them measuring sends; none with
    `no_rules`: what everything but the rules costs), state in SQLite; events per second, how many COMMITs
    (group commit) it took, and the process's CPU µs per event (the broker client included, as for the
    bare consumer)."""
    await publish_events(url, prefix, events(count, campaigns=500))
    broker = AmqpBroker(url, prefix=prefix, prefetch=prefetch, delivery_limit=10, retry_delays=RETRY)
    await broker.start()
    async with SqliteStateStore.open(tmp / db) as store:
        vendors = {v: DryRunVendor(v) for v in ("smartlead", "leadterra", "inbox")}
        executor = Executor(store, vendors, dry_run_vendors=frozenset(vendors))
        rules = load_rules(_empty(tmp / "rules-none") if no_rules else
                           rules_dir(tmp / f"rules-100-{on_sends}", on_sends=on_sends))
        worker = Worker(store=store, rules=rules, executor=executor)
        settle_heap()           # the garbage collector as `campaign-guard worker` runs it once started
        try:
            started, cpu = time.perf_counter(), time.process_time()
            await broker.consume_batches(worker.handle_batch, size=batch)
            await asyncio.wait_for(worker.wait_handled(count), timeout=600)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:                # the bare consumers run with Python's defaults
            gc.unfreeze()
            gc.set_threshold(*_PYTHON_GC)
        await broker.stop_consuming(5)
        commits = store.commits
    await broker.close()
    return count / elapsed, commits, cpu / count * 1e6


def _empty(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def engine_us(count: int, rules_folder: Path, *, passes: int = 3) -> float:
    """The rules alone: CPU µs per event of `RuleSet.for_type` + `engine.evaluate` over bench.load's events
    (500 campaigns, the 100 rules of `rules_dir`), windows in a dict, no store, no broker; the median of
    `passes` passes after one that fills the windows."""
    rules, stream = load_rules(rules_folder), events(count, campaigns=500)
    windows: dict[tuple[str, str | None], dict[str, Any]] = {}
    figures = []
    for _ in range(passes + 1):
        cpu = time.process_time()
        engine_pass(rules, stream, windows)
        figures.append((time.process_time() - cpu) / count * 1e6)
    return sorted(figures[1:])[passes // 2]


_Run = TypeVar("_Run", bound=tuple[Any, ...])


async def _drop(url: str, prefixes: list[str]) -> None:
    """Delete the queues and exchanges of these runs."""
    for prefix in prefixes:
        names = Names(prefix)
        await delete_queues(url, names.all_queues(RETRY), names.all_exchanges())


def _median(runs: list[_Run]) -> _Run:
    """The run whose first figure (the rate) is the median of the runs'."""
    return sorted(runs)[len(runs) // 2]


def bot_env(url: str, prefix: str, tmp: Path, port: int, db: str = "latency.db") -> dict[str, str]:
    return {"BOT_BROKER_URL": url, "BOT_BROKER_PREFIX": prefix, "BOT_HTTP_PORT": str(port),
            "BOT_STATE_URL": f"sqlite:///{tmp / db}", "BOT_RULES_DIR": str(tmp / "rules-100"),
            "BOT_SMARTLEAD_WEBHOOK_SECRET": SECRET, "BOT_RETRY_DELAYS": json.dumps(list(RETRY))}


@dataclass
class Latency:
    """What `decision_latency` measured (seconds; MiB)."""

    decisions: list[float]      # webhook sent → event recorded by the worker (its transaction's clock)
    answers: list[float]        # webhook sent → its 202 read (the intake hop alone: publish confirmed)
    statuses: dict[int, int]
    rss_mib: float


async def decision_latency(url: str, prefix: str, tmp: Path, *, rate: float, seconds: float,
                           campaigns_for_rss: int) -> Latency:
    """Webhook → decision at `rate`/s through a web and a worker process, after `WARM_UP_SECONDS` of the same
    load that is not measured; then RSS with many campaigns."""
    port = free_port()
    db = f"latency-{rate:.0f}.db"
    env = bot_env(url, prefix, tmp, port, db)
    web_process = spawn(["-m", "bot", "web"], env)
    worker_process = spawn(["-m", "bot", "worker"], env)
    try:
        await wait_http(f"http://127.0.0.1:{port}/readyz", web_process)
        warm = int(rate * WARM_UP_SECONDS)
        requests = signed_webhooks(warm + int(rate * seconds), campaigns=200)
        results = await paced_posts(f"http://127.0.0.1:{port}/webhooks/smartlead", requests, rate=rate)
        statuses: dict[int, int] = {}
        for _, status, _, _ in results[warm:]:
            statuses[status] = statuses.get(status, 0) + 1
        sent = {ids[0]: at for at, status, ids, _ in results[warm:] if status == 202 and ids}
        recorded = await _wait_recorded(tmp / db, set(sent))
        latencies = [recorded[i] - sent[i] for i in sent]
        await publish_events(url, prefix, [e.model_copy(update={"campaign": f"smartlead:{50_000 + n}"})
                                           for n, e in enumerate(events(campaigns_for_rss, 1))])
        await _wait_count(tmp / db, sum(status == 202 for _, status, _, _ in results) + campaigns_for_rss)
        return Latency(latencies, [answered for *_, answered in results[warm:]], statuses,
                       rss_mib(worker_process.pid))
    finally:
        stop(web_process)
        stop(worker_process)


async def _wait_recorded(db: Path, ids: set[str]) -> dict[str, float]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT id, recorded_at FROM events").fetchall()
        found = {i: datetime.fromisoformat(at).timestamp() for i, at in rows if i in ids}
        if len(found) == len(ids):
            return found
        await asyncio.sleep(0.2)                # the worker is another process: poll its database
    raise TimeoutError(f"only {len(found)} of {len(ids)} events recorded")


async def _wait_count(db: Path, count: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            if conn.execute("SELECT count(*) FROM events").fetchone()[0] >= count:
                return
        await asyncio.sleep(0.2)                # the worker is another process: poll its database
    raise TimeoutError(f"{count} events not recorded")


@dataclass
class Figures:
    """What one `main` run measured (rates per second, latencies in seconds, CPU in µs per message)."""

    bare_http: float = math.nan
    ours_http: float = math.nan
    bare_consume: float = math.nan
    bare_consume_cpu: float = math.nan
    bare_aiormq: float = math.nan
    ours_worker: float = math.nan
    ours_worker_cpu: float = math.nan
    no_rules: float = math.nan              # our worker with no rules loaded, and its CPU
    no_rules_cpu: float = math.nan
    engine_cpu: float = math.nan            # the rules alone (`engine_us`)
    commits: int = 0
    bare_p99: dict[int, float] = field(default_factory=dict)        # rate → p99
    bare_webhook_p99: dict[int, float] = field(default_factory=dict)
    ours_p99: dict[int, float] = field(default_factory=dict)
    ours_p50: dict[int, float] = field(default_factory=dict)
    rss_mib: float = math.nan

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(figure, ours / bare, ratio, target) for the summary table."""
        rows = [
            ("webhook intake", f"{self.ours_http:,.0f} / {self.bare_http:,.0f} req/s",
             f"{self.ours_http / self.bare_http:.0%}", ">= 70%"),
            ("worker, SQLite", f"{self.ours_worker:,.0f} / {self.bare_consume:,.0f} msg/s",
             f"{self.ours_worker / self.bare_consume:.0%}", ">= 65%"),
            ("  CPU per message", f"{self.ours_worker_cpu:,.0f} / {self.bare_consume_cpu:,.0f} µs",
             f"{self.ours_worker_cpu / self.bare_consume_cpu:.2f}x", "(context)"),
            ("  with no rules", f"{self.no_rules:,.0f} / {self.bare_consume:,.0f} msg/s",
             f"{self.no_rules / self.bare_consume:.0%}", f"(context: {self.no_rules_cpu:,.0f} µs CPU)"),
            # at 65% of bare's rate, CPU-bound as both are, the worker may spend bare's CPU / 0.65 per event;
            # what is left once everything but the rules is paid is what the rules may cost
            ("  rules' budget", f"{self.bare_consume_cpu / 0.65 - self.no_rules_cpu:,.0f} µs per event",
             f"{self.engine_cpu:.0f} µs", "(context: the rules alone, no I/O)"),
        ]
        for rate in sorted(self.ours_p99):
            bare_p99 = self.bare_p99.get(rate, math.nan)
            rows.append((f"decision p99 {rate}/s", f"{self.ours_p99[rate] * 1000:.1f} / {bare_p99 * 1000:.1f} ms",
                         f"{self.ours_p99[rate] / bare_p99:.2f}x", "<= 1.5x" if rate == 500 else "(reported)"))
            hook_p99 = self.bare_webhook_p99.get(rate, math.nan)
            rows.append(("  vs bare webhook", f"{self.ours_p99[rate] * 1000:.1f} / {hook_p99 * 1000:.1f} ms",
                         f"{self.ours_p99[rate] / hook_p99:.2f}x", "(context)"))
        return rows


async def main(quick: bool) -> Figures:
    # production logging (JSON at BOT_LOG_LEVEL, default info), written where it costs what a log pipe costs
    configure_logging(json=True, level=os.environ.get("BOT_LOG_LEVEL", "info"), stream=_DEVNULL)
    url = amqp_url()
    # 20,000 events: the worker's first read of each of its 5,000 windows (500 campaigns, 10 rules on sends)
    # is a run's warm-up; over 5,000 events it cost about 10% more CPU per event than in steady state
    n_http, n_consume, latency_s = (600, 2000, 2.0) if quick else (3000, 20_000, 5.0)
    run = uuid.uuid4().hex[:8]
    parts: tuple[str, ...] = ("bare-http", "ours-http", "bare-aiormq", "ours-heavy",
             "bare-latency-500", "bare-webhook-500", "ours-latency-500", "bare-latency-1000", "bare-webhook-1000",
             "ours-latency-1000")
    parts += tuple(f"{side}-{round_}" for side in ("bare-consume", "ours-worker", "ours-no-rules")
                   for round_ in range(ROUNDS))
    prefixes = {part: f"bench.{run}.{part}" for part in parts}
    got = Figures()
    try:
        with tempfile.TemporaryDirectory(prefix="campaign-guard-bench-") as name:
            tmp = Path(name)
            rules_dir(tmp / "rules-100")
            requests = signed_webhooks(n_http, campaigns=200)

            port = free_port()
            server = spawn(["-m", "bench.bare", "serve", str(port), url, prefixes["bare-http"]], {})
            await wait_http(f"http://127.0.0.1:{port}/healthz", server)
            bare_http = await http_load(f"http://127.0.0.1:{port}/", requests, concurrency=16)
            stop(server)
            print(f"bare  POST → confirmed publish → 202   {bare_http.describe()}", flush=True)

            port = free_port()
            server = spawn(["-m", "bot", "web"], bot_env(url, prefixes["ours-http"], tmp, port))
            await wait_http(f"http://127.0.0.1:{port}/readyz", server)
            ours_http = await http_load(f"http://127.0.0.1:{port}/webhooks/smartlead", requests, concurrency=16)
            stop(server)
            print(f"ours  webhook intake                  {ours_http.describe()}", flush=True)
            got.bare_http, got.ours_http = bare_http.rate, ours_http.rate

            # latency first: the consume runs below leave RabbitMQ's quorum log and the disk busy for a while
            # (140,000 messages), and the latency runs' tail would share that
            for rate in (500, 1000):
                bare_lat = await bare.latency(url, prefixes[f"bare-latency-{rate}"], rate=rate, seconds=latency_s,
                                             warm_up=WARM_UP_SECONDS)
                got.bare_p99[rate] = percentile(bare_lat, 99)
                print(f"bare  publish → consume at {rate:>4}/s    p50 {percentile(bare_lat, 50) * 1000:6.1f} ms  "
                      f"p99 {got.bare_p99[rate] * 1000:6.1f} ms", flush=True)
                port = free_port()
                server = spawn(["-m", "bench.bare", "serve", str(port), url, prefixes[f"bare-webhook-{rate}"]], {})
                try:
                    await wait_http(f"http://127.0.0.1:{port}/healthz", server)
                    bare_hook = await bare.webhook_latency(url, prefixes[f"bare-webhook-{rate}"],
                                                           f"http://127.0.0.1:{port}/", rate=rate, seconds=latency_s,
                                                           warm_up=WARM_UP_SECONDS)
                finally:
                    stop(server)
                got.bare_webhook_p99[rate] = percentile(bare_hook, 99)
                print(f"bare  webhook → consume at {rate:>4}/s    p50 {percentile(bare_hook, 50) * 1000:6.1f} ms  "
                      f"p99 {got.bare_webhook_p99[rate] * 1000:6.1f} ms  (POST → confirmed publish → 202, consumed)",
                      flush=True)
                rss_campaigns = (2000 if quick else 10_000) if rate == 1000 else 0
                ours = await decision_latency(url, prefixes[f"ours-latency-{rate}"], tmp, rate=rate,
                                              seconds=latency_s, campaigns_for_rss=rss_campaigns)
                got.ours_p99[rate], got.ours_p50[rate] = percentile(ours.decisions, 99), percentile(ours.decisions, 50)
                print(f"ours  webhook → decision at {rate:>4}/s   p50 {got.ours_p50[rate] * 1000:6.1f} ms  "
                      f"p99 {got.ours_p99[rate] * 1000:6.1f} ms  {ours.statuses}", flush=True)
                print(f"ours    of which webhook → 202        p50 {percentile(ours.answers, 50) * 1000:6.1f} ms  "
                      f"p99 {percentile(ours.answers, 99) * 1000:6.1f} ms  (the intake hop: HTTP, publish confirmed)",
                      flush=True)
                if rss_campaigns:
                    got.rss_mib = rss = ours.rss_mib
                    print(f"ours  worker RSS with {rss_campaigns} campaigns tracked  {rss:.0f} MiB", flush=True)

            # the same prefetch as campaign-guard's worker (BOT_PREFETCH's default); bare and ours take turns,
            # ROUNDS times, and the medians are compared: a shared 2-core machine swings 10% from run to run
            bare_runs, ours_runs, no_rules_runs = [], [], []
            for round_ in range(ROUNDS):
                prefix = prefixes[f"bare-consume-{round_}"]
                await bare.publish_many(url, prefix, [b'{"x": 1}'] * n_consume)
                cpu = time.process_time()
                consumed = await bare.consume_rate(url, prefix, n_consume, prefetch=PREFETCH)
                bare_runs.append((consumed, (time.process_time() - cpu) / n_consume * 1e6))
                ours_runs.append(await worker_rate(url, prefixes[f"ours-worker-{round_}"], n_consume, tmp,
                                                   db=f"worker-{round_}.db"))
                print(f"bare  consume, manual ack             {bare_runs[-1][0]:8.0f} msg/s  "
                      f"{bare_runs[-1][1]:4.0f} µs CPU/msg  (prefetch {PREFETCH})", flush=True)
                print(f"ours  worker, 100 rules (10 on sends) {ours_runs[-1][0]:8.0f} events/s  "
                      f"{ours_runs[-1][2]:4.0f} µs CPU/event  ({n_consume} events in {ours_runs[-1][1]} COMMITs)",
                      flush=True)
                no_rules_runs.append(await worker_rate(url, prefixes[f"ours-no-rules-{round_}"], n_consume, tmp,
                                                       db=f"no-rules-{round_}.db", no_rules=True))
                print(f"ours  worker, no rules loaded         {no_rules_runs[-1][0]:8.0f} events/s  "
                      f"{no_rules_runs[-1][2]:4.0f} µs CPU/event  (everything but the rules)", flush=True)
            got.bare_consume, got.bare_consume_cpu = _median(bare_runs)
            got.ours_worker, got.commits, got.ours_worker_cpu = _median(ours_runs)
            got.no_rules, got.no_rules_cpu = _median(no_rules_runs)[::2]
            got.engine_cpu = engine_us(n_consume, tmp / "rules-100-10")
            print(f"ours  the rules alone (no I/O)        {got.engine_cpu:8.0f} µs CPU/event  "
                  f"(for_type + evaluate, windows in a dict)", flush=True)
            await bare.publish_many(url, prefixes["bare-aiormq"], [b'{"x": 1}'] * n_consume)
            got.bare_aiormq = await bare.consume_rate_aiormq(url, prefixes["bare-aiormq"], n_consume,
                                                             prefetch=PREFETCH)
            print(f"bare  consume at the aiormq layer     {got.bare_aiormq:8.0f} msg/s  (the worker's consume path)",
                  flush=True)
            heavy, _, _ = await worker_rate(url, prefixes["ours-heavy"], n_consume // 2, tmp, on_sends=40,
                                            db="worker-heavy.db")
            print(f"ours  worker, 100 rules (40 on sends) {heavy:8.0f} events/s  (stress mix, not a target)",
                  flush=True)
    finally:
        await _drop(url, list(prefixes.values()))
    print("\nfigure              ours / bare                  ratio   target")
    for figure, values, ratio, target in got.rows():
        print(f"{figure:<19} {values:<28} {ratio:>6}   {target}")
    return got


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    import uvloop  # the loop campaign-guard's services run on; bare and ours in-process share it

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(parser.parse_args().quick))
