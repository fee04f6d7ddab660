"""Message broker: the `Broker` protocol, RabbitMQ (`amqp://`) and in-process (`memory://`) brokers."""

from __future__ import annotations

from bot.broker.amqp import AmqpBroker
from bot.broker.base import Broker, Delivery, Handler, Outcome, Verdict
from bot.broker.memory import MemoryBroker
from bot.config import Settings

__all__ = ["AmqpBroker", "Broker", "Delivery", "Handler", "MemoryBroker", "Outcome", "Verdict", "make_broker"]


def make_broker(settings: Settings) -> Broker:
    """The broker named by `BOT_BROKER_URL`: `memory://` or `amqp(s)://user:pass@host:port/vhost`."""
    url = settings.broker_url.get_secret_value()
    if url.startswith("memory://"):
        return MemoryBroker(
            prefetch=settings.prefetch, delivery_limit=settings.max_deliveries, retry_delays=settings.retry_delays
        )
    if url.startswith(("amqp://", "amqps://")):
        return AmqpBroker(
            url,
            prefix=settings.broker_prefix,
            prefetch=settings.prefetch,
            delivery_limit=settings.max_deliveries,
            retry_delays=settings.retry_delays,
        )
    raise ValueError("BOT_BROKER_URL must start with memory://, amqp:// or amqps://")
