"""`campaign-guard replay`: put dead-lettered messages back on the work exchange once the cause is fixed.

Each message is republished with its original message_id and routing key, so the worker dedupes it as
usual (by event id) and it starts with a fresh retry budget. `--dry-run` only looks, and changes nothing
on the broker: it opens a plain connection (no topology is declared, no exchange or queue created; a
missing dead-letter queue is reported, not made), checks the dead-letter queue passively, reads its
messages unacked and hands them back in their order by closing its channel, so nothing leaves the
dead-letter queue, nothing is re-parked out of order, and a crash mid-way loses nothing.

Taking is `dead_letters()` (get + ack) then a confirmed publish per message. Should a publish fail, the
messages taken but not yet republished are written to stderr as JSON lines (body included) before the
command exits 2: they are never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Final, TextIO

import aio_pika
from aiormq.exceptions import ChannelNotFoundEntity

from bot.broker import make_broker
from bot.broker.amqp_messages import LINK_ERRORS, peek_queue, safe_where
from bot.broker.base import Broker, Delivery
from bot.broker.topology import Names
from bot.config import Settings
from bot.errors import BrokerUnavailable, ConfigError

__all__ = ["peek_dead_letters", "replay", "replay_dead_letters"]

_TIMEOUT: Final = 10.0


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
        _list(letters, out)
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


def _list(letters: list[tuple[Delivery, str]], out: TextIO) -> None:
    out.writelines(_line("would replay", delivery, reason) + "\n" for delivery, reason in letters)
    out.write(f"{len(letters)} dead letter(s) would be replayed (dry run: all left in the dead-letter queue)\n")


async def peek_dead_letters(url: str, prefix: str, *, limit: int,
                            wait: float = _TIMEOUT) -> list[tuple[Delivery, str]] | None:
    """Up to `limit` messages of `<prefix>.dead`, left in place, on a plain connection that declares nothing;
    None when that queue does not exist (never created here)."""
    where = safe_where(url)
    try:
        connection = await aio_pika.connect(url, timeout=wait, client_properties={
            "connection_name": f"campaign-guard replay --dry-run {prefix}"})
    except LINK_ERRORS as exc:
        raise BrokerUnavailable(f"cannot connect to RabbitMQ at {where} ({type(exc).__name__})") from None
    try:
        return (await peek_queue(connection, Names(prefix).dead_queue, wait=wait))[:limit]
    except ChannelNotFoundEntity:
        return None
    except LINK_ERRORS as exc:
        raise BrokerUnavailable(f"cannot read dead letters at {where} ({type(exc).__name__})") from None
    finally:
        await connection.close()


async def replay(settings: Settings, *, limit: int, dry_run: bool) -> int:
    """The `replay` command: needs RabbitMQ (the embedded memory:// broker keeps nothing between runs)."""
    if settings.uses_memory_broker:
        raise ConfigError("replay needs the RabbitMQ that holds the dead letters: set BOT_BROKER_URL=amqp://... "
                          "(the embedded memory:// broker keeps nothing once `run` exits)")
    if limit < 1:
        raise ConfigError("--limit must be at least 1")
    if dry_run:                 # a look only: declares nothing, creates nothing, takes nothing
        letters = await peek_dead_letters(settings.broker_url.get_secret_value(), settings.broker_prefix, limit=limit)
        if letters is None:
            dead = Names(settings.broker_prefix).dead_queue
            print(f"no dead-letter queue {dead} at {safe_where(settings.broker_url.get_secret_value())} "
                  "(BOT_BROKER_PREFIX): nothing to replay")
        else:
            _list(letters, sys.stdout)
        return 0
    broker = make_broker(settings)
    await broker.start()
    try:
        await replay_dead_letters(broker, limit=limit, dry_run=dry_run)
    finally:
        await broker.close()
    return 0
