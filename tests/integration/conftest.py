"""Real RabbitMQ for integration tests: the shared broker's URL, per-test names, a private node.

`amqp_url`: BOT_TEST_AMQP_URL, else 127.0.0.1:5672 if it answers AMQP; a missing broker fails in CI
(env CI set) and skips elsewhere. Each test gets its own prefix (`test.<uuid8>`) and everything under
it is deleted afterwards. `private_rabbitmq` starts a throw-away node with scripts/test-rabbitmq.sh
for tests that stop and restart RabbitMQ, so the shared broker is never touched.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from bot.broker.amqp import AmqpBroker
from bot.broker.topology import Names

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "test-rabbitmq.sh"
LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672/"

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def answers_amqp(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when host:port replies to the AMQP 0-9-1 protocol header with a frame (Connection.Start)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(1) == b"\x01"
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_url() -> str:
    url = os.environ.get("BOT_TEST_AMQP_URL")
    if url:
        return url
    if answers_amqp("127.0.0.1", 5672):
        return LOCAL_URL
    if os.environ.get("CI"):
        pytest.fail("no RabbitMQ: set BOT_TEST_AMQP_URL or run the tests with scripts/test.sh")
    pytest.skip("integration tests need RabbitMQ (BOT_TEST_AMQP_URL or 127.0.0.1:5672); see scripts/test.sh")


@pytest.fixture
def prefix() -> str:
    return f"test.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def raw(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    """A plain (non-robust) channel for looking at queues from the outside."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        yield await connection.channel()


@dataclass
class Brokers:
    """Makes AmqpBrokers on one prefix, closes them and deletes every queue/exchange of the prefix."""

    url: str
    prefix: str
    made: list[AmqpBroker] = field(default_factory=list)
    tiers: set[float] = field(default_factory=set)

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    def __call__(self, *, url: str | None = None, **overrides: Any) -> AmqpBroker:
        options: dict[str, Any] = {
            "prefetch": 4,
            "delivery_limit": 2,
            "retry_delays": (0.05, 0.1),
            "publish_timeout": 5.0,
            "reconnect_interval": 0.5,
        }
        options.update(overrides)
        self.tiers.update(options["retry_delays"])
        broker = AmqpBroker(url or self.url, prefix=self.prefix, **options)
        self.made.append(broker)
        return broker

    async def cleanup(self) -> None:
        for broker in self.made:
            await broker.close()
        await delete_prefix(self.url, self.names, self.tiers)


async def delete_prefix(url: str, names: Names, tiers: set[float]) -> None:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue in names.all_queues(tiers):  # deleting a queue that is not there is fine in 3.x
            await channel.queue_delete(queue)
        for exchange in names.all_exchanges():
            await channel.exchange_delete(exchange)


@pytest.fixture
async def brokers(amqp_url: str, prefix: str) -> AsyncIterator[Brokers]:
    made = Brokers(amqp_url, prefix)
    yield made
    await made.cleanup()


@dataclass
class PrivateNode:
    """A throw-away RabbitMQ node in `dir`; `stop()`/`start()` restart it with the same data and port."""

    dir: Path
    url: str = ""

    def start_blocking(self) -> None:
        done = subprocess.run(["bash", str(SCRIPT), "start", str(self.dir)], capture_output=True, text=True, check=False)
        if done.returncode:
            pytest.fail(f"test-rabbitmq.sh start failed:\n{done.stdout}\n{done.stderr}")
        self.url = done.stdout.strip().splitlines()[-1]

    def stop_blocking(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.dir)], capture_output=True, text=True, check=False)

    async def _run(self, command: str) -> str:
        # Not subprocess.run: the event loop keeps running, so clients see the outage as it happens.
        process = await asyncio.create_subprocess_exec(
            "bash", str(SCRIPT), command, str(self.dir), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        if process.returncode:
            raise AssertionError(f"test-rabbitmq.sh {command} failed:\n{out.decode()}\n{err.decode()}")
        return out.decode().strip()

    async def start(self) -> None:
        self.url = (await self._run("start")).splitlines()[-1]

    async def stop(self) -> None:
        await self._run("stop")


@pytest.fixture
def private_rabbitmq(tmp_path: Path) -> Iterator[PrivateNode]:
    """In CI the script installs rabbitmq-server when missing; elsewhere a missing server skips."""
    if not SERVER.exists() and not os.environ.get("CI"):
        pytest.skip(f"{SERVER} missing: install rabbitmq-server or run scripts/test.sh in CI")
    node = PrivateNode(tmp_path / "rabbitmq")
    try:
        node.start_blocking()
        yield node
    finally:
        node.stop_blocking()

