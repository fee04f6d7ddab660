"""SlackNotifier + SlackDeliverer against a local fake Slack: enqueue only, deliver, retry, record, digest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.notify import Notice
from bot.slack.delivery import SlackDeliverer, SlackNotifier
from bot.state.outbox import Outbox

TOKEN = "xoxb-test-token-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now



_made: list[SlackDeliverer] = []


@pytest.fixture(autouse=True)
async def _stop_deliverers() -> AsyncIterator[None]:
    yield
    while _made:
        await _made.pop().stop()


def _deliverer(outbox: Outbox, api_url: str, clock: Any = None, **overrides: Any) -> SlackDeliverer:
    options: dict[str, Any] = {"token": TOKEN, "api_url": api_url, "retry_delays": (0.01, 0.02),
                               "max_attempts": 5}
    if clock is not None:
        options["clock"] = clock
    options.update(overrides)
    deliverer = SlackDeliverer(outbox, **options)
    _made.append(deliverer)
    return deliverer


def _notice(kind: str = "paused", campaign: str = "smartlead:7") -> Notice:
    return Notice(kind, campaign, f"{kind} {campaign}", datetime(2026, 11, 23, 9, 0, tzinfo=UTC), "bounce-guard",
                  {"numerator": 4, "denominator": 100})


async def test_notify_only_enqueues_and_the_deliverer_posts_with_the_bot_token(outbox, api_url, slack) -> None:
    notifier = SlackNotifier(outbox, channel="C-ALERTS", digest_seconds=60)
    await notifier.notify(_notice())
    [queued] = await outbox.items()
    assert queued.status == "queued" and slack.received == []           # nothing sent by notify() itself
    deliverer = _deliverer(outbox, api_url)
    await deliverer.start()
    try:
        async with asyncio.timeout(5):
            await slack.wait_for(lambda s: len(s.api_posts()) == 1)
    finally:
        await deliverer.stop()
    [post] = slack.api_posts()
    assert post.path == "chat.postMessage" and post.authorization == f"Bearer {TOKEN}"
    assert post.body["channel"] == "C-ALERTS" and "smartlead:7" in post.body["text"]
    assert [b["elements"][0]["action_id"] for b in post.body["blocks"] if b["type"] == "actions"] == ["resume"]
    [item] = await outbox.items()
    assert item.status == "sent" and item.result.startswith("ok ts=")
    [attempt] = await outbox.attempts(item.id)
    assert attempt.ok


async def test_slack_down_is_retried_with_backoff_and_every_attempt_recorded(outbox, api_url, slack, logs) -> None:
    slack.fail_api = [503, 500, "ratelimited"]
    await SlackNotifier(outbox, channel="C1", digest_seconds=60).notify(_notice())
    deliverer = _deliverer(outbox, api_url, retry_delays=(0.01, 0.02, 0.05))
    await deliverer.start()
    try:
        async with asyncio.timeout(5):
            await slack.wait_for(lambda s: len(s.api_posts()) == 1)
    finally:
        await deliverer.stop()
    [item] = await outbox.items()
    attempts = await outbox.attempts(item.id)
    assert [a.ok for a in attempts] == [False, False, False, True]
    assert [a.detail for a in attempts[:3]] == ["slack api 503", "slack api 500", "slack api 200 ratelimited"]
    assert item.status == "sent" and item.attempts == 4 and len(slack.api_posts()) == 1
    assert not any(TOKEN in json.dumps(line, default=str) for line in logs)
    assert [line["event"] for line in logs if line["event"].startswith("slack.")].count("slack.delivery_retried") == 3


async def test_a_permanent_refusal_fails_at_once(outbox, api_url, slack) -> None:
    slack.fail_api = ["channel_not_found"]
    await SlackNotifier(outbox, channel="C-missing", digest_seconds=60).notify(_notice())
    deliverer = _deliverer(outbox, api_url)
    assert await deliverer.deliver_due() == 0
    [item] = await outbox.items()
    assert item.status == "failed" and item.result == "slack api 200 channel_not_found"
    assert await deliverer.deliver_due() == 0 and slack.attempts == 1


async def test_attempts_are_bounded(outbox, api_url, slack) -> None:
    slack.fail_api = [503] * 10
    await SlackNotifier(outbox, channel="C1", digest_seconds=60).notify(_notice())
    deliverer = _deliverer(outbox, api_url, max_attempts=3, retry_delays=(0.0,))
    for _ in range(5):
        await deliverer.deliver_due()
    [item] = await outbox.items()
    assert item.status == "failed" and item.attempts == 3 and slack.attempts == 3


async def test_slack_unreachable_is_retried(outbox, slack) -> None:
    await SlackNotifier(outbox, channel="C1", digest_seconds=60).notify(_notice())
    assert await _deliverer(outbox, "http://127.0.0.1:9/api/", timeout=2.0).deliver_due() == 0
    [item] = await outbox.items()
    assert item.status == "queued" and item.result.startswith("network:")


async def test_shadow_notices_of_one_interval_become_one_digest(outbox, api_url, slack) -> None:
    clock = Clock()
    notifier = SlackNotifier(outbox, channel="C1", digest_seconds=300, clock=clock)
    for n in (1, 2, 3):
        await notifier.notify(_notice("shadow", f"smartlead:{n}"))
        clock.now += timedelta(seconds=10)
    await notifier.notify(_notice("paused", "smartlead:9"))              # not batched
    deliverer = _deliverer(outbox, api_url, clock=clock)
    assert await deliverer.deliver_due() == 1                            # the pause; the digest waits
    clock.now += timedelta(seconds=300)
    assert await deliverer.deliver_due() == 3                            # three shadow rows, one message
    posts = slack.api_posts()
    assert len(posts) == 2 and "smartlead:9" in posts[0].body["text"]
    digest = posts[1].body["blocks"][0]["text"]["text"]
    assert "Shadow decisions" in digest and all(f"smartlead:{n}" in digest for n in (1, 2, 3))
    assert {i.status for i in await outbox.items()} == {"sent"}


async def test_replies_go_to_the_response_url_once_per_key(outbox, slack, aiohttp_server) -> None:
    server = await aiohttp_server(slack.app)
    url = str(server.make_url("/response/r1"))
    now = datetime.now(UTC)
    assert await outbox.enqueue("response_url", {"url": url, "body": {"text": "hi"}}, now=now, key="ev-1")
    assert not await outbox.enqueue("response_url", {"url": url, "body": {"text": "hi"}}, now=now, key="ev-1")
    slack.fail_response = [502]
    deliverer = _deliverer(outbox, str(server.make_url("/api/")), retry_delays=(0.0,))
    await deliverer.start()
    try:
        async with asyncio.timeout(5):
            await slack.wait_for(lambda s: len(s.replies("r1")) == 1)
    finally:
        await deliverer.stop()
    assert slack.replies("r1")[0].body == {"text": "hi"}
    [item] = await outbox.items()
    assert [a.detail for a in await outbox.attempts(item.id)] == ["http 502", "ok"]


async def test_expired_or_refused_replies_fail_without_retry(outbox, slack, aiohttp_server) -> None:
    server = await aiohttp_server(slack.app)
    clock = Clock()
    await outbox.enqueue("response_url", {"url": str(server.make_url("/response/old")), "body": {"text": "x"}},
                         now=clock.now - timedelta(minutes=31), key="old")
    await outbox.enqueue("response_url", {"url": str(server.make_url("/response/gone")), "body": {"text": "x"}},
                         now=clock.now, key="gone")
    slack.fail_response = [404]
    await _deliverer(outbox, str(server.make_url("/api/")), clock=clock).deliver_due()
    results = {i.key: (i.status, i.result) for i in await outbox.items()}
    assert results["old"][0] == "failed" and "expired" in results["old"][1]
    assert results["gone"] == ("failed", "http 404")
