"""In-process broker with the RabbitMQ broker's semantics, for `campaign-guard run` on a laptop and tests.

Messages live in this process only: what is queued, delayed or dead is lost when it exits.
Retries wait on `loop.call_later` timers (cancelled by `close()`); a handler cancelled by
`stop_consuming` puts its message back at the head of the queue, marked redelivered, and a
message returned more than `delivery_limit` times is dead-lettered (RabbitMQ's `delivery_limit`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog

from bot.broker.base import BatchHandler, Delivery, Handler, Outcome, Verdict
from bot.broker.policy import choose_delay, exception_reason, exhausted_reason, outcomes_of, short_reason
from bot.errors import BrokerUnavailable

__all__ = ["MemoryBroker"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Message:
    body: bytes
    message_id: str
    routing_key: str
    retries: int = 0
    #: Times the message went back to the queue unsettled (RabbitMQ's x-delivery-count).
    returns: int = 0

    def delivery(self) -> Delivery:
        return Delivery(self.body, self.message_id, self.routing_key, self.retries, self.returns > 0)


class MemoryBroker:
    """`bot.broker.base.Broker` inside the event loop: same outcomes, delays and dead letters as AMQP."""

    def __init__(
        self,
        *,
        prefetch: int = 16,
        delivery_limit: int = 10,
        retry_delays: Sequence[float] = (1.0, 5.0, 30.0, 120.0, 600.0),
    ) -> None:
        if prefetch < 1 or delivery_limit < 1:
            raise ValueError("prefetch and delivery_limit must be ≥ 1")
        self._prefetch = prefetch
        self._delivery_limit = delivery_limit
        self._delays = tuple(retry_delays)
        self._queue: deque[_Message] = deque()
        self._dead: deque[tuple[Delivery, str]] = deque()
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: dict[asyncio.Task[None], list[_Message]] = {}
        self._slots = asyncio.Semaphore(prefetch)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    # lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:
            raise BrokerUnavailable("the memory broker is closed")
        self._started = True

    async def close(self) -> None:
        """Stop consuming at once; pending retries are dropped (this broker keeps nothing across runs)."""
        await self.stop_consuming(0)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._closed = True
        self._update_idle()

    async def ready(self) -> bool:
        return self._started and not self._closed

    # publishing --------------------------------------------------------------------------------

    async def publish(self, body: bytes, *, message_id: str, routing_key: str) -> None:
        if not await self.ready():
            raise BrokerUnavailable("the memory broker is not started or already closed")
        self._enqueue(_Message(bytes(body), message_id, routing_key))

    def _enqueue(self, message: _Message, *, front: bool = False) -> None:
        if front:
            self._queue.appendleft(message)
        else:
            self._queue.append(message)
        self._wakeup.set()
        self._update_idle()

    # consuming ---------------------------------------------------------------------------------

    async def consume(self, handler: Handler) -> None:
        """Start dispatching to `handler` (at most `prefetch` at a time) and return."""
        await self._start(_one_by_one(handler), 1)

    async def consume_batches(self, handler: BatchHandler, *, size: int) -> None:
        """Start dispatching the queued messages at hand to `handler`, up to `size` at a time (at most
        `prefetch` messages in flight in all), and return."""
        if size < 1:
            raise ValueError("a batch holds at least one delivery")
        await self._start(handler, size)

    async def _start(self, handler: BatchHandler, size: int) -> None:
        if not await self.ready():
            raise RuntimeError("MemoryBroker.consume() before start() or after close()")
        if self._dispatcher is not None:
            raise RuntimeError("MemoryBroker is already consuming")
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(handler, size))

    async def stop_consuming(self, drain: float) -> None:
        """Take no new messages; give in-flight handlers `drain` seconds, then cancel them (requeued)."""
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.cancel()  # takes effect at its next await: it hands out nothing more
        in_flight = set(self._tasks)
        done, pending = await asyncio.wait(in_flight, timeout=drain) if drain > 0 and in_flight else (set(), in_flight)
        for task in pending:
            task.cancel()
        stopped = [*pending, dispatcher] if dispatcher is not None else list(pending)
        await asyncio.gather(*stopped, return_exceptions=True)
        if in_flight:
            log.info("broker.drained", finished=len(done), cancelled=len(pending))

    async def _dispatch(self, handler: BatchHandler, size: int) -> None:
        while True:
            await self._slots.acquire()  # prefetch: a slot per message first, then the message
            try:
                while not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
            except asyncio.CancelledError:
                self._slots.release()
                raise
            batch = [self._queue.popleft()]
            while self._queue and len(batch) < size and not self._slots.locked():
                await self._slots.acquire()     # free: returns without suspending
                batch.append(self._queue.popleft())
            task = asyncio.get_running_loop().create_task(self._process(batch, handler))
            self._tasks[task] = batch
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        batch = self._tasks.pop(task)
        for _ in batch:
            self._slots.release()
        if task.cancelled():  # also when cancelled before the handler even started
            for message in reversed(batch):
                self._return(message)
        self._update_idle()

    async def _process(self, batch: list[_Message], handler: BatchHandler) -> None:
        deliveries = [message.delivery() for message in batch]
        outcomes = await outcomes_of(handler, deliveries)
        for message, delivery, outcome in zip(batch, deliveries, outcomes, strict=True):
            self._settle(message, delivery, outcome)

    def _return(self, message: _Message) -> None:
        """An unsettled message goes back to the head of the queue, as RabbitMQ requeues it."""
        returned = replace(message, returns=message.returns + 1)
        if returned.returns > self._delivery_limit:
            self._dead_letter(returned.delivery(), "delivery_limit (dead-lettered by the memory broker)")
        else:
            self._enqueue(returned, front=True)

    def _settle(self, message: _Message, delivery: Delivery, outcome: Outcome) -> None:
        if outcome.verdict is Verdict.DEAD:
            self._dead_letter(delivery, short_reason(outcome.reason or "dead"))
        elif outcome.verdict is Verdict.RETRY:
            delay = choose_delay(message.retries, outcome.delay, self._delays)
            if delay is None:
                self._dead_letter(delivery, exhausted_reason(outcome.reason or "retry"))
            else:
                self._schedule(_Message(message.body, message.message_id, message.routing_key, message.retries + 1), delay)
                log.warning(
                    "message.retry_scheduled",
                    retries=message.retries + 1,
                    delay_ms=round(delay * 1000),
                    reason=outcome.reason,
                )

    def _schedule(self, message: _Message, delay: float) -> None:
        def fire() -> None:
            self._timers.discard(timer)
            self._enqueue(message)

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(timer)
        self._update_idle()

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._dead.append((delivery, reason))
        log.error("message.dead_lettered", reason=reason, retries=delivery.retries)

    # dead letters and test helpers -------------------------------------------------------------

    async def dead_letters(self, limit: int, *, peek: bool = False) -> list[tuple[Delivery, str]]:
        """Take (or with `peek` only look at) up to `limit` dead letters, oldest first, with their reasons."""
        if peek:
            return list(self._dead)[:max(limit, 0)]
        return [self._dead.popleft() for _ in range(min(limit, len(self._dead)))]

    @property
    def dead(self) -> tuple[tuple[Delivery, str], ...]:
        """The dead letters without taking them."""
        return tuple(self._dead)

    @property
    def ready_count(self) -> int:
        """Messages waiting for a consumer (not in flight, not delayed)."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return sum(len(batch) for batch in self._tasks.values())

    @property
    def delayed(self) -> int:
        """Messages waiting for their retry delay."""
        return len(self._timers)

    async def join(self) -> None:
        """Wait until nothing is queued, in flight or waiting for a retry (needs a consumer).

        Wrap it in `asyncio.timeout()`: without a consumer it waits forever.
        """
        while not self._is_idle():
            self._idle.clear()
            await self._idle.wait()

    def _is_idle(self) -> bool:
        return not self._queue and not self._tasks and not self._timers

    def _update_idle(self) -> None:
        if self._is_idle():
            self._idle.set()


def _one_by_one(handler: Handler) -> BatchHandler:
    """A batch handler of one delivery at a time; a handler that raises is a bug: its message is parked."""
    async def run(deliveries: Sequence[Delivery]) -> list[Outcome]:
        (delivery,) = deliveries
        with structlog.contextvars.bound_contextvars(message_id=delivery.message_id, routing_key=delivery.routing_key):
            try:
                return [await handler(delivery)]
            except Exception as exc:
                log.exception("message.handler_failed", retries=delivery.retries)
                return [Outcome.dead(exception_reason(exc))]
    return run
