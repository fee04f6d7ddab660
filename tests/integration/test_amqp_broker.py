"""AmqpBroker against a real RabbitMQ: topology, confirms, retry tiers, dead letters, prefetch, drain."""

from __future__ import annotations

import asyncio
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bot.broker.amqp import AmqpBroker
from bot.broker.base import Delivery, Outcome
from bot.broker.topology import HEADER_REASON, HEADER_ROUTING_KEY, Names, declare_topology
from bot.errors import BrokerUnavailable

if TYPE_CHECKING:
    from conftest import Brokers

pytestmark = pytest.mark.integration

WAIT = 10.0


class Recorder:
    """Handler returning scripted outcomes (or raising scripted errors); records what it saw."""

    def __init__(self, *script: Outcome | Exception, default: Outcome | None = None) -> None:
        self.script = list(script)
        self.default = default or Outcome.ack()
        self.seen: list[Delivery] = []
        self.at: list[float] = []
        self._changed = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> Outcome:
        self.seen.append(delivery)
        self.at.append(time.monotonic())
        self._changed.set()
        item = self.script.pop(0) if self.script else self.default
        if isinstance(item, Exception):
            raise item
        return item

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()


class Gate:
    """Handler that blocks until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0
        self.finished: list[str] = []
        self._changed = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> Outcome:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self._changed.set()
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        self.finished.append(delivery.message_id or "")
        self._changed.set()
        return Outcome.ack()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


async def ready_count(channel: AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return int(declared.declaration_result.message_count or 0)


async def poll(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll with short sleeps; only for states no event announces (messages sitting in a queue)."""
    async with asyncio.timeout(WAIT):
        while not await condition():  # noqa: ASYNC110 (a queue depth has no event to wait on)
            await asyncio.sleep(0.02)


async def dead_messages(raw: AbstractChannel, names: Names, count: int) -> list[AbstractIncomingMessage]:
    """Consume `count` messages from the dead queue (event-driven) and ack them."""
    got: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    queue = await raw.declare_queue(names.dead_queue, passive=True)
    tag = await queue.consume(got.put)
    try:
        async with asyncio.timeout(WAIT):
            messages = [await got.get() for _ in range(count)]
    finally:
        await queue.cancel(tag)
    for message in messages:
        await message.ack()
    return messages


async def test_topology_can_be_declared_twice(raw: AbstractChannel, brokers: Brokers) -> None:
    brokers.tiers.update((0.05, 0.1))
    for _ in range(2):
        topology = await declare_topology(raw, brokers.names, delivery_limit=2, retry_delays=(0.05, 0.1, 0.1))
    assert sorted(topology.retry) == [50, 100]
    for queue in brokers.names.all_queues((0.05, 0.1)):
        assert await ready_count(raw, queue) == 0


async def test_publish_is_persistent_json_with_id(raw: AbstractChannel, brokers: Brokers) -> None:
    broker = brokers()
    await broker.start()
    assert await broker.ready()
    await broker.publish(b'{"x":1}', message_id="evt-1", routing_key="smartlead.EMAIL_BOUNCE")
    work = await raw.declare_queue(brokers.names.work, passive=True)
    message = await work.get(timeout=WAIT)
    await message.ack()
    assert (message.body, message.message_id, message.routing_key) == (b'{"x":1}', "evt-1", "smartlead.EMAIL_BOUNCE")
    assert (message.content_type, message.delivery_mode) == ("application/json", aio_pika.DeliveryMode.PERSISTENT)
    await broker.close()
    assert not await broker.ready()


async def test_published_message_is_consumed_with_id_and_routing_key(brokers: Brokers) -> None:
    broker = brokers()
    await broker.start()
    handler = Recorder()
    await broker.consume(handler)
    await broker.publish(b"{}", message_id="evt-2", routing_key="leadterra.bounce")
    await handler.wait_for(1)
    assert handler.seen == [Delivery(b"{}", "evt-2", "leadterra.bounce", retries=0, redelivered=False)]


async def test_unreachable_broker_fails_fast_without_the_password() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    broker = AmqpBroker(
        f"amqp://guest:S3cret-pw@127.0.0.1:{port}/",
        prefix="test.unreachable",
        prefetch=1,
        delivery_limit=2,
        retry_delays=(1.0,),
    )
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as before_start:
        await broker.publish(b"{}", message_id="m", routing_key="k")
    with pytest.raises(BrokerUnavailable) as on_start:
        await broker.start()
    assert time.monotonic() - started < 3
    for info in (before_start, on_start):
        text = "".join(traceback.format_exception(info.value)) + repr(info.value)
        assert "S3cret-pw" not in text
        assert f"127.0.0.1:{port}" in str(info.value)
    assert not await broker.ready()


async def test_unroutable_publish_is_refused(raw: AbstractChannel, brokers: Brokers) -> None:
    broker = brokers()
    await broker.start()
    await raw.queue_delete(brokers.names.work)  # nothing bound to the events exchange any more
    with pytest.raises(BrokerUnavailable, match="unroutable"):
        await broker.publish(b"{}", message_id="m", routing_key="k")


async def test_retry_goes_through_the_ttl_tiers_and_comes_back(brokers: Brokers) -> None:
    broker = brokers(retry_delays=(0.05, 0.2))
    await broker.start()
    handler = Recorder(Outcome.retry("vendor 503"), Outcome.retry("vendor 503"))
    await broker.consume(handler)
    await broker.publish(b"{}", message_id="evt-3", routing_key="smartlead.x")
    await handler.wait_for(3)
    assert [d.retries for d in handler.seen] == [0, 1, 2]
    assert {(d.message_id, d.routing_key) for d in handler.seen} == {("evt-3", "smartlead.x")}
    assert handler.at[1] - handler.at[0] >= 0.05
    assert handler.at[2] - handler.at[1] >= 0.2


async def test_exhausted_retries_are_dead_lettered_with_the_reason(raw: AbstractChannel, brokers: Brokers) -> None:
    broker = brokers(retry_delays=(0.05,))
    await broker.start()
    handler = Recorder(default=Outcome.retry("vendor down"))
    await broker.consume(handler)
    await broker.publish(b"{}", message_id="evt-4", routing_key="a.b")
    [dead] = await dead_messages(raw, brokers.names, 1)
    assert len(handler.seen) == 2
    assert dead.headers[HEADER_REASON] == "retries exhausted: vendor down"
    assert (dead.message_id, dead.headers[HEADER_ROUTING_KEY]) == ("evt-4", "a.b")


async def test_dead_outcome_keeps_reason_routing_key_and_id(raw: AbstractChannel, brokers: Brokers) -> None:
    broker = brokers()
    await broker.start()
    await broker.consume(Recorder(Outcome.dead("unknown event type")))
    await broker.publish(b"{}", message_id="evt-5", routing_key="inbox.weird")
    [dead] = await dead_messages(raw, brokers.names, 1)
    assert dead.headers[HEADER_REASON] == "unknown event type"
    assert (dead.message_id, dead.routing_key, dead.headers[HEADER_ROUTING_KEY]) == ("evt-5", "inbox.weird", "inbox.weird")
    assert await ready_count(raw, brokers.names.work) == 0


async def test_handler_exception_is_dead_lettered_and_replayable(raw: AbstractChannel, brokers: Brokers) -> None:
    broker = brokers()
    await broker.start()
    handler = Recorder(KeyError("campaign_id"))
    await broker.consume(handler)
    await broker.publish(b'{"bad":1}', message_id="evt-6", routing_key="smartlead.x")
    await handler.wait_for(1)
    # Nothing announces that the confirmed dead copy is readable by basic.get: poll its queue.
    await poll(lambda: _ready_is(raw, brokers.names.dead_queue, 1))
    [(delivery, reason)] = await broker.dead_letters(10)
    assert reason == "KeyError: 'campaign_id'"
    assert (delivery.body, delivery.message_id, delivery.routing_key) == (b'{"bad":1}', "evt-6", "smartlead.x")
    assert await broker.dead_letters(10) == []


async def test_crashing_consumer_hits_the_delivery_limit(raw: AbstractChannel, brokers: Brokers) -> None:
    broker = brokers(delivery_limit=2)
    await broker.start()
    await broker.publish(b"{}", message_id="evt-7", routing_key="k")
    for _ in range(3):  # delivered 3 times with limit 2; each time the "worker" dies mid-message
        async with await aio_pika.connect(brokers.url, timeout=10) as crashing:
            channel = await crashing.channel()
            work = await channel.declare_queue(brokers.names.work, passive=True)
            await poll(lambda: _ready_is(raw, brokers.names.work, 1))
            message = await work.get(timeout=WAIT)
            assert message.message_id == "evt-7"
        # connection closed without ack: RabbitMQ returns it and counts the delivery
    await poll(lambda: _ready_is(raw, brokers.names.dead_queue, 1))
    [(delivery, reason)] = await broker.dead_letters(1)
    assert delivery.message_id == "evt-7"
    assert reason.startswith("delivery_limit") and brokers.names.work in reason


async def test_prefetch_bounds_concurrency(raw: AbstractChannel, brokers: Brokers) -> None:
    broker = brokers(prefetch=2)
    await broker.start()
    for i in range(5):
        await broker.publish(b"{}", message_id=f"m{i}", routing_key="k")
    gate = Gate()
    await broker.consume(gate)
    await gate.wait_until(lambda: gate.running == 2)
    assert await ready_count(raw, brokers.names.work) == 3
    gate.release.set()
    await gate.wait_until(lambda: len(gate.finished) == 5)
    assert gate.peak == 2


async def test_stop_consuming_drains_in_flight_and_leaves_nothing_unacked(
    raw: AbstractChannel, brokers: Brokers
) -> None:
    broker = brokers(prefetch=2)
    await broker.start()
    for i in range(4):
        await broker.publish(b"{}", message_id=f"m{i}", routing_key="k")
    gate = Gate()
    await broker.consume(gate)
    await gate.wait_until(lambda: gate.running == 2)
    stopping = asyncio.create_task(broker.stop_consuming(drain=WAIT))
    gate.release.set()
    await asyncio.wait_for(stopping, WAIT)
    assert sorted(gate.finished) == ["m0", "m1"]
    # The connection stays open, so a message left unacked would never be ready again. Quorum
    # queues take back a closed channel's messages asynchronously: poll (no event announces it).
    await poll(lambda: _ready_is(raw, brokers.names.work, 2))
    assert await broker.ready()
    await broker.close()
    assert await ready_count(raw, brokers.names.work) == 2


async def _ready_is(raw: AbstractChannel, queue: str, count: int) -> bool:
    return await ready_count(raw, queue) == count


async def test_stop_consuming_after_drain_requeues_unfinished(raw: AbstractChannel, brokers: Brokers) -> None:
    broker = brokers(prefetch=2)
    await broker.start()
    await broker.publish(b"{}", message_id="slow", routing_key="k")
    gate = Gate()  # never released
    await broker.consume(gate)
    await gate.wait_until(lambda: gate.running == 1)
    await broker.stop_consuming(drain=0.05)
    assert gate.finished == []
    await poll(lambda: _ready_is(raw, brokers.names.work, 1))  # returned by the channel close
    handler = Recorder()
    await broker.consume(handler)  # the same broker can subscribe again
    await handler.wait_for(1)
    assert (handler.seen[0].message_id, handler.seen[0].redelivered) == ("slow", True)


async def test_a_closing_channel_does_not_cut_an_in_flight_handler_off(brokers: Brokers) -> None:
    """A handler may be in the middle of a vendor action when the link drops: it finishes (its ack then
    fails quietly and RabbitMQ redelivers), it is not interrupted at whatever await it was in."""
    broker = brokers(prefetch=1)
    await broker.start()
    await broker.publish(b"{}", message_id="in-flight", routing_key="k")
    gate = Gate()
    await broker.consume(gate)
    await gate.wait_until(lambda: gate.running == 1)
    assert broker._consumer is not None
    underlay = await broker._consumer.get_underlay_channel()
    await underlay.close()               # what a dropped connection does to the consumer channel
    gate.release.set()
    await gate.wait_until(lambda: gate.finished == ["in-flight"])
    await broker.close()
