"""Backtest: three recorded days through the shipped bounce-guard rule give exactly the expected decisions
(its pauses and its warnings), checked against a naive recount of the recorded events."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.backtest import BacktestReport, read_events, run_backtest
from bot.errors import PayloadError
from bot.events import Event
from bot.state.sqlite import SqliteStateStore
from tests.backtest.conftest import FIXTURE
from tests.backtest.make_fixture import generate
from tests.conftest import REPO

RunCli = Callable[[list[str]], int]
FIRST_LINE = FIXTURE.read_text(encoding="utf-8").partition("\n")[0]


def _t(day: int, hms: str) -> datetime:
    h, m, s = map(int, hms.split(":"))
    return datetime(2026, 11, day, h, m, s, tzinfo=UTC)


#: (rule, campaign, action, virtual time, numerator, denominator): checked independently by a naive
#: recount (last 200 sends per campaign and the bounces since the oldest of them, from 50 sends on).
BOUNCE_GUARD = {
    ("bounce-guard", "smartlead:1004", "pause", _t(2, "19:36:10"), 3, 80),        # late bounces after a person paused
    ("bounce-guard", "leadterra:camp_spike", "pause", _t(3, "10:20:55"), 4, 124),
    ("bounce-guard", "smartlead:1002", "pause", _t(3, "17:13:51"), 6, 200),       # exactly 3.0%
}
#: its warnings (2% from 100 sends, once per episode; an episode ends under 1.5% or at the pause): smartlead:1003
#: hovers at 2-2.5% and warns once; smartlead:1004 goes from under 100 sends straight to its pause
BOUNCE_WARNINGS = {
    ("bounce-guard", "smartlead:1003", "notify", _t(2, "12:58:15"), 2, 100),
    ("bounce-guard", "leadterra:camp_spike", "notify", _t(3, "09:31:48"), 3, 116),
    ("bounce-guard", "smartlead:1002", "notify", _t(3, "14:58:04"), 4, 200),
}
VENDOR_ACTIONS = [
    (_t(2, "19:36:10"), "smartlead:1004", "pause", "skipped"),      # someone else's pause: never claimed
    (_t(3, "10:20:55"), "leadterra:camp_spike", "pause", "paused"),
    (_t(3, "17:13:51"), "smartlead:1002", "pause", "paused"),
]


@pytest.fixture(scope="module")
def events() -> list[Event]:
    with FIXTURE.open(encoding="utf-8") as lines:
        return list(read_events(lines))


@pytest.fixture
def bounce_rules(tmp_path: Path) -> Path:
    """Only the shipped bounce-guard rule (other rules in rules/ have their own expectations)."""
    directory = tmp_path / "rules"
    directory.mkdir()
    shutil.copy(REPO / "rules" / "bounce-guard.yaml", directory)
    return directory


def _decided(report: BacktestReport, rule: str = "bounce-guard") -> set[tuple[object, ...]]:
    return {(d.rule, d.campaign, d.action, d.at, d.numerator, d.denominator) for d in report.decisions
            if d.rule == rule}


def _naive_bounce_guard(events: list[Event]) -> set[tuple[object, ...]]:
    """bounce-guard's pauses and warnings recounted from scratch: per campaign, the last 200 sends and the
    bounces since the oldest of them; pause at >= 3% from 50 sends; warn at >= 2% from 100 sends, once until
    the rate is under 1.5%; nothing more once paused (the campaign is held)."""
    seen: set[str] = set()
    entries: dict[str, list[str]] = {}
    warned: set[str] = set()
    paused: set[str] = set()
    found: set[tuple[object, ...]] = set()
    for event in sorted(events, key=lambda e: e.occurred_at):
        if event.id in seen or event.campaign is None or event.campaign.vendor == "inbox":
            continue
        seen.add(event.id)
        ref = str(event.campaign)
        if event.type not in ("email.sent", "email.bounced") or ref in paused:
            continue
        entries.setdefault(ref, []).append("send" if event.type == "email.sent" else "bounce")
        sends = [i for i, kind in enumerate(entries[ref]) if kind == "send"]
        window = entries[ref][sends[-200]:] if len(sends) >= 200 else entries[ref]
        bounces, sent = window.count("bounce"), window.count("send")
        rate = bounces / sent if sent else 0.0
        if sent >= 50 and rate >= 0.03:
            paused.add(ref)
            found.add(("bounce-guard", ref, "pause", event.occurred_at, bounces, sent))
        elif sent >= 100 and rate >= 0.02 and ref not in warned:
            warned.add(ref)
            found.add(("bounce-guard", ref, "notify", event.occurred_at, bounces, sent))
        elif sent >= 100 and rate < 0.015:
            warned.discard(ref)
    return found


def test_fixture_is_exactly_what_the_script_generates() -> None:
    assert FIXTURE.read_text(encoding="utf-8").splitlines() == generate()


def test_the_expectations_are_a_naive_recount_of_the_recorded_events(events: list[Event]) -> None:
    assert _naive_bounce_guard(events) == BOUNCE_GUARD | BOUNCE_WARNINGS


def test_bounce_guard_decisions_are_exactly_the_expected_ones(bounce_rules: Path, events: list[Event]) -> None:
    report = run_backtest(bounce_rules, events)
    assert _decided(report) == BOUNCE_GUARD | BOUNCE_WARNINGS
    assert {(d.action, d.outcome) for d in report.decisions} == {("pause", "hold_placed"), ("notify", "warned")}
    assert all(d.value == round(d.numerator / d.denominator, 6) for d in report.decisions)  # type: ignore[operator]
    assert {d.action: d.threshold for d in report.decisions} == {"pause": {"gte": 0.03}, "notify": {"gte": 0.02}}
    assert report.notices == {"paused": 2, "skipped": 1, "warning": 3}
    assert [(a.at, a.campaign, a.action, a.outcome) for a in report.actions] == VENDOR_ACTIONS
    assert (report.events_read, report.events_new, report.duplicates, report.rejected) == (3179, 3042, 137, [])
    assert report.unknown_types == 41 and report.by_type["email.bounced"] == 132
    assert (report.first_at, report.last_at) == (_t(2, "08:00:17"), _t(4, "22:44:41"))
    assert report.totals()["campaigns_paused"] == 2


def test_bounce_guard_decides_the_same_among_all_shipped_rules(events: list[Event]) -> None:
    report = run_backtest(REPO / "rules", events)
    assert _decided(report) == BOUNCE_GUARD | BOUNCE_WARNINGS
    assert not report.rejected


def test_order_follows_occurred_at_not_the_input(bounce_rules: Path, events: list[Event]) -> None:
    reordered = sorted(events, key=lambda e: e.id)          # any input order gives the same replay
    assert _decided(run_backtest(bounce_rules, reordered)) == BOUNCE_GUARD | BOUNCE_WARNINGS


def test_a_campaign_paused_at_the_vendor_is_not_paused_again(bounce_rules: Path) -> None:
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)

    def event(n: int, kind: str, **data: object) -> Event:
        return Event(id=f"e{n}", type=kind, source="smartlead", occurred_at=start + timedelta(minutes=n),
                     campaign="smartlead:7", data=data)

    spike = [event(n, "email.sent") for n in range(60)] + [event(60 + n, "email.bounced") for n in range(3)]
    paused_first = [Event(id="p", type="campaign.paused", source="events", occurred_at=start,
                          campaign="smartlead:7", data={"by": "user"}), *spike]
    assert [a.outcome for a in run_backtest(bounce_rules, spike).actions] == ["paused"]
    assert [a.outcome for a in run_backtest(bounce_rules, paused_first).actions] == ["skipped"]


def test_no_events_is_an_empty_report(bounce_rules: Path) -> None:
    report = run_backtest(bounce_rules, [])
    assert (report.events_read, report.decisions, report.actions) == (0, [], [])


def test_invalid_lines_name_their_line_number() -> None:
    lines = [FIRST_LINE, "", "{not json"]
    with pytest.raises(PayloadError, match=r"^events\.jsonl:3: not a canonical event: .*Invalid JSON"):
        list(read_events(lines, name="events.jsonl"))
    with pytest.raises(PayloadError, match=r":1: .*campaign"):
        list(read_events([('{"id": "x", "type": "email.sent", "source": "smartlead", '
                           '"occurred_at": "2026-11-02T08:00:00Z", "campaign": "smartlead:abc"}')]))


# CLI ----------------------------------------------------------------------------------------------------


def test_cli_prints_decisions_per_rule_and_campaign(run_cli: RunCli, bounce_rules: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["rules", "test", str(bounce_rules), "--events", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "on 3,179 event(s), virtual time 2026-11-02 08:00:17 → 2026-11-04 22:44:41 UTC" in out
    assert "3,042 new, 137 duplicate(s) ignored, 41 of an unknown type, 0 rejected" in out
    assert ("    smartlead:1002               2026-11-03 17:13:51  pause    hold_placed  6/200 = 0.03 (gte 0.03)"
            in out)
    assert ("    smartlead:1003               2026-11-02 12:58:15  notify   warned       2/100 = 0.02 (gte 0.02)    "
            "bounce rate 2.0% (2 bounces over the last 100 sends): pauses at 3%") in out
    assert "  2026-11-02 19:36:10  smartlead:1004               pause    skipped    already paused" in out
    assert ("Totals: decisions: notify/warned 3, pause/hold_placed 3; vendor actions: pause/paused 2, "
            "pause/skipped 1") in out


def test_cli_json_report(run_cli: RunCli, bounce_rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["rules", "test", str(bounce_rules), "--events", str(FIXTURE), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    decided = {(d["campaign"], d["action"], d["at"], d["numerator"], d["denominator"], d["value"])
               for d in report["decisions"]}
    assert ("smartlead:1002", "pause", "2026-11-03T17:13:51+00:00", 6, 200, 0.03) in decided
    assert ("smartlead:1002", "notify", "2026-11-03T14:58:04+00:00", 4, 200, 0.02) in decided and len(decided) == 6
    assert report["events"]["duplicates"] == 137 and report["rules"] == ["bounce-guard"]
    assert report["totals"]["vendor_actions"] == {"pause:paused": 2, "pause:skipped": 1}


def test_cli_bad_input_exits_2_with_the_line(run_cli: RunCli, bounce_rules: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(FIRST_LINE + "\n\n{\"id\": 1}\n")
    assert run_cli(["rules", "test", str(bounce_rules), "--events", str(bad)]) == 2
    assert f"campaign-guard: {bad}:3: not a canonical event" in capsys.readouterr().err
    assert run_cli(["rules", "test", str(bounce_rules), "--events", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read events" in capsys.readouterr().err
    assert run_cli(["rules", "test", str(tmp_path / "no-rules"), "--events", str(FIXTURE)]) == 2
    assert "rules directory does not exist" in capsys.readouterr().err


async def _record(path: Path, events: list[Event]) -> None:
    async with SqliteStateStore.open(path) as store, store.transaction() as tx:
        for event in events:
            await tx.record_event(event, event.occurred_at)


def test_audit_exports_recorded_events_for_a_backtest(run_cli: RunCli, bounce_rules: Path, events: list[Event],
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "state.db"
    asyncio.run(_record(db, events))
    monkeypatch.setenv("BOT_STATE_URL", f"sqlite:///{db}")
    assert run_cli(["audit", "--export-events", "--campaign", "smartlead:1004"]) == 0
    exported = capsys.readouterr().out.splitlines()
    assert len(exported) == len({e.id for e in events if str(e.campaign) == "smartlead:1004"})
    assert all(str(Event.model_validate_json(line).campaign) == "smartlead:1004" for line in exported)

    assert run_cli(["audit", "--export-events"]) == 0
    history = tmp_path / "history.jsonl"
    history.write_text(capsys.readouterr().out)
    assert run_cli(["rules", "test", str(bounce_rules), "--events", str(history), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["events"]["read"] == 3042 and report["events"]["duplicates"] == 0   # the store deduped
    assert {(d["campaign"], d["numerator"], d["denominator"]) for d in report["decisions"]} == {
        (c, n, d) for _, c, _, _, n, d in BOUNCE_GUARD | BOUNCE_WARNINGS}
