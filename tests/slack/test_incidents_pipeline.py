"""Incidents made of the notices the executor and the reconciler really send (their kinds and texts, which
bot.slack.incidents reads): a pause and its resume are one message, on a live vendor, in a dry run, and when
someone resumed the campaign before campaign-guard could; delivered to the fake Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.events import CampaignRef
from bot.executor import Executor
from bot.slack.delivery import SlackDeliverer, SlackNotifier
from bot.state.base import Hold, HoldKind
from bot.state.outbox import SqliteOutbox
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignStatus
from bot.vendors.dryrun import DryRunVendor
from tests.conftest import FakeVendor, FrozenClock
from tests.slack.fake_slack import FakeSlack

REF = CampaignRef.parse("smartlead:42")


@pytest.fixture
async def outbox(tmp_path: Path, store: SqliteStateStore) -> AsyncIterator[SqliteOutbox]:
    async with SqliteOutbox.open(tmp_path / "state.db") as opened:
        yield opened


async def _pause_then_release(executor: Executor, store: SqliteStateStore, clock: FrozenClock,
                              between: Callable[[], None] | None = None) -> None:
    async with executor.lock(REF):
        async with store.transaction() as tx:
            await executor.hold(tx, Hold(str(REF), "user:U1", HoldKind.PERSON, "list bought", clock()))
        await executor.reconcile(REF)
    clock.advance(hours=2)
    if between is not None:
        between()
    async with executor.lock(REF):
        async with store.transaction() as tx:
            await executor.release(tx, REF, "user:U1", clock(), why="resumed from Slack by user:U1")
        await executor.reconcile(REF)


async def _delivered(outbox: SqliteOutbox, api_url: str, clock: FrozenClock) -> None:
    deliverer = SlackDeliverer(outbox, token="xoxb-test", api_url=api_url, retry_delays=(1.0,), max_attempts=3,
                               clock=clock)
    try:
        await deliverer.deliver_due()
    finally:
        await deliverer.stop()


@pytest.mark.parametrize("case", ["live", "dry run", "resumed by someone else"])
async def test_a_pause_and_its_resume_are_one_message(case: str, store: SqliteStateStore, outbox: SqliteOutbox,
                                                      fake_vendor: FakeVendor, clock: FrozenClock, api_url: str,
                                                      slack: FakeSlack) -> None:
    fake_vendor.statuses["42"] = CampaignStatus.ACTIVE
    dry = frozenset({"smartlead"}) if case == "dry run" else frozenset()
    vendors = {"smartlead": DryRunVendor("smartlead") if dry else fake_vendor}
    notifier = SlackNotifier(outbox, channel="C1", digest_seconds=300, clock=clock)
    executor = Executor(store, vendors, dry_run_vendors=dry, clock=clock, notifier=notifier)
    def person_resumes() -> None:
        fake_vendor.set("42", CampaignStatus.ACTIVE)

    await _pause_then_release(executor, store, clock, person_resumes if case == "resumed by someone else" else None)
    await _delivered(outbox, api_url, clock)
    [top] = slack.top_posts()
    [update] = slack.calls("chat.update")
    assert update["ts"] == next(ts for (_, ts) in slack.messages)
    expected = {"live": ("paused", "resumed"), "dry run": ("dry_run", "dry_run"),
                "resumed by someone else": ("paused", "skipped")}[case]
    assert (f"· {expected[0]} ·" in str(top["blocks"]), f"· {expected[1]} ·" in str(update["blocks"])) == (True, True)
    items = await outbox.items()
    incident = await outbox.incident(items[0].incident or 0)
    assert incident is not None and incident.closed_at is not None          # the resume ended it
    # so the next pause is a new message
    clock.advance(minutes=5)
    fake_vendor.statuses["42"] = CampaignStatus.ACTIVE
    async with executor.lock(REF):
        async with store.transaction() as tx:
            await executor.hold(tx, Hold(str(REF), "user:U2", HoldKind.PERSON, "again", clock()))
        await executor.reconcile(REF)
    await _delivered(outbox, api_url, clock)
    assert len(slack.top_posts()) == 2 and len(slack.calls("chat.update")) == 1
