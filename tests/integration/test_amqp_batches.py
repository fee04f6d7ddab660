"""AmqpBroker.consume_batches against a real RabbitMQ: bursts in batches, in order, settled with
multiple-acks that never hold the prefetch window and never ack a tag twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from bot.broker.base import Delivery, Outcome

if TYPE_CHECKING:
    from conftest import Brokers

pytestmark = pytest.mark.integration

WAIT = 10.0


class Batches:
    """Batch handler recording each batch; `hold` blocks the batch holding that message id until released."""

    def __init__(self, outcomes: dict[str, Outcome] | None = None, hold: str | None = None) -> None:
        self.batches: list[list[Delivery]] = []
        self.outcomes = outcomes or {}
        self.hold = hold
        self.release = asyncio.Event()
        self._changed = asyncio.Event()

    async def __call__(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        self.batches.append(list(deliveries))
        self._changed.set()
        if self.hold in {d.message_id for d in deliveries}:
            await self.release.wait()
        return [self.outcomes.pop(d.message_id or "", Outcome.ack()) for d in deliveries]

    @property
    def seen(self) -> list[Delivery]:
        return [d for batch in self.batches for d in batch]

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()


async def test_a_burst_is_handled_in_batches_in_order_and_acked_without_redelivery(brokers: Brokers) -> None:
    # 400 messages through a window of 16: were the multiple-acks missing, the window would stay full
    # after 16; were one sent for a tag acked before, RabbitMQ would close the channel and redeliver.
    publisher, consumer = brokers(prefetch=16), brokers(prefetch=16)
    await publisher.start()
    await consumer.start()
    ids = [f"m{i:03}" for i in range(400)]
    await asyncio.gather(*(publisher.publish(b"{}", message_id=i, routing_key="k") for i in ids[:200]))
    handler = Batches({"m005": Outcome.dead("poison"), "m007": Outcome.retry("later")})
    await consumer.consume_batches(handler, size=8)
    await handler.wait_for(150)
    await asyncio.gather(*(publisher.publish(b"{}", message_id=i, routing_key="k") for i in ids[200:]))
    await handler.wait_for(401)                             # m007 comes back once from the retry path
    await consumer.stop_consuming(WAIT)
    seen = [d.message_id for d in handler.seen]
    assert [i for i in seen if i != "m007"] == [i for i in ids if i != "m007"]   # publish order, each once
    assert seen.count("m007") == 2 and not any(d.redelivered for d in handler.seen)
    assert 1 < max(len(batch) for batch in handler.batches) <= 8 and len(handler.batches) < 300
    [(dead, reason)] = await consumer.dead_letters(5)
    assert (dead.message_id, reason) == ("m005", "poison")


async def test_a_slow_batch_does_not_hold_the_window_of_the_batches_behind_it(brokers: Brokers) -> None:
    publisher, consumer = brokers(prefetch=8), brokers(prefetch=8)
    await publisher.start()
    await consumer.start()
    await publisher.publish(b"{}", message_id="slow", routing_key="k")
    handler = Batches(hold="slow")
    await consumer.consume_batches(handler, size=4)
    await handler.wait_for(1)
    # 40 more while the first batch waits: they pass through a window of 8 only if theirs are acked now
    await asyncio.gather(*(publisher.publish(b"{}", message_id=f"m{i}", routing_key="k") for i in range(40)))
    await handler.wait_for(41)
    handler.release.set()
    await consumer.stop_consuming(WAIT)
    assert sorted(d.message_id or "" for d in handler.seen) == sorted(["slow", *(f"m{i}" for i in range(40))])
    assert not any(d.redelivered for d in handler.seen)
    # nothing left unacked: a second consumer finds only what is published now
    await publisher.publish(b"{}", message_id="last", routing_key="k")
    again = Batches()
    await consumer.consume_batches(again, size=4)
    await again.wait_for(1)
    await consumer.stop_consuming(WAIT)
    assert [d.message_id for d in again.seen] == ["last"]


async def test_a_batch_handler_that_raises_dead_letters_its_messages(brokers: Brokers) -> None:
    broker = brokers(prefetch=8)
    await broker.start()

    async def broken(deliveries: Sequence[Delivery]) -> list[Outcome]:
        raise ValueError("boom")

    for i in range(3):
        await broker.publish(b"{}", message_id=f"m{i}", routing_key="k")
    await broker.consume_batches(broken, size=8)
    got: list[tuple[Delivery, str]] = []
    async with asyncio.timeout(WAIT):
        while len(got) < 3:
            got += await broker.dead_letters(3 - len(got))
    assert sorted(d.message_id or "" for d, _ in got) == ["m0", "m1", "m2"]
    assert {reason for _, reason in got} == {"ValueError: boom"}
