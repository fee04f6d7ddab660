"""`campaign-guard` command line: run | web | worker | simulate | demo | audit | decisions | replay | rules."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config import Settings, load_settings
from bot.errors import BotError, ConfigError
from bot.log import configure_logging

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campaign-guard",
        description="Pause and resume outreach campaigns when the numbers go bad. Settings: BOT_* variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="web receiver and worker in one process (default: embedded broker, SQLite)")
    sub.add_parser("web", help="web receiver only (needs BOT_BROKER_URL=amqp://...)")
    sub.add_parser("worker", help="worker only (needs BOT_BROKER_URL=amqp://...)")
    simulate = sub.add_parser("simulate", help="serve the vendor simulator (Smartlead, Leadterra, Inbox)")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8090)
    sub.add_parser("demo", help="start the simulator and the bot, play a bounce spike, show what happened")
    audit = sub.add_parser("audit", help="list decisions and actions from the state database")
    audit.add_argument("--campaign", help="only this campaign, written vendor:id")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.add_argument("--export-events", action="store_true",
                       help="write the recorded events as JSON lines instead (input of `rules test --events`)")
    decisions = sub.add_parser("decisions", help="pauses parked by the blast-radius breaker: list, approve, reject")
    decisions.add_argument("verb", nargs="?", choices=["list", "approve", "reject"], default="list")
    decisions.add_argument("id", nargs="?", type=int, help="decision number (for approve/reject)")
    decisions.add_argument("--by", default="cli", help="who decides (recorded in the audit log)")
    rules = sub.add_parser("rules", help="rule file tools")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rules_sub.add_parser("check", help="validate every rule file in DIR")
    check.add_argument("dir", type=Path)
    test = rules_sub.add_parser("test", help="backtest: replay recorded events through the rules in DIR, offline")
    test.add_argument("dir", type=Path)
    test.add_argument("--events", required=True, metavar="FILE", help="JSON lines of canonical events, - for stdin")
    test.add_argument("--inventory", type=Path, metavar="FILE", help="campaign inventory (as BOT_INVENTORY_FILE)")
    test.add_argument("--json", action="store_true", help="the report as one JSON document")
    replay = sub.add_parser("replay", help="republish dead-lettered messages to the work queue (needs amqp://)")
    replay.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    replay.add_argument("--dry-run", action="store_true", help="list them; leave them in the dead-letter queue")
    return parser


def _rules_check(directory: Path) -> int:
    from bot.ruleset import load_rules

    ruleset = load_rules(directory)
    for rule in ruleset.rules:
        print(f"ok  {rule.name:<32} {rule.mode:<8} on {', '.join(rule.on)}")
    print(f"{len(ruleset)} rule(s) valid in {directory}")
    return 0


async def _audit(
    settings: Settings, *, campaign: str | None, limit: int, as_json: bool, export: bool = False
) -> int:
    from bot.events import CampaignRef
    from bot.state.sqlite import SqliteStateStore

    if campaign is not None:
        try:
            campaign = str(CampaignRef.parse(campaign))
        except ValueError as exc:
            raise ConfigError(f"--campaign: {exc}") from None
    if not settings.state_path.exists():
        raise ConfigError(f"no state database at {settings.state_path} (BOT_STATE_URL); nothing recorded yet")
    async with SqliteStateStore.open(settings.state_path) as store:
        if export:
            async for line in store.events(campaign=campaign):
                print(line)
            return 0
        rows = await store.audit(campaign=campaign, limit=limit)
    for row in rows:
        if as_json:
            print(json.dumps({"id": row.id, "at": row.at.isoformat(), "kind": row.kind, "campaign": row.campaign,
                              "rule": row.rule, "action": row.action, "outcome": row.outcome,
                              "detail": row.detail, "event_ids": list(row.event_ids), "inputs": row.inputs}))
        else:
            print(f"{row.at:%Y-%m-%d %H:%M:%S}  {row.campaign or '-':<28} {row.kind:<8} {row.action:<8} "
                  f"{row.outcome:<12} {row.rule or '':<16} {row.detail}")
    if not rows and not as_json:
        print("no audit records" + (f" for {campaign}" if campaign else ""))
    return 0


async def _decisions(settings: Settings, verb: str, decision_id: int | None, *, by: str) -> int:
    """List parked decisions, or approve/reject one (the running worker's sweep acts on an approval)."""
    from bot.events import utcnow
    from bot.executor import Executor
    from bot.state.sqlite import SqliteStateStore

    if verb != "list" and decision_id is None:
        raise ConfigError(f"decisions {verb} needs a decision number (see `campaign-guard decisions`)")
    if not settings.state_path.exists():
        raise ConfigError(f"no state database at {settings.state_path} (BOT_STATE_URL)")
    async with SqliteStateStore.open(settings.state_path) as store:
        executor = Executor(store, {})
        async with store.transaction() as tx:
            if verb == "list":
                pending = await tx.pending(status="pending")
                for item in pending:
                    print(f"#{item.id:<5} {item.hold.campaign:<28} {item.hold.owner:<28} expires "
                          f"{item.expires_at:%Y-%m-%d %H:%M} UTC  {item.hold.reason}")
                print(f"{len(pending)} decision(s) waiting for approval")
                return 0
            assert decision_id is not None
            act = executor.approve_pending if verb == "approve" else executor.reject_pending
            ref = await act(tx, decision_id, by=f"cli:{by}", now=utcnow())
    print(f"decision #{decision_id} {verb}d for {ref}" + (
        "; the running worker pauses it within BOT_SWEEP_SECONDS" if verb == "approve" else ""))
    return 0


def _run_fast(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived service on uvloop (libuv's event loop: measurably cheaper sockets and callbacks
    under load, see README "Performance"); the standard loop where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # e.g. on a platform uvloop does not support
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "rules" and args.rules_command == "test":
        from bot.backtest_text import rules_test

        return rules_test(args.dir, args.events, as_json=args.json, inventory=args.inventory)
    if args.command == "rules":
        return _rules_check(args.dir)
    if args.command == "simulate":
        from bot.testing import run_simulator

        asyncio.run(run_simulator(args.host, args.port))
        return 0
    settings = load_settings()
    if args.command == "decisions":
        return asyncio.run(_decisions(settings, args.verb, args.id, by=args.by))
    if args.command == "audit":
        return asyncio.run(_audit(settings, campaign=args.campaign, limit=args.limit, as_json=args.json,
                                  export=args.export_events))
    if args.command == "replay":
        from bot.replay import replay

        return asyncio.run(replay(settings, limit=args.limit, dry_run=args.dry_run))
    if args.command == "demo":
        from bot.demo import run_demo

        return asyncio.run(run_demo(settings))
    from bot.service import serve_until_stopped

    if args.command in ("web", "worker") and settings.uses_memory_broker:
        raise ConfigError(f"`{args.command}` alone needs a shared broker: set BOT_BROKER_URL=amqp://... "
                          "(the embedded memory:// broker only works with `run`)")
    _run_fast(serve_until_stopped(
        settings, with_web=args.command in ("run", "web"), with_worker=args.command in ("run", "worker")
    ))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings_for_logs = Settings()
        json_logs, level = settings_for_logs.log_json, settings_for_logs.log_level
    except ValidationError:  # reported properly by load_settings() below
        json_logs, level = True, "info"
    # Commands whose stdout is their output (reports, JSON lines) log errors only, to stderr.
    quiet = args.command in ("rules", "audit", "replay")
    configure_logging(json=json_logs, level="error" if quiet else level, stream=sys.stderr if quiet else None)
    try:
        return _dispatch(args)
    except BotError as exc:
        print(f"campaign-guard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
