"""AmqpBroker recovers by itself when RabbitMQ restarts (on a private node, never the shared one)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from bot.broker.amqp import AmqpBroker
from bot.broker.base import Delivery, Outcome
from bot.errors import BrokerUnavailable

if TYPE_CHECKING:
    from conftest import PrivateNode

pytestmark = pytest.mark.integration

WAIT = 10.0
BACK_WITHIN = 60.0  # node start (~5-15 s) plus aio-pika's reconnect interval


async def publish_until_accepted(broker: AmqpBroker, body: bytes, message_id: str) -> float:
    """Publish, retrying on BrokerUnavailable while RabbitMQ comes back; seconds it took.

    A bounded retry loop is the publisher's real contract after an outage (the web layer answers
    503 and the sender retries), so this is the behaviour under test, not a synchronisation sleep.
    """
    started = time.monotonic()
    async with asyncio.timeout(BACK_WITHIN):
        while True:
            try:
                await broker.publish(body, message_id=message_id, routing_key="smartlead.x")
                return time.monotonic() - started
            except BrokerUnavailable:
                await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_consumer_and_publisher_recover_after_rabbitmq_restart(private_rabbitmq: PrivateNode) -> None:
    seen: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handler(delivery: Delivery) -> Outcome:
        await seen.put(delivery)
        return Outcome.ack()

    broker = AmqpBroker(
        private_rabbitmq.url,
        prefix="test.restart",
        prefetch=4,
        delivery_limit=3,
        retry_delays=(0.05,),
        publish_timeout=2.0,
        reconnect_interval=0.5,
    )
    await broker.start()
    try:
        await broker.consume(handler)
        await broker.publish(b"1", message_id="before", routing_key="smartlead.x")
        assert (await asyncio.wait_for(seen.get(), WAIT)).message_id == "before"

        with capture_logs() as logs:
            await private_rabbitmq.stop()  # returns once the node process has exited
            # The client notices the closed socket on its next loop turn; nothing to await on.
            async with asyncio.timeout(WAIT):
                while await broker.ready():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable) as down:
                await broker.publish(b"x", message_id="while-down", routing_key="smartlead.x")
            assert time.monotonic() - started < 1.0  # fails fast, not after the publish timeout
            assert "guest" not in str(down.value)

            await private_rabbitmq.start()  # same node name, data directory and port
            await publish_until_accepted(broker, b"2", "after")
            after = await asyncio.wait_for(seen.get(), WAIT)

        assert (after.message_id, after.routing_key, after.body) == ("after", "smartlead.x", b"2")
        assert await broker.ready()
        events = [entry["event"] for entry in logs]
        assert events.count("broker.disconnected") == 1 and events.count("broker.reconnected") == 1
        assert seen.empty()  # "while-down" was refused, never half-published
    finally:
        await broker.close()
