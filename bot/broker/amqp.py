"""RabbitMQ broker: confirmed publishing, consuming with outcomes, delayed retry, dead letters, recovery.

One robust connection: after a RabbitMQ restart aio-pika re-opens the channels and re-declares the
topology; `_on_reconnect` then subscribes again. A publisher channel with confirms; a consumer channel
with `prefetch` while consuming, whose deliveries are taken at the aiormq layer (see `_subscribe`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final, cast

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractExchange,
    AbstractMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import DeliveryError, PublishError
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from structlog.contextvars import bound_contextvars

from bot.broker.acks import AckBook
from bot.broker.amqp_messages import (
    CONTENT_TYPE,
    LINK_ERRORS,
    dead_copy,
    get_messages,
    is_ack,
    peek_queue,
    raw_delivery,
    retry_copy,
    safe_where,
    settle_quietly,
)
from bot.broker.base import BatchHandler, Delivery, Handler, Outcome, Verdict
from bot.broker.policy import choose_delay, exception_reason, exhausted_reason, outcomes_of, short_reason
from bot.broker.topology import Names, Topology, declare_topology
from bot.errors import BrokerUnavailable

__all__ = ["AmqpBroker"]

log = structlog.get_logger(__name__)
#: turns of the event loop a burst of deliveries is collected over before it is handed over (no timer)
_COLLECT_TURNS: Final = 3


class AmqpBroker:
    """`bot.broker.base.Broker` on RabbitMQ (see `bot.broker.topology` for the exchanges and queues)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        prefetch: int,
        delivery_limit: int,
        retry_delays: Sequence[float],
        publish_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        if prefetch < 1 or delivery_limit < 1 or publish_timeout <= 0:
            raise ValueError("prefetch and delivery_limit must be ≥ 1 and publish_timeout > 0")
        self._url = url  # holds the password: never put it into a message or a log line
        self.where = safe_where(url)
        self.names = Names(prefix)
        self._prefetch = prefetch
        self._delivery_limit = delivery_limit
        self._delays = tuple(retry_delays)
        self._timeout = publish_timeout
        self._reconnect_interval = reconnect_interval
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._consumer: AbstractRobustChannel | None = None
        self._topology: Topology | None = None
        self._handler: Handler | None = None
        self._consumer_tag: str | None = None
        self._accepting = False  # set before basic.consume: deliveries can beat its consume-ok
        # True from start() and after each completed recovery (channels, topology, consumer restored)
        # until the connection drops: publish() and ready() go by it, not by the socket alone.
        self._link_up = False
        self._slots = asyncio.Semaphore(prefetch)
        self._tasks: set[asyncio.Task[None]] = set()
        #: batch consuming (`consume_batches`): deliveries waiting for the next batch, its size, and the
        #: unacked tags of each consumer channel (aiormq's), settled by `AckBook`
        self._batch: BatchHandler | None = None
        self._batch_size = 1
        self._waiting: list[DeliveredMessage] = []
        self._books: dict[Any, AckBook] = {}
        self._acking = asyncio.Lock()
        self._flushing = False
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Connect, open the publisher channel, declare the topology; BrokerUnavailable if RabbitMQ is not there."""
        if self._connection is not None:
            return
        try:
            connection = await aio_pika.connect_robust(
                self._url,
                timeout=self._timeout,
                reconnect_interval=self._reconnect_interval,
                client_properties={"connection_name": f"campaign-guard {self.names.prefix}"},
            )
        except LINK_ERRORS as exc:
            # `from None`: a chained library error could carry connection details into a traceback.
            raise BrokerUnavailable(f"cannot connect to RabbitMQ at {self.where} ({type(exc).__name__})") from None
        try:
            publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
            topology = await self._declare(publisher)
        except LINK_ERRORS as exc:
            await connection.close()
            raise BrokerUnavailable(f"cannot set up RabbitMQ at {self.where} ({type(exc).__name__})") from None
        self._connection, self._publisher, self._topology, self._link_up = connection, publisher, topology, True
        connection.reconnect_callbacks.add(self._on_reconnect)
        connection.close_callbacks.add(self._on_connection_lost)
        log.info("broker.connected", where=self.where, prefix=self.names.prefix)

    async def close(self) -> None:
        """Stop consuming at once (in-flight messages go back to the queue) and close the connection."""
        await self.stop_consuming(0)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        connection, self._connection = self._connection, None
        self._publisher = self._consumer = None
        if connection is not None:
            await connection.close()
            log.info("broker.closed", where=self.where)

    async def ready(self) -> bool:
        """Connected, publisher channel open, and the consumer channel open while consuming."""
        connection, publisher, consumer = self._connection, self._publisher, self._consumer
        link_up = self._link_up and connection is not None and connection.connected.is_set()
        channels_open = publisher is not None and not publisher.is_closed and not (consumer and consumer.is_closed)
        return link_up and channels_open

    async def _declare(self, channel: AbstractRobustChannel) -> Topology:
        return await declare_topology(channel, self.names, delivery_limit=self._delivery_limit, retry_delays=self._delays)

    def _on_connection_lost(self, _: Any, exc: BaseException | None = None) -> None:
        # Called again for every failed reconnect attempt: log the outage once.
        if self._link_up and self._connection is not None and not self._connection.is_closed:
            self._link_up = False
            log.warning("broker.disconnected", where=self.where, error=type(exc).__name__ if exc else None)

    def _on_reconnect(self, _: Any) -> None:
        self._link_up = True
        log.info("broker.reconnected", where=self.where, consuming=self._consumer_tag is not None)
        if self._consumer_tag is not None:
            self._spawn(self._ensure_subscribed(), self._background)

    async def _ensure_subscribed(self) -> None:
        """Subscribe again on the channel the robust one re-opened after a reconnect (see `_subscribe`)."""
        consumer, tag = self._consumer, self._consumer_tag
        if consumer is None or tag is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                underlay = await consumer.get_underlay_channel()
            if tag in getattr(underlay, "consumers", {}):  # aiormq's Channel; absent from its abc
                return
            self._consumer_tag = await self._subscribe(consumer)
            log.info("broker.resubscribed", where=self.where, queue=self.names.work)
        except LINK_ERRORS as exc:
            log.warning("broker.resubscribe_failed", where=self.where, error=type(exc).__name__)

    async def publish(self, body: bytes, *, message_id: str, routing_key: str) -> None:
        """Return once RabbitMQ confirmed the message; BrokerUnavailable otherwise.

        Sent at the aiormq layer under the robust channel (no aio-pika Message per event: the intake
        publishes one per webhook); retry and dead-letter copies go through `_publish`."""
        publisher = self._publisher if self._topology is not None else None
        properties = Basic.Properties(message_id=message_id, content_type=CONTENT_TYPE, delivery_mode=2, headers={})
        async with self._publishing(routing_key, ready=publisher is not None):
            assert publisher is not None
            channel = await publisher.get_underlay_channel()
            confirmation = await channel.basic_publish(body, exchange=self.names.events, routing_key=routing_key,
                                                       properties=properties, mandatory=True)
        if not is_ack(confirmation):
            raise BrokerUnavailable(f"RabbitMQ at {self.where} did not confirm the message")

    async def _publish(self, exchange: AbstractExchange | None, routing_key: str, message: AbstractMessage) -> None:
        async with self._publishing(routing_key, ready=exchange is not None):
            assert exchange is not None
            confirmation = await exchange.publish(message, routing_key, mandatory=True)
        if not is_ack(confirmation):
            raise BrokerUnavailable(f"RabbitMQ at {self.where} did not confirm the message")

    @contextlib.asynccontextmanager
    async def _publishing(self, routing_key: str, *, ready: bool) -> AsyncIterator[None]:
        """Connected (and `ready`: the caller has its channel or exchange) first, then bounded by the
        publish timeout; every failure becomes BrokerUnavailable."""
        connection = self._connection
        if not ready or connection is None or not (self._link_up and connection.connected.is_set()):
            raise BrokerUnavailable(f"RabbitMQ at {self.where} is not connected")
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except PublishError:
            raise BrokerUnavailable(f"RabbitMQ returned the message as unroutable ({routing_key!r})") from None
        except DeliveryError:
            raise BrokerUnavailable(f"RabbitMQ at {self.where} did not confirm the message (nack)") from None
        except TimeoutError:
            raise BrokerUnavailable(f"RabbitMQ at {self.where} did not confirm within {self._timeout}s") from None
        except LINK_ERRORS as exc:
            raise BrokerUnavailable(f"RabbitMQ at {self.where} failed: {type(exc).__name__}") from None

    async def consume(self, handler: Handler) -> None:
        """Open the consumer channel, subscribe to the work queue and return; handlers run in tasks."""
        self._batch = None
        await self._consume(handler)

    async def consume_batches(self, handler: BatchHandler, *, size: int) -> None:
        """As `consume`, but the deliveries at hand (up to `size`) go to `handler` together, in delivery
        order, and are settled together: retry and dead-letter copies parked first, then one multiple-ack
        (bot.broker.acks). Batches run in tasks like single handlers; a delivery that arrives while
        batches are in flight waits for the next batch."""
        if size < 1:
            raise ValueError("a batch holds at least one delivery")
        self._batch, self._batch_size = handler, size
        await self._consume(None)

    async def _consume(self, handler: Handler | None) -> None:
        if self._connection is None or self._consumer is not None:
            raise RuntimeError("AmqpBroker.consume() needs start() first and cannot subscribe twice")
        self._handler, self._accepting = handler, True
        try:
            async with asyncio.timeout(self._timeout * 3):  # robust channels wait while reconnecting
                self._consumer = await self._connection.channel(publisher_confirms=False)
                await self._consumer.set_qos(prefetch_count=self._prefetch, timeout=self._timeout)
                await self._declare(self._consumer)
                self._consumer_tag = await self._subscribe(self._consumer)
        except LINK_ERRORS as exc:
            self._accepting = False
            await self._close_consumer_channel()
            raise BrokerUnavailable(f"cannot consume from RabbitMQ at {self.where} ({type(exc).__name__})") from None
        log.info("broker.consuming", queue=self.names.work, prefetch=self._prefetch)

    async def stop_consuming(self, drain: float) -> None:
        """Cancel the subscription, give in-flight handlers `drain` seconds, then cancel them.

        Closing the consumer channel at the end hands every unacked message back to the queue:
        those of cancelled handlers and those delivered while the cancel was on its way.
        """
        tag, consumer, self._consumer_tag, self._accepting = self._consumer_tag, self._consumer, None, False
        if tag is not None and consumer is not None:
            try:
                async with asyncio.timeout(self._timeout):  # a robust channel waits while RabbitMQ is down
                    underlay = await consumer.get_underlay_channel()
                    await underlay.basic_cancel(tag, timeout=self._timeout)
            except LINK_ERRORS as exc:  # the channel is gone: RabbitMQ dropped the subscription with it
                log.warning("broker.cancel_failed", error=type(exc).__name__)
        if self._tasks:
            in_flight = set(self._tasks)
            done, pending = await asyncio.wait(in_flight, timeout=drain) if drain > 0 else (set(), in_flight)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            log.info("broker.drained", finished=len(done), cancelled=len(pending))
        await self._flush_acks()            # the finished ones' acks, before the channel closes and returns them
        await self._close_consumer_channel()

    async def _close_consumer_channel(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None and not consumer.is_closed:
            try:
                async with asyncio.timeout(self._timeout):
                    await consumer.close()
            except LINK_ERRORS as exc:
                log.warning("broker.channel_close_failed", error=type(exc).__name__)

    def _spawn(self, coro: Any, into: set[asyncio.Task[None]]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        into.add(task)
        task.add_done_callback(into.discard)

    async def _subscribe(self, consumer: AbstractRobustChannel) -> str:
        """basic.consume on aiormq's channel under the robust one: a delivery costs no aio-pika message
        object and no aio-pika task. The
        robust channel does not restore this subscription after a reconnect: `_ensure_subscribed` does."""
        underlay = await consumer.get_underlay_channel()
        ok = await underlay.basic_consume(self.names.work, self._on_message, timeout=self._timeout)
        return str(ok.consumer_tag)

    async def _on_message(self, message: DeliveredMessage) -> None:
        # Returns at once: the handler runs in a task of ours, tracked so stop_consuming can drain or
        # cancel it, and not in the task aiormq starts for this callback: aiormq throws into those when
        # the channel closes (a RabbitMQ restart), which would cut a vendor action off midway.
        # Cancelled, the message stays unacked and goes back to the queue when the channel closes.
        if not self._accepting:
            return  # delivered while our cancel was on its way: closing the channel returns it
        if self._batch is not None:
            self._book(message.channel).delivered(_tag(message))
            self._waiting.append(message)
            if len(self._waiting) == 1:     # the first of a burst: collect the rest, then run them
                asyncio.get_running_loop().call_soon(self._start_batches, _COLLECT_TURNS)
        elif self._handler is not None:
            self._spawn(self._process(message, self._handler), self._tasks)

    def _book(self, channel: Any) -> AckBook:
        book = self._books.get(channel)
        if book is None:
            self._books = {key: b for key, b in self._books.items() if b}     # drop emptied ones (old channels)
            book = self._books[channel] = AckBook()
        return book

    def _start_batches(self, turns: int) -> None:
        """Hand the deliveries collected since the first of them over in batches of up to `size` (each in a
        task of ours: see `_on_message`), `turns` turns of the loop after it: aiormq reads a burst off the
        socket a few deliveries per turn (its reader and each channel's are tasks that take turns), and a
        batch's own cost (a task, its settling, a turn of `Worker.handle_batch`) is paid once for all."""
        if turns > 0 and len(self._waiting) < self._batch_size:
            asyncio.get_running_loop().call_soon(self._start_batches, turns - 1)
            return
        waiting, self._waiting = self._waiting, []
        if not self._accepting or self._batch is None:
            return
        for start in range(0, len(waiting), self._batch_size):
            self._spawn(self._process_batch(waiting[start:start + self._batch_size], self._batch), self._tasks)

    async def _process_batch(self, raws: list[DeliveredMessage], handler: BatchHandler) -> None:
        deliveries = [raw_delivery(raw) for raw in raws]
        outcomes = await outcomes_of(handler, deliveries)
        for raw, delivery, outcome in zip(raws, deliveries, outcomes, strict=True):
            requeued = outcome.verdict is not Verdict.ACK and not await self._park(raw, delivery, outcome)
            if requeued:
                self._book(raw.channel).settle((), acked=(_tag(raw),))
            else:
                self._book(raw.channel).settle((_tag(raw),))
        if not self._flushing:              # the batches settled in this turn of the loop: acked together
            self._flushing = True
            asyncio.get_running_loop().call_soon(lambda: self._spawn(self._flush_acks(), self._background))

    async def _flush_acks(self) -> None:
        """Send what the books say (`AckBook.take`), in the order taken: a multiple-ack overtaking an earlier
        single ack below it would ack that tag twice, and RabbitMQ closes a channel for that. (An uncontended
        lock is taken without yielding; a contended one queues its waiters in order.)"""
        self._flushing = False
        taken = [(channel, *book.take()) for channel, book in self._books.items()]
        async with self._acking:
            for channel, multiple, singles in taken:
                for tag in singles:
                    await settle_quietly(channel.basic_ack(tag))
                if multiple is not None:
                    await settle_quietly(channel.basic_ack(multiple, multiple=True))

    async def _park(self, raw: DeliveredMessage, delivery: Delivery, outcome: Outcome) -> bool:
        """Park the retry or dead-letter copy; False (and the original nacked for a requeue) when it could
        not be parked."""
        with bound_contextvars(message_id=delivery.message_id, routing_key=delivery.routing_key):
            try:
                if outcome.verdict is Verdict.RETRY:
                    await self._retry(raw.header.properties.headers, delivery, outcome)
                else:
                    await self._dead_letter(raw.header.properties.headers, delivery,
                                            short_reason(outcome.reason or "dead"))
            except BrokerUnavailable as exc:
                log.warning("message.settle_failed", verdict=str(outcome.verdict), error=str(exc))
                await settle_quietly(raw.channel.basic_nack(_tag(raw), requeue=True))
                return False
        return True

    async def _process(self, raw: DeliveredMessage, handler: Handler) -> None:
        delivery = raw_delivery(raw)
        async with self._slots:
            try:
                outcome = await handler(delivery)
            except Exception as exc:  # a handler that raises is a bug: park the message
                with bound_contextvars(message_id=delivery.message_id, routing_key=delivery.routing_key):
                    log.exception("message.handler_failed", retries=delivery.retries)
                outcome = Outcome.dead(exception_reason(exc))
            await self._settle(raw, delivery, outcome)

    async def _settle(self, raw: DeliveredMessage, delivery: Delivery, outcome: Outcome) -> None:
        """Park a copy for a retry or a dead letter, then ack; nack (requeue) when the copy could not be
        parked. On the channel the message came by: after a reconnect its tag means nothing on the new one."""
        # Could not park the copy: the original was returned; the delivery limit bounds the loop.
        if outcome.verdict is Verdict.ACK or await self._park(raw, delivery, outcome):
            await settle_quietly(raw.channel.basic_ack(_tag(raw)))

    async def _retry(self, headers: Mapping[str, Any] | None, delivery: Delivery, outcome: Outcome) -> None:
        delay = choose_delay(delivery.retries, outcome.delay, self._delays)
        if delay is None or self._topology is None:
            await self._dead_letter(headers, delivery, exhausted_reason(outcome.reason or "retry"))
            return
        ms = round(delay * 1000)
        copy = retry_copy(headers, delivery, short_reason(outcome.reason))
        default = self._publisher.default_exchange if self._publisher is not None else None
        await self._publish(default, self.names.retry(ms), copy)
        log.warning("message.retry_scheduled", retries=delivery.retries + 1, delay_ms=ms, reason=outcome.reason)

    async def _dead_letter(self, headers: Mapping[str, Any] | None, delivery: Delivery, reason: str) -> None:
        dead = self._topology.dead if self._topology is not None else None
        await self._publish(dead, delivery.routing_key, dead_copy(headers, delivery, reason))
        log.error("message.dead_lettered", reason=reason, retries=delivery.retries)

    async def dead_letters(self, limit: int, *, peek: bool = False) -> list[tuple[Delivery, str]]:
        """Up to `limit` messages from `<prefix>.dead`, oldest first, with reasons: taken (get + ack), or
        with `peek` looked at and left in the queue in their order (`campaign-guard replay --dry-run`)."""
        if self._topology is None or self._connection is None:
            raise BrokerUnavailable(f"RabbitMQ at {self.where} is not connected")
        try:
            if peek:
                return (await peek_queue(self._connection, self.names.dead_queue, wait=self._timeout))[:limit]
            return await get_messages(self._topology.dead_queue, limit, wait=self._timeout)
        except LINK_ERRORS as exc:
            raise BrokerUnavailable(f"cannot read dead letters at {self.where} ({type(exc).__name__})") from None


def _tag(raw: DeliveredMessage) -> int:
    return cast(int, cast(Basic.Deliver, raw.delivery).delivery_tag)    # set on every Deliver
