"""The daily digest (bot.digest, bot.slack.daily): built from the state on SQLite and PostgreSQL, routed to
each account's channel, rendered as Block Kit within Slack's limits, due once a day at the configured hour
and zone, and queued once per channel and day however many workers run the duty."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.accounts import Account, Accounts
from bot.config import Settings
from bot.digest import DigestPlan, collect, day_ending, digest_due, send_digest, zone_of
from bot.errors import ConfigError
from bot.events import Event
from bot.fleet import Duties
from bot.slack.daily import MAX_BLOCKS, Digest, Line, Section, daily_message, daily_text
from bot.slack.delivery import SlackDeliverer
from bot.state.base import AuditRow, Hold, HoldKind
from bot.state.leases import MemoryLeases
from bot.state.outbox import Outbox, SqliteOutbox
from bot.state.postgres import PostgresStateStore
from bot.state.protocol import StateStore
from bot.state.sqlite import SqliteStateStore
from bot.vendors.spec import VendorConfig
from tests.postgres_db import fresh_database, open_outbox
from tests.slack.fake_slack import FakeSlack

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)          # 10:00 in Paris
START = NOW - timedelta(days=1)
ACCOUNTS = Accounts([Account("smartlead", "default", VendorConfig("smartlead", {})),
                     Account("smartlead", "acme", VendorConfig("smartlead", {}), slack_channel="C-ACME")])
PLAN = DigestPlan(10, PARIS, "C-DEFAULT", ACCOUNTS)


def _ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def _health(n: int, route: str, email: str, hours: float, *problems: str, campaigns: tuple[str, ...] = ()) -> Event:
    return Event(id=f"poll:{route}:{email}:{n}", type="account.health", source="smartlead", occurred_at=_ago(hours),
                 data={"email": email, "route": route, "healthy": not problems, "problems": list(problems),
                       "campaigns": list(campaigns)})


async def _seed(store: StateStore) -> int:
    """A day of a small agency: acme's campaigns (its own channel) and the default account's."""
    rows = [
        AuditRow(_ago(30), "action", "smartlead:1", None, "pause", "paused", "the day before: not in this digest"),
        AuditRow(_ago(10), "decision", "smartlead@acme:5", "bounce-guard", "pause", "hold_placed", "bounce rate 4.0%"),
        AuditRow(_ago(10), "action", "smartlead@acme:5", None, "pause", "paused", "bounce rate 4.0%"),
        AuditRow(_ago(9), "decision", "smartlead:2", "user:U1", "pause", "hold_placed", "paused from Slack: list bought"),
        AuditRow(_ago(9), "action", "smartlead:2", None, "pause", "confirmed", "pause confirmed after its answer was lost"),
        AuditRow(_ago(5), "decision", "smartlead@acme:5", None, "override", "recorded", "user:U1 overrode campaign-guard"),
        AuditRow(_ago(5), "action", "smartlead@acme:5", None, "resume", "resumed", "no hold remains"),
        AuditRow(_ago(4), "decision", "smartlead:3", None, "override", "recorded", "a person resumed it at the vendor"),
        AuditRow(_ago(3), "decision", "smartlead:2", "reply-floor", "notify", "notified", "reply rate <!channel> low"),
        AuditRow(_ago(3), "failure", "smartlead@acme:6", None, "pause", "failed", "Smartlead refused: 404"),
        AuditRow(_ago(2.5), "decision", "smartlead@acme:6", "bounce-warn", "notify", "warned", "bounce rate 2.1%"),
        AuditRow(_ago(2), "decision", "smartlead@acme:7", "spam-guard", "pause", "would_pause", "shadow: would pause"),
        AuditRow(_ago(1), "decision", None, "alert-unscoped", "pause", "no_campaign", "alert DiskFull: no campaign"),
        AuditRow(_ago(1), "decision", "smartlead:4", "bounce-guard", "release", "hold_removed", "not a digest line"),
        AuditRow(_ago(0.5), "action", "smartlead:9", None, "pause", "dry_run", "dry run: would have paused smartlead:9"),
    ]
    events = [_health(1, "smartlead@acme", "ana@acme.io", 6, "SMTP failing"), _health(2, "smartlead@acme", "ana@acme.io", 2),
              _health(3, "smartlead", "bo@x.io", 3, "warmup blocked", campaigns=("1", "2")),
              _health(4, "smartlead", "ok@x.io", 3), _health(5, "smartlead", "old@x.io", 30, "IMAP failing")]
    async with store.transaction() as tx:
        for row in rows:
            await tx.add_audit(row)
        for event in events:
            await tx.record_event(event, NOW)
        return await tx.add_pending(Hold("smartlead@acme:8", "rule:bounce-guard@smartlead@acme:8", HoldKind.PENDING,
                                         "bounce rate 5.0%", _ago(2)), expires_at=NOW + timedelta(hours=20))


@pytest.fixture(params=["sqlite", "postgres"])
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[StateStore, list[Outbox]]]:
    """A store and two outboxes on its database (two workers'; SQLite: one worker, so its one outbox twice)."""
    if request.param == "sqlite":
        async with SqliteStateStore.open(tmp_path / "state.db") as store, \
                SqliteOutbox.open(tmp_path / "state.db") as outbox:
            yield store, [outbox, outbox]
    else:
        async with fresh_database() as url, PostgresStateStore.open(url) as store, open_outbox(url) as first, \
                open_outbox(url) as second:
            yield store, [first, second]


def _lines(digest: Digest) -> dict[str, list[tuple[str | None, str]]]:
    return {s.key: [(line.campaign, line.text) for line in s.lines] for s in digest.sections}


async def test_each_channel_gets_its_accounts_day(state: tuple[StateStore, list[Outbox]]) -> None:
    store, _ = state
    decision = await _seed(store)
    digests = await collect(store, accounts=ACCOUNTS, channel="C-DEFAULT", start=START, end=NOW, zone=PARIS)
    assert list(digests) == ["C-ACME", "C-DEFAULT"]
    acme, default = digests["C-ACME"], digests["C-DEFAULT"]
    assert (acme.accounts, default.accounts) == (("smartlead@acme",), ())
    assert _lines(acme) == {
        "paused": [("smartlead@acme:5", "bounce-guard: bounce rate 4.0%")],
        "resumed": [("smartlead@acme:5", "no hold remains — user:U1 overrode campaign-guard")],
        "approvals": [("smartlead@acme:8", (f"decision #{decision} (rule:bounce-guard@smartlead@acme:8): bounce "
                                            f"rate 5.0%; expires 12-01 06:00 unless approved (Slack buttons, or "
                                            f"`campaign-guard decisions approve {decision}`)"))],
        "mailboxes": [(None, "ana@acme.io (smartlead@acme): SMTP failing; healthy again at 08:00")],
        "warnings": [("smartlead@acme:6", "failed: Smartlead refused: 404"),
                     ("smartlead@acme:6", "warned: bounce-warn: bounce rate 2.1%")],
        "shadow": [("smartlead@acme:7", "spam-guard: shadow: would pause")],
    }
    assert _lines(default) == {
        "paused": [("smartlead:2", "user:U1: pause confirmed after its answer was lost; paused from Slack: list bought"),
                   ("smartlead:9", "dry run: would have paused smartlead:9")],
        "resumed": [("smartlead:3", "a person resumed it at the vendor")],
        "mailboxes": [(None, "bo@x.io (smartlead): warmup blocked; sends for 1, 2")],
        "warnings": [("smartlead:2", "notified: reply-floor: reply rate <!channel> low"),
                     (None, "no_campaign: alert-unscoped: alert DiskFull: no campaign")],
    }
    only = await collect(store, accounts=ACCOUNTS, channel="C-DEFAULT", start=START, end=NOW, zone=PARIS,
                         routes=frozenset({"smartlead@acme"}))
    assert list(only) == ["C-ACME"] and _lines(only["C-ACME"]) == _lines(acme)


async def test_without_any_channel_the_day_is_still_collected_for_the_cli(
        state: tuple[StateStore, list[Outbox]]) -> None:
    store, _ = state
    await _seed(store)
    no_channels = Accounts([Account("smartlead", "default", VendorConfig("smartlead", {})),
                            Account("smartlead", "acme", VendorConfig("smartlead", {}))])
    digests = await collect(store, accounts=no_channels, channel=None, start=START, end=NOW, zone=PARIS)
    assert list(digests) == [None]
    [everything] = digests.values()
    assert everything.count("paused") == 3 and everything.count("warnings") == 4
    assert "no Slack channel" in daily_text(everything).splitlines()[0]


async def test_the_digest_is_queued_once_per_channel_and_day_across_workers(
        state: tuple[StateStore, list[Outbox]], api_url: str, slack: FakeSlack) -> None:
    store, outboxes = state
    await _seed(store)
    assert await send_digest(store, outboxes[0], PLAN, now=NOW - timedelta(minutes=1)) == []    # 09:59 in Paris
    queued = await asyncio.gather(*(send_digest(store, outboxes[n % 2], PLAN, now=NOW) for n in range(6)))
    assert sorted(channel for batch in queued for channel in batch) == ["C-ACME", "C-DEFAULT"]
    later = [await send_digest(store, outbox, PLAN, now=NOW + timedelta(hours=3)) for outbox in outboxes]
    assert later == [[], []]
    items = await outboxes[0].items()
    assert sorted(i.key or "" for i in items) == ["digest:C-ACME:2026-11-30", "digest:C-DEFAULT:2026-11-30"]
    deliverer = SlackDeliverer(outboxes[1], token="xoxb-test", api_url=api_url, retry_delays=(1.0,), max_attempts=3,
                               clock=lambda: NOW)
    try:
        assert await deliverer.deliver_due() == 2
    finally:
        await deliverer.stop()
    posts = {body["channel"]: body for body in slack.top_posts()}
    assert set(posts) == {"C-ACME", "C-DEFAULT"}
    assert "bounce rate 4.0%" in json.dumps(posts["C-ACME"]) and "smartlead:2" not in json.dumps(posts["C-ACME"])
    # the next day's comes the next day
    assert sorted(await send_digest(store, outboxes[0], PLAN, now=NOW + timedelta(days=1))) == ["C-ACME",
                                                                                                  "C-DEFAULT"]


def _big_digest() -> Digest:
    many = tuple(Line(f"<@U{n}> & reason {'x' * 250}", f"smartlead:{n}", NOW) for n in range(400))
    return Digest("C1", START, NOW, PARIS, tuple(Section(key, many) for key in
                                                 ("paused", "resumed", "approvals", "mailboxes", "warnings", "shadow")))


def _check_block_kit(message: dict[str, Any]) -> None:
    blocks = message["blocks"]
    assert 0 < len(blocks) <= MAX_BLOCKS and len(message["text"]) <= 3000
    assert {b["type"] for b in blocks} <= {"header", "context", "section", "divider"}
    [header] = [b for b in blocks if b["type"] == "header"]
    assert header["text"]["type"] == "plain_text" and len(header["text"]["text"]) <= 150
    for block in blocks:
        if block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn" and 0 < len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert all(len(e["text"]) <= 3000 for e in block["elements"]) and len(block["elements"]) <= 10


def test_block_kit_stays_within_slacks_limits_and_says_what_was_left_out() -> None:
    digest = _big_digest()
    message = daily_message(digest)
    _check_block_kit(message)
    text = json.dumps(message)
    assert "&lt;@U0&gt; &amp; reason" in text and "<@U0>" not in text                 # escaped, never a mention
    assert text.count("more: `campaign-guard digest` lists them all") == 6
    assert message["blocks"][0]["text"]["text"] == "campaign-guard daily digest · Mon 30 Nov 2026"
    assert "2026-11-29 10:00 → 2026-11-30 10:00 Europe/Paris" in message["blocks"][1]["elements"][0]["text"]
    assert message["text"].startswith("campaign-guard daily digest Mon 30 Nov 2026: 400 paused, 400 resumed")
    plain = daily_text(digest)
    assert plain.count("\n  11-30 10:00  smartlead:") == 6 * 400                 # the CLI's text cuts nothing


async def test_a_real_days_digest_is_valid_block_kit(state: tuple[StateStore, list[Outbox]]) -> None:
    store, _ = state
    await _seed(store)
    digests = await collect(store, accounts=ACCOUNTS, channel="C-DEFAULT", start=START, end=NOW, zone=PARIS)
    message = daily_message(digests["C-ACME"])
    _check_block_kit(message)
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "context", "section"] + ["divider", "section"] * 6 + ["context"]
    assert message["blocks"][2]["text"]["text"] == ("1 paused · 1 resumed · 1 waiting for approval · "
                                                    "1 unhealthy mailbox(es) · 2 warning(s) · 1 shadow decision(s)")
    assert "• 00:00 `smartlead@acme:5` — bounce-guard: bounce rate 4.0%" in message["blocks"][4]["text"]["text"]


def test_a_quiet_day_says_so() -> None:
    message = daily_message(Digest("C1", START, NOW, PARIS, ()))
    _check_block_kit(message)
    assert "Nothing to report" in json.dumps(message) and message["text"].endswith("nothing to report")


@pytest.mark.parametrize(("now", "expected"), [
    (datetime(2026, 11, 30, 8, 59, tzinfo=UTC), None),                                       # yesterday's: too late
    (datetime(2026, 11, 30, 9, 0, tzinfo=UTC), datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),    # 10:00 in Paris
    (datetime(2026, 11, 30, 20, 59, tzinfo=UTC), datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
    (datetime(2026, 11, 30, 21, 0, tzinfo=UTC), None),                                       # 12 h late: skipped
    (datetime(2026, 7, 1, 8, 0, tzinfo=UTC), datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),        # summer time: UTC+2
])
def test_digest_due_at_the_hour_in_the_zone(now: datetime, expected: datetime | None) -> None:
    due = digest_due(now, hour=10, zone=PARIS)
    assert due == expected and (due is None or due.astimezone(PARIS).hour == 10)


def test_a_digest_late_by_less_than_the_limit_is_still_due() -> None:
    now = datetime(2026, 11, 30, 8, 59, tzinfo=UTC)
    assert digest_due(now, hour=10, zone=PARIS, late=timedelta(hours=24)) == datetime(2026, 11, 29, 9, tzinfo=UTC)


def test_a_negative_hour_is_no_digest() -> None:
    assert digest_due(NOW, hour=-1, zone=UTC) is None


def test_the_day_spans_23_or_25_hours_across_daylight_saving() -> None:
    spring = digest_due(datetime(2026, 3, 29, 12, tzinfo=UTC), hour=10, zone=PARIS)
    autumn = digest_due(datetime(2026, 10, 25, 12, tzinfo=UTC), hour=10, zone=PARIS)
    assert spring is not None and autumn is not None
    for end, hours in ((spring, 23), (autumn, 25)):
        start, until = day_ending(end, PARIS)
        assert until - start == timedelta(hours=hours)
        assert start.astimezone(PARIS).hour == 10 and start.tzinfo is UTC


def test_the_plan_comes_from_the_settings() -> None:
    plan = DigestPlan.from_settings(Settings(digest_hour=7, digest_tz="Europe/Paris", slack_channel="C1"), ACCOUNTS)
    assert plan is not None and (plan.hour, str(plan.zone), plan.channels()) == (7, "Europe/Paris", ["C-ACME", "C1"])
    assert DigestPlan.from_settings(Settings(digest_hour=-1), ACCOUNTS) is None
    assert DigestPlan.from_settings(Settings(digest_hour=None), ACCOUNTS) is None
    assert zone_of("UTC") is UTC
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        zone_of("Mars/Olympus")


async def test_a_campaign_of_a_vendor_no_longer_registered_goes_to_the_default_channel(
        state: tuple[StateStore, list[Outbox]]) -> None:
    store, _ = state
    async with store.transaction() as tx:
        await tx.add_audit(AuditRow(_ago(1), "failure", "mailchimp:1", None, "pause", "failed", "gone"))
    digests = await collect(store, accounts=ACCOUNTS, channel="C-DEFAULT", start=START, end=NOW, zone=PARIS)
    assert _lines(digests["C-DEFAULT"]) == {"warnings": [("mailchimp:1", "failed: gone")]}
    assert digests["C-ACME"].quiet


def test_the_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import load_settings

    monkeypatch.setenv("BOT_DIGEST_HOUR", "")
    monkeypatch.setenv("BOT_DIGEST_TZ", "")
    settings = load_settings()
    assert (settings.digest_hour, settings.digest_tz) == (None, "UTC")          # Compose's `${X:-}`: unset
    monkeypatch.delenv("BOT_DIGEST_HOUR")
    assert load_settings().digest_hour == 9
    monkeypatch.setenv("BOT_DIGEST_HOUR", "24")
    monkeypatch.setenv("BOT_DIGEST_TZ", "Europe/Pariss")
    with pytest.raises(ConfigError) as bad:
        load_settings()
    assert "BOT_DIGEST_HOUR: Input should be less than or equal to 23" in str(bad.value)
    assert "BOT_DIGEST_TZ: must be an IANA time zone, e.g. Europe/Paris or UTC" in str(bad.value)


async def test_the_fleet_duty_queues_each_channels_digest_once(state: tuple[StateStore, list[Outbox]]) -> None:
    """The wiring the service is to add (bot.fleet.Duties.run("digest", ..., partial(send_digest, ...))), on two
    workers' duty runners: rounds come and go, each channel gets one digest."""
    store, outboxes = state
    plan = DigestPlan((datetime.now(UTC) - timedelta(hours=1)).hour, UTC, "C-DEFAULT", ACCOUNTS)   # due now
    rounds = asyncio.Event()
    calls: list[list[str]] = []

    async def duty(outbox: Outbox) -> None:
        calls.append(await send_digest(store, outbox, plan))
        if len(calls) >= 6:
            rounds.set()

    leases = MemoryLeases()
    fleet = [Duties(leases, holder, seconds=3.0) for holder in ("worker-a", "worker-b")]
    tasks = [asyncio.create_task(runner.run("digest", 0.01, partial(duty, outbox), first=True))
             for runner, outbox in zip(fleet, outboxes, strict=True)]
    try:
        async with asyncio.timeout(10):
            await rounds.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(channel for queued in calls for channel in queued) == ["C-ACME", "C-DEFAULT"]
    day = _day(plan)
    assert sorted(i.key or "" for i in await outboxes[0].items()) == [f"digest:C-ACME:{day}", f"digest:C-DEFAULT:{day}"]


def _day(plan: DigestPlan) -> str:
    end = digest_due(datetime.now(UTC), hour=plan.hour, zone=plan.zone)
    assert end is not None
    return end.date().isoformat()
