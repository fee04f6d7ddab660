"""Benchmark plumbing: broker URL, free ports, subprocesses, HTTP load, percentiles, RSS, clean-up."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import aiohttp
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent


def amqp_url() -> str:
    return os.environ.get("BOT_BENCH_AMQP_URL") or os.environ.get("BOT_TEST_AMQP_URL") or \
        "amqp://guest:guest@127.0.0.1:5672/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Load:
    """Result of an HTTP load run."""

    requests: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def describe(self) -> str:
        return (f"{self.rate:8.0f} req/s  p50 {percentile(self.latencies, 50) * 1000:6.1f} ms  "
                f"p99 {percentile(self.latencies, 99) * 1000:6.1f} ms  {dict(sorted(self.statuses.items()))}")


async def http_load(url: str, requests: Sequence[tuple[bytes, dict[str, str]]], *, concurrency: int) -> Load:
    """POST every (body, headers) with `concurrency` connections as fast as answers come back."""
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def client() -> None:
            while not queue.empty():
                body, headers = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                latencies.append(time.perf_counter() - started)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Load(len(requests), elapsed, latencies, statuses)


async def paced_posts(url: str, requests: Sequence[tuple[bytes, dict[str, str]]], *,
                      rate: float) -> list[tuple[float, int, list[str], float]]:
    """POST at a fixed rate (open loop); per request: (wall time sent, status, accepted event ids, seconds
    until the answer was read)."""
    results: list[tuple[float, int, list[str], float]] = [(0.0, 0, [], 0.0)] * len(requests)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        async def post(index: int, body: bytes, headers: dict[str, str]) -> None:
            sent = time.time()
            async with session.post(url, data=body, headers=headers) as resp:
                answer = await resp.json()
                results[index] = (sent, resp.status, list(answer.get("ids", [])), time.time() - sent)

        tasks = []
        start = time.perf_counter()
        for index, (body, headers) in enumerate(requests):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)       # pacing the generator, not waiting for a result
            tasks.append(asyncio.create_task(post(index, body, headers)))
        await asyncio.gather(*tasks)
    return results


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start `python -m ...` with the bench's interpreter; output discarded (logs would cost CPU)."""
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **env}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30.0
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: server exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)               # polling a server that has no readiness signal
    raise TimeoutError(url)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def delete_queues(url: str, queues: Sequence[str], exchanges: Sequence[str]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)


def summary(values: Sequence[float]) -> str:
    return f"median {statistics.median(values):.0f}" if values else "n/a"


def server_url() -> str:
    return (os.environ.get("BOT_BENCH_POSTGRES_URL") or os.environ.get("BOT_TEST_POSTGRES_URL")
            or "postgresql://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A fresh database on the server (`cgbench_<random>`), its URL; dropped on exit with its connections."""
    name = f"cgbench_{secrets.token_hex(6)}"
    async with await psycopg.AsyncConnection.connect(server_url(), autocommit=True, connect_timeout=5) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield urlsplit(server_url())._replace(path=f"/{name}").geturl()
        finally:
            await admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
