"""The broker interface shared by RabbitMQ (`amqp://`) and the embedded in-process broker (`memory://`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = ["BatchHandler", "Broker", "Delivery", "Handler", "Outcome", "Verdict"]


class Verdict(StrEnum):
    ACK = "ack"            # done (effect and record stored)
    RETRY = "retry"        # transient failure: redeliver later through the delay path
    DEAD = "dead"          # poison: park in the dead-letter queue with the reason


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the handler decided for one delivery. `reason` is kept on the dead-lettered message."""

    verdict: Verdict
    reason: str = ""
    #: For RETRY: the minimum delay the handler asks for (e.g. a vendor's Retry-After), seconds.
    delay: float | None = None

    @classmethod
    def ack(cls) -> Outcome:
        return cls(Verdict.ACK)

    @classmethod
    def retry(cls, reason: str, delay: float | None = None) -> Outcome:
        return cls(Verdict.RETRY, reason, delay)

    @classmethod
    def dead(cls, reason: str) -> Outcome:
        return cls(Verdict.DEAD, reason)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message handed to the handler."""

    body: bytes
    message_id: str | None
    routing_key: str
    #: How many times this message went through the retry path before (0 on first delivery).
    retries: int
    #: True when the broker says this is a redelivery (e.g. after a worker crash).
    redelivered: bool


Handler = Callable[[Delivery], Awaitable[Outcome]]
#: Deliveries in delivery order → one outcome each, in the same order.
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Sequence[Outcome]]]


class Broker(Protocol):
    """Publish with confirmation; consume with an outcome per message.

    - `publish` returns only once the broker has the message (publisher confirm, mandatory,
      persistent, `message_id` set); otherwise it raises `bot.errors.BrokerUnavailable`.
    - `consume` subscribes and returns; from then on it runs `handler` for each message in background
      tasks, at most `prefetch` in flight, and applies the returned Outcome: ACK acks; RETRY republishes
      to the delay path (retry n waits `retry_delays[n]`, or the smallest tier ≥ `Outcome.delay`) or,
      once every entry of `retry_delays` is used, dead-letters with "retries exhausted: <reason>", then
      acks; DEAD publishes to the dead-letter queue with the reason then acks. A handler that raises is
      a bug: the message is dead-lettered with "<ExceptionType>: <message>".
    - `stop_consuming` stops taking new messages and waits up to `drain` seconds for in-flight ones;
      handlers still running then are cancelled and their messages requeued (redelivered later).
    - `ready` is true while the broker is connected (the `/readyz` probe).
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> bool: ...

    async def publish(self, body: bytes, *, message_id: str, routing_key: str) -> None: ...

    async def consume(self, handler: Handler) -> None: ...

    async def consume_batches(self, handler: BatchHandler, *, size: int) -> None:
        """As `consume`, with the deliveries at hand handed over together, up to `size` at a time and in
        delivery order, and settled together once `handler` returned their outcomes (same rules as one by
        one; on RabbitMQ, one multiple-ack for the batch). Several batches may be in flight at once, within
        `prefetch` deliveries."""
        ...

    async def stop_consuming(self, drain: float) -> None: ...

    async def dead_letters(self, limit: int, *, peek: bool = False) -> list[tuple[Delivery, str]]:
        """Take up to `limit` dead-lettered messages, oldest first, with their reasons (`campaign-guard
        replay`). `peek=True` leaves them in the dead-letter queue, in their order (`replay --dry-run`)."""
        ...
