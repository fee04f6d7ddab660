"""AMQP helpers: messages ⇄ Delivery, retry and dead copies, x-death reasons, reading the dead-letter queue,
settling, safe URL text."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Mapping
from typing import Any, Final, cast

import structlog
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from yarl import URL

from bot.broker.base import Delivery
from bot.broker.policy import short_reason
from bot.broker.topology import HEADER_REASON, HEADER_RETRIES, HEADER_RETRY_REASON, HEADER_ROUTING_KEY

__all__ = [
    "LINK_ERRORS",
    "dead_copy",
    "dead_reason",
    "get_messages",
    "is_ack",
    "new_message",
    "peek_queue",
    "raw_delivery",
    "retry_copy",
    "safe_where",
    "settle_quietly",
    "to_delivery",
]

log = structlog.get_logger("bot.broker.amqp")

CONTENT_TYPE: Final = "application/json"
#: "The broker or the link to it failed" (aio-pika's CONNECTION_EXCEPTIONS adds RuntimeError: too broad).
LINK_ERRORS: Final = (AMQPError, ChannelInvalidStateError, OSError)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _count(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def new_message(body: bytes, *, message_id: str | None, headers: Mapping[str, Any] | None = None) -> Message:
    """A persistent JSON message with its id, as every publish and republish sends it."""
    return Message(
        body,
        message_id=message_id,
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.PERSISTENT,
        headers=dict(headers or {}),
    )


def to_delivery(message: AbstractIncomingMessage) -> Delivery:
    """What the handler sees: the original routing key even after a trip through a retry tier."""
    return _delivery(message.body, message.headers, message.message_id, message.routing_key, message.redelivered)


def raw_delivery(message: DeliveredMessage) -> Delivery:
    """`to_delivery` for a message taken straight from aiormq (the worker's consume path)."""
    properties, deliver = message.header.properties, cast(Basic.Deliver, message.delivery)
    return _delivery(message.body, properties.headers, properties.message_id, deliver.routing_key,
                     deliver.redelivered)


def _delivery(body: bytes, headers: Mapping[str, Any] | None, message_id: str | None, routing_key: str | None,
              redelivered: bool | None) -> Delivery:
    headers = headers or {}
    return Delivery(
        body=body,
        message_id=message_id,
        routing_key=_text(headers.get(HEADER_ROUTING_KEY)) or routing_key or "",
        retries=_count(headers.get(HEADER_RETRIES)),
        redelivered=bool(redelivered),
    )


def _copy(original: Mapping[str, Any] | None, delivery: Delivery, **headers: Any) -> Message:
    """A copy for the retry or dead path: the delivery's body and id, the `original` message's headers
    that are ours (`x-cg-*`) or the sender's, plus `headers`.

    RabbitMQ's own headers (`x-death`, `x-delivery-count`, ...) stay behind: the copy is a new message.
    """
    kept = {k: v for k, v in (original or {}).items() if k.startswith("x-cg-") or not k.startswith("x-")}
    kept[HEADER_ROUTING_KEY] = delivery.routing_key
    kept.update(headers)
    return new_message(delivery.body, message_id=delivery.message_id, headers=kept)


def retry_copy(original: Mapping[str, Any] | None, delivery: Delivery, reason: str) -> Message:
    return _copy(original, delivery, **{HEADER_RETRIES: delivery.retries + 1, HEADER_RETRY_REASON: reason})


def dead_copy(original: Mapping[str, Any] | None, delivery: Delivery, reason: str) -> Message:
    return _copy(original, delivery, **{HEADER_REASON: reason})


def dead_reason(headers: Mapping[str, Any] | None) -> str:
    """Why a message is in the dead-letter queue: ours (`x-cg-reason`) or RabbitMQ's latest x-death."""
    headers = headers or {}
    ours = _text(headers.get(HEADER_REASON))
    if ours:
        return ours
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], Mapping):
        latest = deaths[0]  # RabbitMQ keeps the most recent death first
        reason = _text(latest.get("reason")) or "unknown"
        queue = _text(latest.get("queue")) or "?"
        return short_reason(f"{reason} (dead-lettered by RabbitMQ from {queue})")
    return "unknown (no reason recorded)"


async def get_messages(
    queue: AbstractQueue, limit: int, *, wait: float, ack: bool = True
) -> list[tuple[Delivery, str]]:
    """Up to `limit` messages of a dead-letter queue, oldest first, with their reasons; acked once read
    unless `ack=False` (then closing the channel hands them all back)."""
    taken: list[tuple[Delivery, str]] = []
    while len(taken) < limit:
        async with asyncio.timeout(wait):  # a robust channel waits while RabbitMQ is down
            message = await queue.get(no_ack=False, fail=False, timeout=wait)
        if message is None:
            break
        taken.append((to_delivery(message), dead_reason(message.headers)))
        if ack:
            await message.ack()
    return taken


async def peek_queue(connection: AbstractConnection, name: str, *, wait: float) -> list[tuple[Delivery, str]]:
    """Every message of queue `name`, oldest first, left in the queue in its order.

    Read unacked on a channel of its own, then all handed back at once by closing that channel (a
    return, not a nack: RabbitMQ 4 counts nacks against a quorum queue's delivery limit). The whole
    queue is read because RabbitMQ puts returned messages behind those it never delivered: handing back
    only the first few would rotate the queue, and a later `replay` would take others than were shown.
    A message dead-lettered while this runs lands ahead of the returned ones. Dead-letter queues are
    small by nature; if the link drops midway RabbitMQ requeues everything: nothing is lost.
    """
    async with asyncio.timeout(wait):
        channel = await connection.channel(publisher_confirms=False)
    try:
        queue = await channel.declare_queue(name, passive=True, timeout=wait)
        return await get_messages(queue, sys.maxsize, wait=wait, ack=False)
    finally:
        await settle_quietly(channel.close())


def is_ack(confirmation: object) -> bool:
    return isinstance(confirmation, Basic.Ack)


async def settle_quietly(settling: Awaitable[Any]) -> None:
    """ack/nack; on a dead channel RabbitMQ has already requeued the message, so nothing is lost."""
    try:
        await settling
    except LINK_ERRORS as exc:
        log.warning("message.settle_failed", error=type(exc).__name__)


def safe_where(url: str) -> str:
    """host:port/vhost of an AMQP URL: safe to show, it never holds the user or password."""
    parsed = URL(url)
    port = parsed.port or (5671 if parsed.scheme == "amqps" else 5672)
    return f"{parsed.host}:{port}{parsed.path or '/'}"
