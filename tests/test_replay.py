"""`campaign-guard replay` on the memory broker: dry run leaves dead letters alone, replay republishes them."""

from __future__ import annotations

import asyncio
import functools
import io
import json

import pytest

from bot import cli
from bot.broker import MemoryBroker
from bot.broker.base import Delivery, Outcome
from bot.errors import BrokerUnavailable
from bot.log import configure_logging
from bot.replay import replay_dead_letters


async def _dead_lettered(*ids: str) -> MemoryBroker:
    """A started memory broker holding one dead letter per id, and no consumer."""
    broker = MemoryBroker()
    await broker.start()

    async def reject(delivery: Delivery) -> Outcome:
        return Outcome.dead(f"invalid event: {delivery.message_id}")

    await broker.consume(reject)
    for message_id in ids:
        await broker.publish(b"{}", message_id=message_id, routing_key=f"smartlead.{message_id}")
    async with asyncio.timeout(2):
        await broker.join()
    await broker.stop_consuming(0)
    return broker


async def test_dry_run_lists_and_leaves_everything_in_place() -> None:
    broker = await _dead_lettered("a", "b", "c")
    out = io.StringIO()
    assert await replay_dead_letters(broker, limit=2, dry_run=True, out=out) == 2
    assert out.getvalue().splitlines() == [
        "would replay   a  smartlead.a  reason: invalid event: a",
        "would replay   b  smartlead.b  reason: invalid event: b",
        "2 dead letter(s) would be replayed (dry run: all left in the dead-letter queue)",
    ]
    assert [d.message_id for d, _ in broker.dead] == ["a", "b", "c"] and broker.ready_count == 0
    await broker.close()


async def test_replay_republishes_with_the_original_id_and_routing_key() -> None:
    broker = await _dead_lettered("a", "b")
    out = io.StringIO()
    assert await replay_dead_letters(broker, limit=10, dry_run=False, out=out) == 2
    assert out.getvalue().splitlines()[-1] == "2 dead letter(s) replayed to the work queue"
    assert broker.dead == () and broker.ready_count == 2
    seen: list[Delivery] = []

    async def record(delivery: Delivery) -> Outcome:
        seen.append(delivery)
        return Outcome.ack()

    await broker.consume(record)
    async with asyncio.timeout(2):
        await broker.join()
    assert [(d.message_id, d.routing_key, d.retries) for d in seen] == [("a", "smartlead.a", 0), ("b", "smartlead.b", 0)]
    await broker.close()


class _FailingBroker:
    """Hands out two dead letters; the second publish fails."""

    def __init__(self) -> None:
        self.published: list[str] = []

    async def dead_letters(self, limit: int, *, peek: bool = False) -> list[tuple[Delivery, str]]:
        return [(Delivery(b'{"n": 1}', "one", "k.one", 0, False), "why one"),
                (Delivery(b'{"n": 2}', None, "k.two", 0, False), "why two")]

    async def publish(self, body: bytes, *, message_id: str, routing_key: str) -> None:
        if self.published:
            raise BrokerUnavailable("RabbitMQ at h:5672/ did not confirm the message")
        self.published.append(message_id)


async def test_a_failed_publish_writes_what_was_taken_to_stderr() -> None:
    broker, out, err = _FailingBroker(), io.StringIO(), io.StringIO()
    with pytest.raises(BrokerUnavailable, match="replayed 1 of 2; the other 1 were written to stderr"):
        await replay_dead_letters(broker, limit=10, dry_run=False, out=out, err=err)  # type: ignore[arg-type]
    [saved] = [json.loads(line) for line in err.getvalue().splitlines()]
    assert saved["body"] == '{"n": 2}' and saved["reason"] == "why two" and saved["routing_key"] == "k.two"
    assert saved["message_id"].startswith("replay-")            # it had none: a stable one from the body


def test_cli_replay_needs_rabbitmq(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "configure_logging", functools.partial(configure_logging, cache=False))
    monkeypatch.setenv("BOT_BROKER_URL", "memory://")
    assert cli.main(["replay", "--dry-run"]) == 2
    assert "replay needs the RabbitMQ that holds the dead letters: set BOT_BROKER_URL=amqp://" in \
        capsys.readouterr().err
