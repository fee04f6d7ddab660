"""Backtest on recorded polls (tests/backtest/fixtures/polls.jsonl, see make_polls.py): the rules on polled
`campaign.metrics` and `account.health` events, on a virtual clock with the worker's sweeps, give exactly the
expected decisions and vendor actions."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.backtest import BacktestReport, read_events, run_backtest
from bot.events import Event
from tests.backtest.make_polls import FIXTURE, INVENTORY, generate
from tests.conftest import REPO

RunCli = Callable[[list[str]], int]


def _t(day: int, hms: str) -> datetime:
    h, m, s = map(int, hms.split(":"))
    return datetime(2026, 11, day, h, m, s, tzinfo=UTC)


#: (rule, campaign, action, outcome, virtual time) of every decision the shipped rules record on the polls
EXPECTED = {
    # the analytics see 2003's bounces first (bounced / sent: no bounce_rate given): 2/52 = 3.8%, from 50 sends
    ("bounce-guard-analytics", "smartlead:2003", "pause", "hold_placed", _t(9, "03:00:00")),
    # the webhooks see 2002's first: a warning at 2%, the pause at 3% of the last 200 sends; the vendor's own
    # lifetime rate crosses 3% at 400 sends (09:45 on day 1): under the same hold, nothing new
    ("bounce-guard", "smartlead:2002", "notify", "warned", _t(9, "14:55:20")),
    ("bounce-guard", "smartlead:2002", "pause", "hold_placed", _t(9, "17:25:20")),
    # bo's reputation 65: pause; 85 from 15:00, but no poll 17:45-19:30: the 6 healthy hours count from 19:45
    ("mailbox-health", "smartlead:2001", "pause", "hold_placed", _t(9, "05:00:00")),
    ("mailbox-health", "smartlead:2001", "release", "hold_removed", _t(10, "01:45:00")),
    # ana (smartlead@acme) fails SMTP at 10:00 and 10:15: acme's campaigns only, released 6 h after 10:30
    ("mailbox-health", "smartlead@acme:2005", "pause", "hold_placed", _t(9, "10:00:00")),
    ("mailbox-health", "smartlead@acme:2008", "pause", "hold_placed", _t(9, "10:00:00")),
    ("mailbox-health", "smartlead@acme:2005", "release", "hold_removed", _t(9, "16:30:00")),
    ("mailbox-health", "smartlead@acme:2008", "release", "hold_removed", _t(9, "16:30:00")),
    # no reply: 48 h after the start (analytics) or after the first send seen (webhooks, shadow)
    ("no-outcome-analytics", "smartlead@acme:2005", "pause", "hold_placed", _t(11, "00:00:00")),
    ("no-outcome-analytics", "smartlead:2002", "pause", "hold_placed", _t(11, "00:00:00")),
    ("no-outcome", "smartlead:2002", "pause", "would_pause", _t(11, "00:01:00")),
}
VENDOR_ACTIONS = [
    (_t(9, "03:00:00"), "smartlead:2003", "pause", "paused"),
    (_t(9, "05:00:00"), "smartlead:2001", "pause", "paused"),
    (_t(9, "10:00:00"), "smartlead@acme:2005", "pause", "paused"),
    (_t(9, "10:00:00"), "smartlead@acme:2008", "pause", "paused"),
    (_t(9, "16:30:00"), "smartlead@acme:2005", "resume", "resumed"),
    (_t(9, "16:30:00"), "smartlead@acme:2008", "resume", "resumed"),
    (_t(9, "17:25:20"), "smartlead:2002", "pause", "paused"),
    (_t(10, "01:45:00"), "smartlead:2001", "resume", "resumed"),
    (_t(11, "00:00:00"), "smartlead@acme:2005", "pause", "paused"),
]


@pytest.fixture(scope="module")
def events() -> list[Event]:
    with FIXTURE.open(encoding="utf-8") as lines:
        return list(read_events(lines))


@pytest.fixture(scope="module")
def report(events: list[Event]) -> BacktestReport:
    return run_backtest(REPO / "rules", events, inventory=INVENTORY)


def _decided(report: BacktestReport) -> set[tuple[object, ...]]:
    return {(d.rule, d.campaign, d.action, d.outcome, d.at) for d in report.decisions}


def test_fixture_is_exactly_what_the_script_generates() -> None:
    assert FIXTURE.read_text(encoding="utf-8").splitlines() == generate()


def test_the_shipped_rules_decide_exactly_the_expected_on_the_polls(report: BacktestReport) -> None:
    assert _decided(report) == EXPECTED
    assert [(a.at, a.campaign, a.action, a.outcome) for a in report.actions] == VENDOR_ACTIONS
    assert (report.events_read, report.events_new, report.rejected) == (3581, 3581, [])
    assert report.by_type["campaign.metrics"] == 7 * 200 and report.by_type["account.health"] == 3 * 200 - 8


def test_one_bounce_hold_per_campaign_whichever_rule_sees_it_first(report: BacktestReport) -> None:
    bounce = [d for d in report.decisions if d.rule.startswith("bounce-guard") and d.action == "pause"]
    assert sorted((d.campaign, d.rule) for d in bounce) == [("smartlead:2002", "bounce-guard"),
                                                            ("smartlead:2003", "bounce-guard-analytics")]
    paused = [a.campaign for a in report.actions if a.action == "pause"]
    assert paused.count("smartlead:2002") == 1 and paused.count("smartlead:2003") == 1


def test_the_analytics_take_the_vendors_rate_else_bounced_over_sent(report: BacktestReport) -> None:
    (analytics,) = [d for d in report.decisions if d.rule == "bounce-guard-analytics"]
    assert analytics.value == round(2 / 52, 6) and analytics.threshold == {"gte": 0.03}
    assert analytics.detail == "bounce rate 3.8% by the vendor's own analytics (2 bounced, 52 sent)"


def test_mailbox_releases_are_taken_on_the_clock(report: BacktestReport) -> None:
    releases = [d for d in report.decisions if d.action == "release"]
    assert {d.trigger for d in releases} == {"clock"} and len(releases) == 3
    assert all(d.threshold == {"eq": 0} for d in releases)              # the release threshold


def test_without_the_gap_rule_the_release_would_come_at_the_six_hours_after_15_00(events: list[Event],
                                                                                  tmp_path: Path) -> None:
    """The `max_age: 1h` of mailbox-health is what holds bo's campaign through the missing polls."""
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (REPO / "rules" / "mailbox-health.yaml").read_text().replace("  max_age: 1h\n", "")
    (rules / "mailbox-health.yaml").write_text(text)
    released = {(d.campaign, d.at) for d in run_backtest(rules, events, inventory=INVENTORY).decisions
                if d.action == "release"}
    assert ("smartlead:2001", _t(9, "21:00:00")) in released


def test_without_the_route_the_default_accounts_campaign_would_be_paused_too(events: list[Event],
                                                                             report: BacktestReport,
                                                                             tmp_path: Path) -> None:
    """ana's acme mailbox also sends for the default account's smartlead:2001 in the inventory: only the
    route in `data.route` keeps her acme trouble off it."""
    stripped = [e.model_copy(update={"data": {k: v for k, v in e.data.items() if k != "route"}})
                if e.type == "account.health" else e for e in events]
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(REPO / "rules" / "mailbox-health.yaml", rules)
    paused = {(d.campaign, d.at) for d in run_backtest(rules, stripped, inventory=INVENTORY).decisions
              if d.action == "pause"}
    assert ("smartlead:2001", _t(9, "10:00:00")) in paused          # a second hold on it (bo's holds it too)
    assert ("smartlead:2001", _t(9, "10:00:00")) not in {(d.campaign, d.at) for d in report.decisions}


def test_cli_backtest_on_recorded_polls(run_cli: RunCli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("campaigns:\n" + "".join(f"  {ref}: [{', '.join(senders)}]\n"
                                                  for ref, senders in INVENTORY.items()))
    assert run_cli(["rules", "test", str(REPO / "rules"), "--events", str(FIXTURE), "--inventory",
                    str(inventory)]) == 0
    out = capsys.readouterr().out
    assert ("    smartlead@acme:2005          2026-11-09 16:30:00  release  hold_removed value 0 (eq 0)            "
            " [on the clock] mailbox-health: recovered to 0 (release at eq 0) for 6:00:00") in out
    assert "mailbox ana@acme-mail.example unhealthy: smtp_ok eq false" in out
    assert run_cli(["rules", "test", str(REPO / "rules"), "--events", str(FIXTURE), "--inventory", str(inventory),
                    "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["campaigns_paused"] == 5 and report["totals"]["campaigns_resumed"] == 3
    assert report["notices"] == {"paused": 6, "resumed": 3, "shadow": 1, "warning": 1}
