"""MemoryBroker: the in-process broker keeps the RabbitMQ broker's semantics (outcomes, delays, drain)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from pydantic import SecretStr

from bot.broker import AmqpBroker, MemoryBroker, make_broker
from bot.broker.base import Delivery, Outcome
from bot.config import Settings
from bot.errors import BrokerUnavailable

TINY = (0.01, 0.02)


class Recorder:
    """A handler that returns scripted outcomes (or raises scripted errors) and records deliveries."""

    def __init__(self, *script: Outcome | Exception, default: Outcome | None = None) -> None:
        self.script = list(script)
        self.default = default or Outcome.ack()
        self.seen: list[Delivery] = []
        self._changed = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> Outcome:
        self.seen.append(delivery)
        self._changed.set()
        item = self.script.pop(0) if self.script else self.default
        if isinstance(item, Exception):
            raise item
        return item

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(2):
            while len(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()


class Gate:
    """A handler that blocks until released, counting how many run at once."""

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
        return Outcome.ack()

    async def wait_running(self, count: int) -> None:
        async with asyncio.timeout(2):
            while self.running < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    b = MemoryBroker(prefetch=2, delivery_limit=2, retry_delays=TINY)
    await b.start()
    yield b
    await b.close()


async def idle(broker: MemoryBroker) -> None:
    async with asyncio.timeout(2):
        await broker.join()


async def test_ack_delivers_body_id_and_routing_key(broker: MemoryBroker) -> None:
    handler = Recorder()
    await broker.consume(handler)
    await broker.publish(b'{"a":1}', message_id="m1", routing_key="smartlead.webhook")
    await handler.wait_for(1)
    await idle(broker)
    assert handler.seen == [Delivery(b'{"a":1}', "m1", "smartlead.webhook", retries=0, redelivered=False)]
    assert broker.dead == ()


async def test_retry_comes_back_after_the_delay_with_the_count(broker: MemoryBroker) -> None:
    handler = Recorder(Outcome.retry("vendor 503"), Outcome.retry("vendor 503"))
    await broker.consume(handler)
    await broker.publish(b"{}", message_id="m1", routing_key="k")
    await handler.wait_for(3)
    await idle(broker)
    assert [d.retries for d in handler.seen] == [0, 1, 2]
    assert {(d.message_id, d.routing_key, d.redelivered) for d in handler.seen} == {("m1", "k", False)}
    assert broker.dead == ()


async def test_retries_exhausted_go_dead_with_the_reason(broker: MemoryBroker) -> None:
    handler = Recorder(default=Outcome.retry("vendor down"))
    await broker.consume(handler)
    await broker.publish(b"{}", message_id="m1", routing_key="k")
    await handler.wait_for(len(TINY) + 1)
    await idle(broker)
    [(delivery, reason)] = await broker.dead_letters(10)
    assert reason == "retries exhausted: vendor down"
    assert (delivery.message_id, delivery.retries) == ("m1", len(TINY))
    assert await broker.dead_letters(10) == []  # taken


async def test_dead_outcome_and_handler_exception_are_dead_lettered(broker: MemoryBroker) -> None:
    handler = Recorder(Outcome.dead("unparseable body"), ValueError("boom\nsecond line"))
    await broker.consume(handler)
    await broker.publish(b"1", message_id="m1", routing_key="k")
    await broker.publish(b"2", message_id="m2", routing_key="k")
    await handler.wait_for(2)
    await idle(broker)
    assert [(d.message_id, r) for d, r in broker.dead] == [
        ("m1", "unparseable body"),
        ("m2", "ValueError: boom second line"),
    ]


async def test_prefetch_bounds_handlers_in_flight(broker: MemoryBroker) -> None:
    gate = Gate()
    await broker.consume(gate)
    for i in range(5):
        await broker.publish(b"{}", message_id=f"m{i}", routing_key="k")
    await gate.wait_running(2)
    assert (broker.in_flight, broker.ready_count) == (2, 3)
    gate.release.set()
    await idle(broker)
    assert gate.peak == 2
    assert sorted(gate.finished) == [f"m{i}" for i in range(5)]


async def test_stop_consuming_lets_in_flight_finish_and_takes_no_more(broker: MemoryBroker) -> None:
    gate = Gate()
    await broker.consume(gate)
    for i in range(4):
        await broker.publish(b"{}", message_id=f"m{i}", routing_key="k")
    await gate.wait_running(2)
    stopping = asyncio.create_task(broker.stop_consuming(drain=5))
    gate.release.set()
    await asyncio.wait_for(stopping, 2)
    assert sorted(gate.finished) == ["m0", "m1"]
    assert (broker.in_flight, broker.ready_count) == (0, 2)


async def test_stop_consuming_cancels_after_drain_and_requeues_as_redelivered(broker: MemoryBroker) -> None:
    gate = Gate()  # never released
    await broker.consume(gate)
    await broker.publish(b"{}", message_id="m1", routing_key="k")
    await gate.wait_running(1)
    await broker.stop_consuming(drain=0.01)
    assert (broker.in_flight, broker.ready_count, gate.finished) == (0, 1, [])
    handler = Recorder()
    await broker.consume(handler)
    await handler.wait_for(1)
    assert (handler.seen[0].message_id, handler.seen[0].redelivered) == ("m1", True)


async def test_message_returned_past_the_delivery_limit_is_dead(broker: MemoryBroker) -> None:
    await broker.publish(b"{}", message_id="m1", routing_key="k")
    for _ in range(3):  # delivery_limit=2: the third return dead-letters it
        gate = Gate()
        await broker.consume(gate)
        await gate.wait_running(1)
        await broker.stop_consuming(drain=0)
    assert broker.ready_count == 0
    [(delivery, reason)] = broker.dead
    assert delivery.message_id == "m1" and reason.startswith("delivery_limit")


async def test_handler_delay_picks_a_longer_tier() -> None:
    b = MemoryBroker(prefetch=1, retry_delays=(0.01, 60.0))
    await b.start()
    handler = Recorder(Outcome.retry("429", delay=30.0))
    await b.consume(handler)
    await b.publish(b"{}", message_id="m1", routing_key="k")
    await handler.wait_for(1)
    assert b.delayed == 1  # waiting for the 60 s tier, not the 10 ms one
    await b.close()
    assert b.delayed == 0  # close cancels pending retries


async def test_publish_needs_a_started_open_broker() -> None:
    b = MemoryBroker()
    with pytest.raises(BrokerUnavailable):
        await b.publish(b"{}", message_id="m1", routing_key="k")
    await b.start()
    assert await b.ready()
    await b.close()
    assert not await b.ready()
    with pytest.raises(BrokerUnavailable):
        await b.publish(b"{}", message_id="m1", routing_key="k")


def test_make_broker_chooses_by_scheme() -> None:
    memory = make_broker(Settings(broker_url=SecretStr("memory://")))
    assert isinstance(memory, MemoryBroker)
    amqp = make_broker(Settings(broker_url=SecretStr("amqp://u:pw-123@rabbit:5672/cg"), broker_prefix="cg"))
    assert isinstance(amqp, AmqpBroker)
    assert amqp.where == "rabbit:5672/cg" and amqp.names.work == "cg.work"



async def test_handlers_cancelled_before_they_start_lose_nothing(broker: MemoryBroker) -> None:
    for i in range(3):
        await broker.publish(b"{}", message_id=f"m{i}", routing_key="k")
    handler = Recorder()
    await broker.consume(handler)
    await asyncio.sleep(0)  # one loop turn: the dispatcher hands out 2 messages, no handler has run yet
    assert (broker.in_flight, handler.seen) == (2, [])
    await broker.stop_consuming(drain=0)
    assert (broker.in_flight, broker.ready_count, broker.dead) == (0, 3, ())


class Batches:
    """A batch handler: records each batch; scripted outcomes by message id; `gate` blocks every batch."""

    def __init__(self, outcomes: dict[str, Outcome] | None = None, *, gated: bool = False) -> None:
        self.batches: list[list[Delivery]] = []
        self.outcomes = outcomes or {}
        self.gate = asyncio.Event()
        self.called = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        self.batches.append(list(deliveries))
        self.called.set()
        await self.gate.wait()
        return [self.outcomes.pop(d.message_id or "", Outcome.ack()) for d in deliveries]


async def test_batches_take_the_queued_messages_in_order_within_prefetch_and_settle_each() -> None:
    broker = MemoryBroker(prefetch=5, delivery_limit=2, retry_delays=TINY)
    await broker.start()
    for i in range(12):
        await broker.publish(b"{}", message_id=f"m{i:02}", routing_key="k")
    handler = Batches({"m03": Outcome.dead("poison"), "m04": Outcome.retry("later")})
    await broker.consume_batches(handler, size=3)
    await idle(broker)
    await broker.close()
    sizes = [len(batch) for batch in handler.batches]
    assert sizes[:2] == [3, 2] and max(sizes) == 3        # a batch is capped by size, then by prefetch
    seen = [d.message_id for batch in handler.batches for d in batch]
    assert [i for i in seen if i != "m04"] == [f"m{i:02}" for i in range(12) if i != 4]
    assert seen.count("m04") == 2
    assert [(d.message_id, reason) for d, reason in broker.dead] == [("m03", "poison")]


async def test_a_cancelled_batch_goes_back_to_the_head_of_the_queue_in_order() -> None:
    broker = MemoryBroker(prefetch=4, delivery_limit=2, retry_delays=TINY)
    await broker.start()
    for i in range(6):
        await broker.publish(b"{}", message_id=f"m{i}", routing_key="k")
    gated = Batches(gated=True)
    await broker.consume_batches(gated, size=4)
    await asyncio.wait_for(gated.called.wait(), 2)
    assert broker.in_flight == 4
    await broker.stop_consuming(drain=0)
    handler = Batches()
    await broker.consume_batches(handler, size=10)
    await idle(broker)
    await broker.close()
    assert [(d.message_id, d.redelivered) for batch in handler.batches for d in batch] == [
        ("m0", True), ("m1", True), ("m2", True), ("m3", True), ("m4", False), ("m5", False)]


async def test_a_batch_handler_that_raises_dead_letters_the_batch(broker: MemoryBroker) -> None:
    async def broken(deliveries: Sequence[Delivery]) -> list[Outcome]:
        raise ValueError("boom")

    await broker.publish(b"{}", message_id="m1", routing_key="k")
    await broker.publish(b"{}", message_id="m2", routing_key="k")
    await broker.consume_batches(broken, size=5)
    await idle(broker)
    assert [(d.message_id, reason) for d, reason in broker.dead] == [("m1", "ValueError: boom"), ("m2", "ValueError: boom")]
