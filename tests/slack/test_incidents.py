"""One Slack message per incident, through the outbox, against the fake Slack, on SQLite and PostgreSQL: the
first notice posts it, later ones edit it (chat.update with the first ts) and reply in its thread; a notice
delivered again never posts a second message; the next pause starts a new one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.notify import Notice
from bot.slack.delivery import SlackDeliverer, SlackNotifier
from bot.slack.incidents import QUIET, Phase, phase
from bot.state.outbox import Outbox
from tests.postgres_db import fresh_database, open_outbox
from tests.slack.fake_slack import FakeSlack

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CAMPAIGN = "smartlead:7"


class Clock:
    def __init__(self) -> None:
        self.now = AT

    def __call__(self) -> datetime:
        return self.now



@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def deliverer(outbox: Outbox, api_url: str, clock: Clock) -> AsyncIterator[SlackDeliverer]:
    made = SlackDeliverer(outbox, token="xoxb-test", api_url=api_url, retry_delays=(5.0,), max_attempts=5,
                          clock=clock)
    yield made
    await made.stop()


def _notice(kind: str, text: str | None = None, campaign: str = CAMPAIGN, **inputs: Any) -> Notice:
    return Notice(kind, campaign, text or f"{kind} {campaign}", AT, "bounce-guard", inputs)


async def _notify(outbox: Outbox, clock: Clock, *notices: Notice, channel: str = "#guard") -> None:
    notifier = SlackNotifier(outbox, channel=channel, digest_seconds=300, clock=clock)
    for notice in notices:
        await notifier.notify(notice)
        clock.now += timedelta(seconds=1)


def _kinds(bodies: list[dict[str, Any]]) -> list[str]:
    """The notice kind each message shows (its context line: `campaign-guard · <kind> · ...`)."""
    found = []
    for body in bodies:
        [context] = [b for b in body["blocks"] if b["type"] == "context"]
        found.append(context["elements"][0]["text"].split(" · ")[1])
    return found


async def test_a_pause_its_updates_and_its_resume_edit_one_message_and_fill_its_thread(
        outbox: Outbox, deliverer: SlackDeliverer, slack: FakeSlack, clock: Clock) -> None:
    await _notify(outbox, clock, _notice("paused", "bounce rate 4.0%", numerator=4, denominator=100),
                  _notice("failed", "smartlead answered 500"), _notice("withdrawn"), _notice("resumed", "no hold remains"))
    assert await deliverer.deliver_due() == 4
    [top] = slack.top_posts()
    [(channel, ts)] = list(slack.messages)
    assert channel == "CGUARD" and top["channel"] == "#guard" and _kinds([top]) == ["paused"]
    updates = slack.calls("chat.update")
    assert [(u["channel"], u["ts"]) for u in updates] == [(channel, ts)] * 3     # the id Slack answered with
    assert _kinds(updates) == ["failed", "withdrawn", "resumed"]
    replies = slack.threads[(channel, ts)]
    assert _kinds(replies) == ["failed", "withdrawn", "resumed"]
    assert all(r["channel"] == channel and r["thread_ts"] == ts for r in replies)
    assert all(b["type"] != "actions" for r in replies for b in r["blocks"])     # buttons live on the message
    now = slack.messages[(channel, ts)]                                         # as the last edit left it
    assert now["text"].startswith("Resumed `smartlead:7`") and all(b["type"] != "actions" for b in now["blocks"])
    shown = json.dumps(now["blocks"])
    assert "Incident opened:* Paused" in shown and "bounce rate 4.0%" in shown and "*numerator*\\n4" in shown
    assert "3 updates in the thread" in shown
    items = await outbox.items()
    assert {i.status for i in items} == {"sent"} and len({i.incident for i in items}) == 1
    incident = await outbox.incident(items[0].incident or 0)
    assert incident is not None and incident.ts == ts and incident.closed_at is not None and incident.sent == 4


async def test_the_message_carries_the_buttons_of_where_it_stands(
        outbox: Outbox, deliverer: SlackDeliverer, slack: FakeSlack, clock: Clock) -> None:
    await _notify(outbox, clock, _notice("pending_decision", "parked as decision #3", decision_id=3),
                  _notice("paused", "approved: bounce rate 4.0%"))
    assert await deliverer.deliver_due() == 2
    [top] = slack.top_posts()
    [actions] = [b for b in top["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["approve", "reject"]
    [update] = slack.calls("chat.update")
    [actions] = [b for b in update["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["resume", "keep_paused"]


async def test_the_next_pause_after_a_resume_starts_a_new_message(
        outbox: Outbox, deliverer: SlackDeliverer, slack: FakeSlack, clock: Clock) -> None:
    await _notify(outbox, clock, _notice("paused"), _notice("resumed"), _notice("paused", "again"),
                  _notice("paused", "other campaign", campaign="smartlead:8"))
    assert await deliverer.deliver_due() == 4
    tops = slack.top_posts()
    assert [(t["text"].split(": ", 1)[1]) for t in tops] == ["paused smartlead:7", "again", "other campaign"]
    [update] = slack.calls("chat.update")
    assert update["ts"] == next(ts for (_, ts), body in slack.messages.items() if body is update)
    assert len({i.incident for i in await outbox.items()}) == 3


async def test_a_later_notice_waits_for_the_first_posts_ts(
        outbox: Outbox, deliverer: SlackDeliverer, slack: FakeSlack, clock: Clock) -> None:
    await _notify(outbox, clock, _notice("paused"), _notice("failed"))
    slack.fail_api = [503]
    assert await deliverer.deliver_due() == 0
    first, second = await outbox.items()
    assert (first.status, first.attempts) == ("queued", 1)
    assert second.attempts == 0 and slack.received == []        # not edited (no ts yet), not posted on its own
    assert await outbox.next_due() == first.due_at              # the retry, not the waiting notice
    clock.now = first.due_at
    assert await deliverer.deliver_due() == 2
    assert len(slack.top_posts()) == 1 and [u["ts"] for u in slack.calls("chat.update")] == [
        next(iter(slack.messages))[1]]


async def test_a_notice_delivered_again_edits_and_never_posts_a_second_message(
        outbox: Outbox, deliverer: SlackDeliverer, slack: FakeSlack, clock: Clock) -> None:
    await _notify(outbox, clock, _notice("paused"), _notice("failed"))
    assert await deliverer.deliver_due() == 2
    [(channel, ts)] = list(slack.messages)
    # at-least-once: both come back (an answer lost after Slack acted, a claim that lapsed), in order
    for item in await outbox.items():
        await outbox.record([item.id], now=clock.now, ok=False, detail="timeout", retry_at=clock.now)
    assert await deliverer.deliver_due() == 2
    assert len(slack.top_posts()) == 1 and list(slack.messages) == [(channel, ts)]
    assert {u["ts"] for u in slack.calls("chat.update")} == {ts}
    # and the same notice handed to the notifier twice joins the incident it opened
    await _notify(outbox, clock, _notice("paused"))
    assert await deliverer.deliver_due() == 1
    assert len(slack.top_posts()) == 1 and slack.calls("chat.update")[-1]["ts"] == ts


async def test_a_deleted_message_is_posted_again_and_edited_from_then_on(
        outbox: Outbox, deliverer: SlackDeliverer, slack: FakeSlack, clock: Clock) -> None:
    await _notify(outbox, clock, _notice("paused"))
    await deliverer.deliver_due()
    [(channel, first)] = list(slack.messages)
    slack.delete(channel, first)
    await _notify(outbox, clock, _notice("failed"), _notice("resumed"))
    assert await deliverer.deliver_due() == 2
    [(_, second)] = list(slack.messages)
    assert second != first and len(slack.top_posts()) == 2
    assert [u["ts"] for u in slack.calls("chat.update")] == [first, second]     # refused, then the new one
    assert _kinds([slack.messages[(channel, second)]]) == ["resumed"]


async def test_an_incident_quiet_for_a_day_is_over_for_the_next_pause(
        outbox: Outbox, deliverer: SlackDeliverer, slack: FakeSlack, clock: Clock) -> None:
    await _notify(outbox, clock, _notice("skipped", "already paused by someone else: holds kept"))
    clock.now += QUIET - timedelta(minutes=1)
    await _notify(outbox, clock, _notice("paused"))                 # still the same trouble
    clock.now += QUIET + timedelta(minutes=1)
    await _notify(outbox, clock, _notice("paused", "a day later"))
    await _notify(outbox, clock, _notice("resumed"))
    assert await deliverer.deliver_due() == 4
    assert len(slack.top_posts()) == 2 and len(slack.calls("chat.update")) == 2
    first, second, third, fourth = await outbox.items()
    assert first.incident == second.incident != third.incident == fourth.incident


async def test_notices_that_belong_to_no_incident_are_messages_of_their_own(
        outbox: Outbox, deliverer: SlackDeliverer, slack: FakeSlack, clock: Clock) -> None:
    await _notify(outbox, clock, Notice("breaker_open", None, "breaker open", AT), _notice("resumed"),
                  _notice("withdrawn"))
    assert await deliverer.deliver_due() == 3
    assert len(slack.top_posts()) == 3 and slack.calls("chat.update") == []
    assert [i.incident for i in await outbox.items()] == [None, None, None]


async def test_the_running_deliverer_sends_an_incident_in_order(
        outbox: Outbox, api_url: str, slack: FakeSlack, clock: Clock) -> None:
    await _notify(outbox, clock, _notice("paused"), *(_notice("failed", f"attempt {n}") for n in range(5)),
                  _notice("resumed"))
    deliverer = SlackDeliverer(outbox, token="xoxb-test", api_url=api_url, retry_delays=(0.01,), max_attempts=5)
    await deliverer.start()
    try:
        async with asyncio.timeout(10):
            await slack.wait_for(lambda s: len(s.calls("chat.update")) == 6)
    finally:
        await deliverer.stop()
    [(channel, ts)] = list(slack.messages)
    assert [r["text"].split(": ", 1)[1] for r in slack.threads[(channel, ts)]] == [
        *(f"attempt {n}" for n in range(5)), "resumed smartlead:7"]


@pytest.mark.parametrize(("kind", "text", "expected"), [
    ("paused", "bounce rate 4%", Phase.OPEN),
    ("pending_decision", "parked", Phase.OPEN),
    ("rule_notice", "reply rate low", Phase.OPEN),
    ("warning", "bounce rate 2.1%: above the warning level", Phase.OPEN),
    ("skipped", "already paused by someone else: holds kept, never resumed automatically", Phase.OPEN),
    ("dry_run", "dry run: would have paused smartlead:7: x", Phase.OPEN),
    ("withdrawn", "pause withdrawn before it was sent", Phase.UPDATE),
    ("resumed", "no hold remains", Phase.CLOSE),
    ("override", "resumed at the vendor", Phase.CLOSE),
    ("decision_expired", "decision #3 expired: not paused", Phase.CLOSE),
    ("dry_run", "dry run: would have resumed smartlead:7", Phase.CLOSE),
    ("skipped", "already active: resumed by someone else", Phase.CLOSE),
    ("skipped", "campaign is stopped: never resumed automatically", Phase.CLOSE),
    ("unproven", "resume sent; smartlead reports paused", Phase.CLOSE),
    ("skipped", "smartlead shows the campaign changed since campaign-guard paused it: someone ...", Phase.CLOSE),
    ("drift", "smartlead shows the campaign changed since campaign-guard paused it: someone ...", Phase.OPEN),
])
def test_phase_of_each_notice(kind: str, text: str, expected: Phase) -> None:
    assert phase(Notice(kind, CAMPAIGN, text, AT)) is expected


def test_notices_about_no_campaign_or_shadow_decisions_have_no_phase() -> None:
    assert phase(Notice("breaker_open", None, "x", AT)) is None
    assert phase(Notice("shadow", CAMPAIGN, "x", AT)) is None


async def test_two_workers_deliverers_post_one_message_and_edit_it_in_order(api_url: str, slack: FakeSlack) -> None:
    """PostgreSQL, two workers' outboxes and deliverers running at once: the fleet's at-least-once delivery
    with claims still posts the incident's message once and edits it in the order the notices came."""
    async with fresh_database() as url, open_outbox(url) as first, open_outbox(url) as second:
        clock = Clock()
        notices = [_notice("paused"), *(_notice("failed", f"attempt {n}") for n in range(8)), _notice("resumed")]
        for n, notice in enumerate(notices):      # queued by both workers, alternately
            await _notify((first, second)[n % 2], clock, notice)
        deliverers = [SlackDeliverer(outbox, token="xoxb-test", api_url=api_url, retry_delays=(0.01,),
                                     max_attempts=5, idle_poll=0.05) for outbox in (first, second)]
        try:
            await asyncio.gather(*(d.start() for d in deliverers))
            async with asyncio.timeout(15):
                await slack.wait_for(lambda s: len(s.calls("chat.update")) == len(notices) - 1)
        finally:
            await asyncio.gather(*(d.stop() for d in deliverers))
        [(channel, ts)] = list(slack.messages)
        assert len(slack.top_posts()) == 1
        assert {u["ts"] for u in slack.calls("chat.update")} == {ts}
        assert [r["text"].split(": ", 1)[1] for r in slack.threads[(channel, ts)]] == [
            *(f"attempt {n}" for n in range(8)), "resumed smartlead:7"]
        assert _kinds([slack.messages[(channel, ts)]]) == ["resumed"]
