"""RabbitMQ (a private node, never the shared one) is stopped and started again under a steady stream of
webhooks: while it is down every webhook gets 503 (never 202), web and worker reconnect by themselves,
and every event answered 202 is processed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.broker.topology import Names
from bot.config import Settings
from bot.service import running
from tests.conftest import REPO
from tests.faults.conftest import PrivateNode, db_rows, delete_prefix, until

pytestmark = pytest.mark.integration

TOKEN = "fault-rabbitmq-token"
INTERVAL = 0.04             # one webhook every 40 ms, whatever the answers take (open loop)
RETRY_DELAYS = (0.2, 0.5)


@dataclass(frozen=True, slots=True)
class Post:
    n: int
    sent: float
    answered: float
    status: int
    ids: tuple[str, ...]
    retry_after: str | None


@dataclass
class Tally:
    """Answers as they come in; `wait(condition)` wakes on each new answer."""

    posts: list[Post] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def add(self, post: Post) -> None:
        async with self.changed:
            self.posts.append(post)
            self.changed.notify_all()

    async def wait(self, condition: Callable[[list[Post]], bool], timeout: float, what: str) -> None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(lambda: condition(self.posts))
        except TimeoutError:
            raise TimeoutError(f"{what} not reached within {timeout}s") from None


async def _post(http: aiohttp.ClientSession, url: str, n: int, tally: Tally) -> None:
    body = {"id": f"rmq-{n}", "type": "email.sent", "campaign": f"smartlead:{4000 + n % 7}",
            "occurred_at": "2026-11-23T09:00:00Z"}
    sent = time.monotonic()
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        payload: Any = await resp.json()
        ids = tuple(payload.get("ids", ())) if resp.status == 202 else ()
        await tally.add(Post(n, sent, time.monotonic(), resp.status, ids, resp.headers.get("Retry-After")))


async def _pace(http: aiohttp.ClientSession, url: str, tally: Tally, stop: asyncio.Event,
                tasks: list[asyncio.Task[None]]) -> None:
    n = 0
    while not stop.is_set():
        tasks.append(asyncio.create_task(_post(http, url, n, tally)))
        n += 1
        await asyncio.sleep(INTERVAL)       # the stream's rate, not a synchronisation


@pytest.mark.timeout(150)
async def test_rabbitmq_restart_under_webhooks_503s_while_down_and_processes_every_202(
        private_rabbitmq: PrivateNode, prefix: str, tmp_path: Path, figures: Any) -> None:
    state = tmp_path / "state.db"
    settings = Settings(
        broker_url=SecretStr(private_rabbitmq.url), broker_prefix=prefix, state_url=f"sqlite:///{state}",
        rules_dir=REPO / "rules", http_port=0, retry_delays=RETRY_DELAYS, webhook_token=SecretStr(TOKEN),
        inventory_refresh=0, drain_seconds=2,
    )
    tally, stop = Tally(), asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        async with running(settings, with_web=True, with_worker=True) as services, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{services.port}/webhooks/events"
            pacer = asyncio.create_task(_pace(http, url, tally, stop, tasks))
            await tally.wait(lambda ps: sum(p.status == 202 for p in ps) >= 20, 30, "20 accepted before the outage")

            stopping = time.monotonic()
            await private_rabbitmq.stop()               # returns once the node has exited
            down = time.monotonic()
            await tally.wait(lambda ps: sum(p.sent >= down for p in ps) >= 25, 30, "25 answers while down")
            starting = time.monotonic()
            await private_rabbitmq.start()              # same node, port and data
            up = time.monotonic()
            await tally.wait(lambda ps: sum(p.status == 202 and p.sent >= up for p in ps) >= 25, 60,
                             "25 accepted after the restart")
            stop.set()
            await pacer
            await asyncio.gather(*tasks)

            accepted = {i for p in tally.posts if p.status == 202 for i in p.ids}

            def processed() -> set[str]:
                return {r[0] for r in db_rows(state, "SELECT id FROM events")}

            await until(lambda: accepted <= processed(), timeout=30, every=0.05, what="every accepted event recorded")
            assert await services.broker.ready()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):     # a node left down by a failure is thrown away anyway
            await delete_prefix(private_rabbitmq.url, Names(prefix), set(RETRY_DELAYS))

    posts = sorted(tally.posts, key=lambda p: p.n)
    statuses = [p.status for p in posts]
    while_down = [p for p in posts if p.sent >= down and p.answered <= starting]
    assert set(statuses) <= {202, 503}, sorted(set(statuses))
    assert len(while_down) >= 20 and {p.status for p in while_down} == {503}, "accepted while RabbitMQ was down"
    assert all(p.retry_after for p in posts if p.status == 503)
    first_after = min(p.answered for p in posts if p.status == 202 and p.sent >= up)
    recorded = processed()
    assert accepted <= recorded
    figures(f"webhooks sent={len(posts)} accepted (202)={statuses.count(202)} refused (503)={statuses.count(503)} "
            f"processed={len(recorded)} (every 202 among them; {len(recorded - accepted)} of the 503s had gone "
            f"through too); while the node was down: {len(while_down)} sent, all 503; outage "
            f"{starting - stopping:.1f} s + node start {up - starting:.1f} s; first 202 "
            f"{first_after - up:.2f} s after the node was up")
