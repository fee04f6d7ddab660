"""Retry and dead-letter policy shared by the RabbitMQ and in-process brokers (pure, no I/O), and how both
turn a batch handler's answer into outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import structlog

from bot.broker.base import BatchHandler, Delivery, Outcome
from bot.log import scrub

__all__ = ["MAX_REASON", "choose_delay", "exception_reason", "exhausted_reason", "outcomes_of", "short_reason"]

log = structlog.get_logger("bot.broker")

#: Longest reason kept on a dead-lettered message (AMQP header values should stay small).
MAX_REASON: Final = 500


def short_reason(reason: str) -> str:
    """A reason safe to store and log: credentials scrubbed, one bounded line."""
    text = " ".join(scrub(reason).split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def exception_reason(exc: BaseException) -> str:
    """`TypeName: message` for a handler that raised; no repr, no traceback."""
    message = str(exc)
    return short_reason(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def exhausted_reason(reason: str) -> str:
    return short_reason(f"retries exhausted: {reason}")


def choose_delay(retries: int, requested: float | None, delays: Sequence[float]) -> float | None:
    """The delay tier for the next retry, or None when `retries` already used every tier.

    Retry `n` (0-based) waits `delays[n]`, or longer when the handler asks for more (a vendor's
    Retry-After): then the smallest tier at least that long, or the longest tier there is.
    """
    if retries < 0 or retries >= len(delays):
        return None
    wanted = max(requested or 0.0, delays[retries])
    tiers = sorted(set(delays))
    return next((tier for tier in tiers if tier >= wanted), tiers[-1])


async def outcomes_of(handler: BatchHandler, deliveries: Sequence[Delivery]) -> list[Outcome]:
    """The batch handler's outcome for each delivery; a handler that raises (or miscounts) is a bug: every
    delivery of the batch is then dead-lettered with the reason, and the error logged."""
    try:
        outcomes = list(await handler(deliveries))
        if len(outcomes) != len(deliveries):
            raise RuntimeError(f"batch handler gave {len(outcomes)} outcomes for {len(deliveries)} deliveries")
    except Exception as exc:
        log.exception("message.handler_failed", batch=len(deliveries))
        return [Outcome.dead(exception_reason(exc))] * len(deliveries)
    return outcomes
