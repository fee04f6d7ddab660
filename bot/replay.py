"""`campaign-guard replay`: put dead-lettered messages back on the work exchange once the cause is fixed.

Each message is republished with its original message_id and routing key, so the worker dedupes it as
usual (by event id) and it starts with a fresh retry budget. `--dry-run` only looks: the broker's
`dead_letters(peek=True)` reads the messages unacked and hands them back in their order, so nothing
leaves the dead-letter queue, nothing is re-parked out of order, and a crash mid-way loses nothing.

Taking is `dead_letters()` (get + ack) then a confirmed publish per message. Should a publish fail, the
messages taken but not yet republished are written to stderr as JSON lines (body included) before the
command exits 2: they are never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import TextIO

from bot.broker import make_broker
from bot.broker.base import Broker, Delivery
from bot.config import Settings
from bot.errors import BrokerUnavailable, ConfigError

__all__ = ["replay", "replay_dead_letters"]


def _message_id(delivery: Delivery) -> str:
    """The original id; a message published without one gets a stable id derived from its body."""
    return delivery.message_id or f"replay-{hashlib.sha256(delivery.body).hexdigest()[:16]}"


def _line(verb: str, delivery: Delivery, reason: str) -> str:
    return f"{verb:<14} {_message_id(delivery)}  {delivery.routing_key or '-'}  reason: {reason}"


def _save(unpublished: list[tuple[Delivery, str]], err: TextIO) -> None:
    err.writelines(json.dumps({"message_id": _message_id(delivery), "routing_key": delivery.routing_key,
                               "reason": reason, "body": delivery.body.decode("utf-8", "replace")}) + "\n"
                   for delivery, reason in unpublished)


async def replay_dead_letters(
    broker: Broker, *, limit: int, dry_run: bool, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Replay (or with `dry_run` list) up to `limit` dead letters; returns how many. Broker already started."""
    out, err = out or sys.stdout, err or sys.stderr
    letters = await broker.dead_letters(limit, peek=dry_run)
    if dry_run:
        for delivery, reason in letters:
            out.write(_line("would replay", delivery, reason) + "\n")
        out.write(f"{len(letters)} dead letter(s) would be replayed (dry run: all left in the dead-letter queue)\n")
        return len(letters)
    for done, (delivery, reason) in enumerate(letters):
        try:
            await broker.publish(delivery.body, message_id=_message_id(delivery), routing_key=delivery.routing_key)
        except BrokerUnavailable as exc:
            _save(letters[done:], err)
            raise BrokerUnavailable(f"{exc}: replayed {done} of {len(letters)}; the other "
                                    f"{len(letters) - done} were written to stderr as JSON lines") from None
        out.write(_line("replayed", delivery, reason) + "\n")
    out.write(f"{len(letters)} dead letter(s) replayed to the work queue\n" if letters else "no dead letters\n")
    return len(letters)


async def replay(settings: Settings, *, limit: int, dry_run: bool) -> int:
    """The `replay` command: needs RabbitMQ (the embedded memory:// broker keeps nothing between runs)."""
    if settings.uses_memory_broker:
        raise ConfigError("replay needs the RabbitMQ that holds the dead letters: set BOT_BROKER_URL=amqp://... "
                          "(the embedded memory:// broker keeps nothing once `run` exits)")
    if limit < 1:
        raise ConfigError("--limit must be at least 1")
    broker = make_broker(settings)
    await broker.start()
    try:
        await replay_dead_letters(broker, limit=limit, dry_run=dry_run)
    finally:
        await broker.close()
    return 0
