"""`campaign-guard replay` against a real RabbitMQ: dead letters go back to the work queue, dry run takes nothing."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import ChannelNotFoundEntity

from bot import cli
from bot.broker.topology import HEADER_REASON, Names
from bot.executor import Executor
from bot.log import configure_logging
from bot.ruleset import load_rules
from bot.state.sqlite import SqliteStateStore
from bot.worker import Worker
from tests.conftest import REPO, FakeVendor

if TYPE_CHECKING:
    from conftest import Brokers

pytestmark = pytest.mark.integration

WAIT = 10.0


async def _count(raw: AbstractChannel, queue: str) -> int:
    declared = await raw.declare_queue(queue, passive=True)
    return int(declared.declaration_result.message_count or 0)


async def _poll(condition: Callable[[], Awaitable[bool]]) -> None:
    """Queue depths have no event to wait on: poll with short sleeps, bounded."""
    async with asyncio.timeout(WAIT):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def _depth_is(raw: AbstractChannel, queue: str, count: int) -> None:
    async def reached() -> bool:
        return await _count(raw, queue) == count

    await _poll(reached)


async def test_replay_puts_a_dead_letter_back_with_its_id(
    raw: AbstractChannel, brokers: Brokers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker = brokers()
    await broker.start()
    async with SqliteStateStore.open(tmp_path / "state.db") as store:
        worker = Worker(store=store, rules=load_rules(REPO / "rules"),
                        executor=Executor(store, {"smartlead": FakeVendor()}))
        await broker.consume(worker.handle)
        await broker.publish(b"{not json", message_id="evt-broken-1", routing_key="smartlead.email.sent")
        async with asyncio.timeout(WAIT):
            await worker.wait_handled(1, outcome="dead")
        await broker.stop_consuming(WAIT)          # the fix is "deployed": nothing consumes the replay here
    await _depth_is(raw, brokers.names.dead_queue, 1)

    monkeypatch.setattr(cli, "configure_logging", functools.partial(configure_logging, cache=False))
    for name, value in {"BOT_BROKER_URL": brokers.url, "BOT_BROKER_PREFIX": brokers.prefix, "BOT_PREFETCH": "4",
                        "BOT_MAX_DELIVERIES": "2", "BOT_RETRY_DELAYS": "[0.05, 0.1]"}.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()

    assert await asyncio.to_thread(cli.main, ["replay", "--dry-run"]) == 0   # main() runs its own event loop
    out = capsys.readouterr().out
    assert "would replay   evt-broken-1  smartlead.email.sent  reason: invalid event:" in out
    assert "1 dead letter(s) would be replayed" in out
    await _depth_is(raw, brokers.names.dead_queue, 1)
    assert await _count(raw, brokers.names.work) == 0

    assert await asyncio.to_thread(cli.main, ["replay", "--limit", "5"]) == 0
    assert "replayed       evt-broken-1  smartlead.email.sent  reason: invalid event:" in capsys.readouterr().out
    await _depth_is(raw, brokers.names.work, 1)
    work = await raw.declare_queue(brokers.names.work, passive=True)
    message = await work.get(timeout=WAIT)
    assert (message.message_id, message.routing_key, message.body) == (
        "evt-broken-1", "smartlead.email.sent", b"{not json")
    await message.ack()
    assert await _count(raw, brokers.names.dead_queue) == 0


async def test_peek_keeps_the_dead_letters_and_their_order(raw: AbstractChannel, brokers: Brokers) -> None:
    broker = brokers()
    await broker.start()
    dead = await raw.get_exchange(brokers.names.dead_exchange)
    for n in range(3):          # parked as the broker parks them: reason in x-cg-reason
        message = aio_pika.Message(b"{}", message_id=f"d{n}", headers={HEADER_REASON: f"reason {n}"})
        await dead.publish(message, routing_key=f"smartlead.k{n}")
    await _depth_is(raw, brokers.names.dead_queue, 3)

    peeked = await broker.dead_letters(2, peek=True)
    assert [(d.message_id, d.routing_key, r) for d, r in peeked] == [
        ("d0", "smartlead.k0", "reason 0"), ("d1", "smartlead.k1", "reason 1")]
    await _depth_is(raw, brokers.names.dead_queue, 3)
    taken = await broker.dead_letters(10)
    assert [(d.message_id, r) for d, r in taken] == [("d0", "reason 0"), ("d1", "reason 1"), ("d2", "reason 2")]
    assert await broker.dead_letters(10, peek=True) == []


async def test_dry_run_declares_nothing_on_the_broker(
    amqp_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A dry run on a prefix RabbitMQ has never seen creates no exchange and no queue: it only looks."""
    monkeypatch.setattr(cli, "configure_logging", functools.partial(configure_logging, cache=False))
    monkeypatch.setenv("BOT_BROKER_URL", amqp_url)
    monkeypatch.setenv("BOT_BROKER_PREFIX", prefix)
    assert await asyncio.to_thread(cli.main, ["replay", "--dry-run"]) == 0
    assert f"no dead-letter queue {prefix}.dead at " in capsys.readouterr().out
    names = Names(prefix)
    connection = await aio_pika.connect(amqp_url)
    try:
        for queue in names.all_queues([1.0, 5.0, 30.0, 120.0, 600.0]):
            channel = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity):
                await channel.declare_queue(queue, passive=True)
        for exchange in names.all_exchanges():
            channel = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity):
                await channel.get_exchange(exchange, ensure=True)
    finally:
        await connection.close()
