"""SlackOperator without a broker: redeliveries act and reply once; dry-run vendors; unknown verbs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import Settings
from bot.events import Event
from bot.executor import Executor
from bot.slack.operator import SlackOperator
from bot.state.outbox import SqliteOutbox
from bot.vendors.base import CampaignStatus
from bot.vendors.dryrun import DryRunVendor
from tests.conftest import FakeVendor

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
async def outbox(tmp_path: Path, store) -> AsyncIterator[SqliteOutbox]:
    async with SqliteOutbox.open(tmp_path / "state.db") as opened:
        yield opened


@pytest.fixture
def operator(store, outbox, fake_vendor: FakeVendor, clock) -> SlackOperator:
    fake_vendor.statuses["42"] = CampaignStatus.ACTIVE
    vendors = {"smartlead": fake_vendor, "leadterra": DryRunVendor("leadterra"), "inbox": DryRunVendor("inbox")}
    dry = frozenset({"leadterra", "inbox"})
    executor = Executor(store, vendors, dry_run_vendors=dry, clock=clock)
    settings = Settings(slack_pause_users="U1", slack_resume_users="U1")
    return SlackOperator(store=store, outbox=outbox, executor=executor, vendors=vendors, dry_run_vendors=dry,
                         settings=settings, clock=clock)


def _command(verb: str, *campaigns: str, n: int = 1, user: str = "U1") -> Event:
    return Event(id=f"slack:command:{n}", type=f"command.{verb}", source="slack", occurred_at=AT,
                 data={"campaigns": list(campaigns), "user_id": user, "reason": "",
                       "response_url": "https://hooks.slack.com/commands/x"})


async def _replies(outbox: SqliteOutbox) -> list[str]:
    return [i.payload["body"]["text"] for i in await outbox.items() if i.target == "response_url"]


async def test_a_redelivered_command_acts_and_replies_once(operator, outbox, fake_vendor, store) -> None:
    event = _command("pause", "smartlead:42")
    assert operator.handles(event)
    assert await operator.handle(event) is True
    assert await operator.handle(event) is False                  # the broker delivered it again
    assert fake_vendor.writes() == [("pause", "42")]
    [text] = await _replies(outbox)
    assert "hold placed by <@U1>" in text and "paused in Smartlead" in text
    assert [r.outcome for r in await store.audit(campaign="smartlead:42") if r.kind == "decision"] == ["hold_placed"]


async def test_dry_run_vendors_are_paused_on_paper_only(operator, outbox) -> None:
    await operator.handle(_command("pause", "leadterra:camp_a"))
    [text] = await _replies(outbox)
    assert "hold placed" in text and "dry run: would have paused leadterra:camp_a" in text
    await operator.handle(_command("status", "leadterra:camp_a", n=2, user="ANYONE"))
    status = (await _replies(outbox))[1]
    assert "dry run: campaign-guard has no Leadterra API key" in status and "paused by campaign-guard in dry run" in status


async def test_events_from_other_sources_are_not_ours(operator) -> None:
    event = Event(id="e1", type="command.pause", source="events", occurred_at=AT, data={})
    assert not operator.handles(event)
