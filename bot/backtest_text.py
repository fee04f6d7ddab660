"""`campaign-guard rules test`: read the events file, run the backtest, print the report (text or JSON)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from bot.backtest import BacktestDecision, BacktestReport, read_events, run_backtest
from bot.errors import PayloadError
from bot.inventory import load_inventory_file

__all__ = ["render_json", "render_text", "rules_test"]


def _at(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _numbers(decision: BacktestDecision) -> str:
    text = ""
    if decision.numerator is not None and decision.denominator is not None and decision.denominator:
        text = f"{decision.numerator}/{decision.denominator}"
        text += f" = {decision.value:.4g}" if decision.value is not None else ""
    elif decision.value is not None:
        text = f"value {decision.value:.4g}"
    if decision.threshold:
        text += " (" + ", ".join(f"{op} {operand}" for op, operand in decision.threshold.items()) + ")"
    return text or "-"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key.replace(':', '/')} {n}" for key, n in counts.items()) or "none"


def render_text(report: BacktestReport, rules_dir: Path) -> str:
    """Per rule and campaign: what would have been paused and released, when, and the numbers."""
    lines = [
        (f"Backtest of {rules_dir} ({', '.join(report.rules) or 'no rules'}) on {report.events_read:,} event(s), "
         f"virtual time {_at(report.first_at)} → {_at(report.last_at)} UTC"),
        (f"  {report.events_new:,} new, {report.duplicates:,} duplicate(s) ignored, "
         f"{report.unknown_types:,} of an unknown type, {len(report.rejected):,} rejected"),
    ]
    lines += [f"  rejected {event_id}: {reason}" for event_id, reason in report.rejected]
    lines += ["", "Decisions per rule and campaign:"]
    by_rule: dict[str, list[BacktestDecision]] = {}
    for decision in report.decisions:
        by_rule.setdefault(decision.rule, []).append(decision)
    for rule in sorted(by_rule):
        lines.append(f"  {rule}")
        for d in sorted(by_rule[rule], key=lambda d: (d.campaign or "", d.at)):
            clock = "[on the clock] " if d.trigger == "clock" else ""
            lines.append(f"    {d.campaign or '-':<28} {_at(d.at)}  {d.action:<8} {d.outcome:<12} "
                         f"{_numbers(d):<26} {clock}{d.detail}")
    if not by_rule:
        lines.append("  none: no rule would have decided anything")
    lines += ["", "Vendor actions (virtual time):"]
    lines += [f"  {_at(a.at)}  {a.campaign or '-':<28} {a.action:<8} {a.outcome:<10} {a.detail}"
              for a in report.actions] or ["  none"]
    totals = report.totals()
    lines += ["", (f"Totals: decisions: {_counts(totals['decisions'])}; vendor actions: "
                   f"{_counts(totals['vendor_actions'])}; campaigns paused: {totals['campaigns_paused']}, "
                   f"resumed: {totals['campaigns_resumed']}")]
    return "\n".join(lines)


def render_json(report: BacktestReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True)


@contextmanager
def _opened(path: str) -> Iterator[IO[str]]:
    """The events file, or stdin for `-` (so `audit --export-events | rules test DIR --events -` works)."""
    if path == "-":
        yield sys.stdin
        return
    try:
        with Path(path).open(encoding="utf-8") as handle:
            yield handle
    except OSError as exc:
        raise PayloadError(f"{path}: cannot read events: {exc.strerror or exc}") from None


def rules_test(rules_dir: Path, events_path: str, *, as_json: bool, inventory: Path | None = None) -> int:
    """The `rules test` command. Bad rules, events or inventory raise BotError (the CLI exits 2)."""
    mapping = load_inventory_file(inventory) if inventory is not None else None
    with _opened(events_path) as lines:
        events = list(read_events(lines, name="<stdin>" if events_path == "-" else events_path))
    report = run_backtest(rules_dir, events, inventory=mapping)
    print(render_json(report) if as_json else render_text(report, rules_dir))
    return 0
