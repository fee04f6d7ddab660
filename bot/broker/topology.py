"""RabbitMQ names and topology: events exchange → quorum work queue, TTL retry tiers, dead-letter queue.

```
publish ─▶ <prefix>.events (topic) ──#──▶ <prefix>.work (quorum, x-delivery-limit, DLX → <prefix>.dead)
                                              ▲                    │ RETRY: copy to a tier, then ack
     "" (default exchange), routing key work  │                    ▼
                                    <prefix>.retry.<ms> (quorum, x-message-ttl = ms, DLX → work)
DEAD / exhausted / handler crash / delivery limit ─▶ <prefix>.dead (fanout) ─▶ <prefix>.dead (quorum)
```

Per-message expiry only happens at the head of a queue, so each delay gets its own queue (a tier).
A dead-lettered message loses its routing key on the way back from a retry tier, so the original
one travels in the `x-cg-routing-key` header. Not responsible for: publishing or consuming.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

__all__ = [
    "HEADER_REASON",
    "HEADER_RETRIES",
    "HEADER_RETRY_REASON",
    "HEADER_ROUTING_KEY",
    "Names",
    "Topology",
    "declare_topology",
    "tier_ms",
]

#: How many times the message went through the retry path (absent = 0).
HEADER_RETRIES: Final = "x-cg-retries"
#: The routing key the message was first published with.
HEADER_ROUTING_KEY: Final = "x-cg-routing-key"
#: Why the message was dead-lettered by us (RabbitMQ's own reason is in `x-death`).
HEADER_REASON: Final = "x-cg-reason"
#: Why the handler asked for the last retry (diagnostics only).
HEADER_RETRY_REASON: Final = "x-cg-retry-reason"

# Quorum queues only honour at-least-once dead-lettering with reject-publish overflow; without a
# length limit reject-publish never rejects anything. A crash loop or an expiring retry copy is then
# removed from its source queue only once the dead-letter target has it.
_SAFE_DEAD_LETTERING: Final = {"x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once"}
_DECLARE_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class Names:
    """Every exchange and queue name derived from one prefix (tests use `test.<uuid8>`)."""

    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def work(self) -> str:
        return f"{self.prefix}.work"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead"

    def retry(self, ms: int) -> str:
        return f"{self.prefix}.retry.{ms}"

    def all_queues(self, retry_delays: Iterable[float]) -> list[str]:
        return [self.work, self.dead_queue, *(self.retry(ms) for ms in tier_ms(retry_delays))]

    def all_exchanges(self) -> list[str]:
        return [self.events, self.dead_exchange]


@dataclass(frozen=True, slots=True)
class Topology:
    """The declared objects, bound to the channel they were declared on."""

    events: AbstractExchange
    dead: AbstractExchange
    work: AbstractQueue
    dead_queue: AbstractQueue
    #: Retry tiers by TTL in milliseconds, ascending.
    retry: dict[int, AbstractQueue]


def tier_ms(retry_delays: Iterable[float]) -> list[int]:
    """Distinct retry tiers in milliseconds, ascending (delays in seconds; duplicates collapse)."""
    return sorted({max(0, round(delay * 1000)) for delay in retry_delays})


def work_arguments(names: Names, delivery_limit: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        # RabbitMQ 3.10 has no default limit: without it a message that kills the worker loops forever.
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": names.dead_exchange,
        **_SAFE_DEAD_LETTERING,
    }


def retry_arguments(names: Names, ms: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": ms,
        "x-dead-letter-exchange": "",  # the default exchange routes by queue name
        "x-dead-letter-routing-key": names.work,
        **_SAFE_DEAD_LETTERING,
    }


async def declare_topology(
    channel: AbstractChannel, names: Names, *, delivery_limit: int, retry_delays: Sequence[float]
) -> Topology:
    """Declare (idempotently) everything the bot publishes to or consumes from.

    Re-declaring with the same arguments is a no-op; different arguments for an existing queue make
    RabbitMQ close the channel with PRECONDITION_FAILED (a config change needs a new prefix).
    """
    if delivery_limit < 1:
        raise ValueError("delivery_limit must be at least 1")
    t = _DECLARE_TIMEOUT
    dead = await channel.declare_exchange(names.dead_exchange, ExchangeType.FANOUT, durable=True, timeout=t)
    dead_queue = await channel.declare_queue(
        names.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}, timeout=t
    )
    await dead_queue.bind(dead, routing_key="", timeout=t)

    events = await channel.declare_exchange(names.events, ExchangeType.TOPIC, durable=True, timeout=t)
    work = await channel.declare_queue(
        names.work, durable=True, arguments=work_arguments(names, delivery_limit), timeout=t
    )
    await work.bind(events, routing_key="#", timeout=t)

    retry = {}
    for ms in tier_ms(retry_delays):
        retry[ms] = await channel.declare_queue(
            names.retry(ms), durable=True, arguments=retry_arguments(names, ms), timeout=t
        )
    return Topology(events=events, dead=dead, work=work, dead_queue=dead_queue, retry=retry)
