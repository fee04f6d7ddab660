"""Poison messages injected straight into the real RabbitMQ work queue (bypassing the web intake).

Invalid JSON, JSON of the wrong shape, an unknown event `version`, an unknown vendor, a huge body, a
lone surrogate, non-UTF-8 bytes, missing message ids and garbage retry headers: each is dead-lettered
with its reason (read back with `broker.dead_letters()`), none reaches a vendor, and the worker keeps
going: a valid event published after them is processed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from bot.events import Event
from bot.executor import Executor
from bot.ruleset import load_rules
from bot.state.sqlite import SqliteStateStore
from bot.worker import Worker
from tests.conftest import REPO, FakeVendor
from tests.integration.conftest import Brokers

pytestmark = pytest.mark.integration

WAIT = 20.0
GOOD: dict[str, Any] = {"id": "ok-1", "type": "email.sent", "source": "smartlead",
                        "occurred_at": "2026-11-23T09:00:00Z", "campaign": "smartlead:42", "data": {}}


def _event(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


#: message id → (body, extra AMQP headers, words the dead-letter reason must contain)
POISON: dict[str, tuple[bytes, dict[str, Any], tuple[str, ...]]] = {
    "p-invalid-json": (b"{not json", {}, ("invalid event", "(body)", "json")),
    "p-truncated": (_event()[:-5], {}, ("invalid event",)),
    "p-wrong-shape-list": (b'["email.sent", 42]', {}, ("invalid event",)),
    "p-wrong-shape-object": (b'{"hello": "world"}', {}, ("invalid event", "id")),
    "p-wrong-types": (_event(id=7, occurred_at="yesterday", data=[1]), {}, ("invalid event",)),
    "p-version-2": (_event(id="v2", version=2), {}, ("invalid event", "version")),
    "p-unknown-vendor": (_event(id="mc", campaign="mailchimp:cam_1"), {}, ("invalid event", "campaign", "mailchimp")),
    "p-unknown-source": (_event(id="src", source="mailchimp"), {}, ("invalid event", "mailchimp")),
    "p-extra-field": (_event(id="xf", admin=True), {}, ("invalid event", "admin")),
    "p-huge": (_event(id="huge", data={"blob": "x" * (5 * 1024 * 1024)}), {}, ("message too large",)),
    "p-huge-garbage": (b"[" * (6 * 1024 * 1024), {}, ("message too large",)),
    "p-lone-surrogate": (_event(id="sur", data={"x": "\ud800"}), {}, ("invalid event",)),
    "p-not-utf8": (b'{"id": "\xff\xfe", "type": "email.sent"}', {}, ("invalid event",)),
    "p-nul": (b"\x00" * 64, {}, ("invalid event",)),
    "p-empty": (b"", {}, ("invalid event",)),
    "p-garbage-headers": (b"{not json either",
                          {"x-cg-retries": "many", "x-cg-routing-key": 12345, "x-death": "nonsense"},
                          ("invalid event",)),
}


async def _inject(raw: AbstractChannel, queue: str) -> None:
    """Publish each poison message to the work queue through the default exchange, as any client could."""
    for message_id, (body, headers, _) in POISON.items():
        await raw.default_exchange.publish(
            aio_pika.Message(body, message_id=message_id, headers=headers,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue)
    await raw.default_exchange.publish(aio_pika.Message(b"{no id at all"), routing_key=queue)


async def test_poison_is_dead_lettered_with_reasons_and_the_worker_keeps_going(
    raw: AbstractChannel, brokers: Brokers, tmp_path: Path,
) -> None:
    broker = brokers()
    await broker.start()
    vendor = FakeVendor()
    async with SqliteStateStore.open(tmp_path / "state.db") as store:
        worker = Worker(store=store, rules=load_rules(REPO / "rules"), executor=Executor(store, {"smartlead": vendor}))
        await broker.consume(worker.handle)
        await _inject(raw, brokers.names.work)
        good = Event.model_validate_json(_event())
        await broker.publish(good.model_dump_json().encode(), message_id=good.id, routing_key=good.routing_key)
        async with asyncio.timeout(WAIT):
            await worker.wait_handled(1, outcome="ack")
            await worker.wait_handled(len(POISON) + 1, outcome="dead")
        await broker.stop_consuming(WAIT)

    dead = {delivery.message_id: (delivery, reason) for delivery, reason in await broker.dead_letters(100)}
    [(anonymous, _)] = [dead.pop(key) for key in set(dead) - set(POISON)]   # aio-pika set an id of its own
    assert anonymous.body == b"{no id at all"
    assert set(dead) == set(POISON), sorted(map(str, dead))
    for message_id, (body, _, words) in POISON.items():
        delivery, reason = dead[message_id]
        assert delivery.body == body, message_id                      # parked untouched, replayable
        for word in words:
            assert word.lower() in reason.lower(), f"{message_id}: {reason!r} lacks {word!r}"
        assert len(reason) <= 500
    assert worker.handled["ack"] == 1
    assert vendor.writes() == []                                       # nothing poison reached a vendor
    assert await broker.dead_letters(10) == []                         # taken: the dead-letter queue is empty
