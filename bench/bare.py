"""The bare ceilings campaign-guard is compared with: plain aiohttp + aio-pika on the same queue type.

`python -m bench.bare serve PORT AMQP_URL PREFIX` serves POST / → confirmed publish → 202.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import cast

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pamqp.common import FieldTable

from bench._common import paced_posts

QUORUM: FieldTable = {"x-queue-type": "quorum"}


async def declare(channel: aio_pika.abc.AbstractChannel, prefix: str) -> aio_pika.abc.AbstractExchange:
    exchange = await channel.declare_exchange(f"{prefix}.events", aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(f"{prefix}.work", durable=True, arguments=QUORUM)
    await queue.bind(exchange, routing_key="#")
    return exchange


async def serve(port: int, url: str, prefix: str) -> None:
    connection = await aio_pika.connect_robust(url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await declare(channel, prefix)
    counter = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal counter
        body = await request.read()
        counter += 1
        await exchange.publish(aio_pika.Message(body, message_id=str(counter),
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "bare", mandatory=True)
        return web.json_response({"accepted": 1}, status=202)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/", receive)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def publish_many(url: str, prefix: str, bodies: list[bytes], *, in_flight: int = 200) -> None:
    """Publish with confirms, `in_flight` at a time."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare(channel, prefix)
        for start in range(0, len(bodies), in_flight):
            await asyncio.gather(*(
                exchange.publish(aio_pika.Message(b, message_id=str(start + i),
                                                  delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "bare")
                for i, b in enumerate(bodies[start:start + in_flight])
            ))


async def consume_rate(url: str, prefix: str, count: int, *, prefetch: int) -> float:
    """Consume `count` ready messages with a manual ack each; messages per second."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(f"{prefix}.work", durable=True, arguments=QUORUM)
        done = asyncio.Event()
        seen = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen >= count:
                done.set()

        started = time.perf_counter()
        await queue.consume(on_message)
        await asyncio.wait_for(done.wait(), timeout=300)
        return count / (time.perf_counter() - started)


async def consume_rate_aiormq(url: str, prefix: str, count: int, *, prefetch: int) -> float:
    """`consume_rate` one layer down, as campaign-guard's worker consumes: basic.consume on aiormq's channel
    under aio-pika's, no aio-pika message object; messages per second."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(f"{prefix}.work", durable=True, arguments=QUORUM)
        underlay = await channel.get_underlay_channel()
        done = asyncio.Event()
        seen = 0

        async def on_message(message: DeliveredMessage) -> None:
            nonlocal seen
            tag = cast(Basic.Deliver, message.delivery).delivery_tag
            assert tag is not None                  # a delivery always has its tag
            await underlay.basic_ack(tag)
            seen += 1
            if seen >= count:
                done.set()

        started = time.perf_counter()
        await underlay.basic_consume(queue.name, on_message)
        await asyncio.wait_for(done.wait(), timeout=300)
        return count / (time.perf_counter() - started)


async def latency(url: str, prefix: str, *, rate: float, seconds: float, warm_up: float = 0.0) -> list[float]:
    """Publish (confirmed) at `rate` per second while consuming; publish→consume latency of each message
    after the first `warm_up` seconds' (published and consumed alike, not measured)."""
    connection = await aio_pika.connect(url)
    async with connection:
        publish_channel = await connection.channel(publisher_confirms=True)
        exchange = await declare(publish_channel, prefix)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=16)
        queue = await consume_channel.declare_queue(f"{prefix}.work", durable=True, arguments=QUORUM)
        warm, total = int(rate * warm_up), int(rate * (warm_up + seconds))
        latencies: list[float] = []
        seen = 0
        done = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal seen
            sent, index = message.body.split()
            if int(index) >= warm:
                latencies.append(time.time() - float(sent))
            await message.ack()
            seen += 1
            if seen >= total:
                done.set()

        await queue.consume(on_message)
        start = time.perf_counter()
        pending = []
        for index in range(total):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)       # pacing the generator
            message = aio_pika.Message(f"{time.time()} {index}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            pending.append(asyncio.create_task(exchange.publish(message, "bare")))
        await asyncio.gather(*pending)
        await asyncio.wait_for(done.wait(), timeout=120)
        return latencies


async def webhook_latency(url: str, prefix: str, server: str, *, rate: float, seconds: float,
                          warm_up: float = 0.0) -> list[float]:
    """POST at `rate` per second to a `serve` process at `server` (confirmed publish, then 202) while consuming
    its queue: webhook sent → message consumed, per message after the first `warm_up` seconds' (sent and
    consumed alike, not measured). The HTTP hop `latency` leaves out, with nothing else of ours in it."""
    warm, total = int(rate * warm_up), int(rate * (warm_up + seconds))
    received: dict[int, float] = {}
    done = asyncio.Event()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=16)
        queue = await channel.declare_queue(f"{prefix}.work", durable=True, arguments=QUORUM)

        async def on_message(message: AbstractIncomingMessage) -> None:
            received[int(message.body)] = time.time()
            await message.ack()
            if len(received) >= total:
                done.set()

        await queue.consume(on_message)
        requests = [(str(index).encode(), {"Content-Type": "text/plain"}) for index in range(total)]
        results = await paced_posts(server, requests, rate=rate)
        await asyncio.wait_for(done.wait(), timeout=120)
    return [received[index] - sent for index, (sent, status, _, _) in enumerate(results)
            if index >= warm and status == 202]


if __name__ == "__main__":
    _, command, port, url, prefix = sys.argv
    assert command == "serve"
    import uvloop  # the same event loop as campaign-guard's services, so the ratio compares our code

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(int(port), url, prefix))
