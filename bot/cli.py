"""`campaign-guard` command line: run | web | worker | healthcheck | simulate | demo | audit | decisions | digest |
replay | rules | db."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

from bot.config import Settings, load_settings
from bot.errors import BotError, ConfigError
from bot.log import configure_logging

__all__ = ["main"]


_SETTINGS_HINT = "Every setting is a BOT_* environment variable; README \"Configuration\" lists them all."
_BROKER_STATE = """\
  BOT_BROKER_URL          memory:// (embedded, `run` only) or amqp://user:pass@host:5672/vhost
  BOT_BROKER_PREFIX       prefix of every exchange and queue name (campaign-guard)"""
_STATE = """\
  BOT_STATE_URL           SQLite file, sqlite:///.campaign-guard/state.db (one worker per file),
                          or PostgreSQL, postgresql://user:pass@host:5432/db (a fleet of workers)
  BOT_RULES_DIR           directory of rule files (rules)"""
_WEB = """\
  BOT_HTTP_HOST, BOT_HTTP_PORT   where the web receiver listens (127.0.0.1, 8080)
  BOT_WEBHOOK_TOKEN       token of /webhooks/events, /webhooks/inbox (and Smartlead, Instantly, lemlist, alerts)
  BOT_INSTANTLY_WEBHOOK_SECRET   X-Campaign-Guard-Token of /webhooks/instantly
  BOT_LEMLIST_WEBHOOK_SECRET     ?token= (or X-Lemlist-Token) of /webhooks/lemlist
  BOT_SMARTLEAD_WEBHOOK_SECRET, BOT_LEADTERRA_WEBHOOK_SECRET   vendor webhook signatures
  BOT_ALERTMANAGER_TOKEN, BOT_GRAFANA_WEBHOOK_SECRET          alert webhooks
  BOT_SLACK_SIGNING_SECRET                                    /slack/commands, /slack/interactions
  (a webhook whose secret is unset answers 401)"""
_WORKER = """\
  BOT_DRY_RUN             record decisions, call no vendor (a vendor without an API key is always dry-run)
  BOT_SMARTLEAD_API_KEY, BOT_LEADTERRA_API_KEY, BOT_INBOX_API_KEY,
  BOT_INSTANTLY_API_KEY, BOT_LEMLIST_API_KEY                        vendor API keys
  BOT_SLACK_BOT_TOKEN, BOT_SLACK_CHANNEL                            Slack notices
  BOT_INVENTORY_FILE      campaign → sender emails the vendors do not report
  BOT_POLL_SECONDS, BOT_POLL_SHARE                                  vendor analytics and mailbox health polls
  BOT_DIGEST_HOUR, BOT_DIGEST_TZ                                    each Slack channel's daily digest
  BOT_PREFETCH, BOT_BATCH_SIZE, BOT_RETRY_DELAYS, BOT_SWEEP_SECONDS, BOT_BREAKER_LIMIT, BOT_BREAKER_WINDOW"""


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions; keeps multi-line text (the settings epilogs) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _epilog(*sections: str) -> str:
    return "main settings:\n" + "\n".join(sections) + "\n\n" + _SETTINGS_HINT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campaign-guard",
        description="Pause and resume outreach campaigns when the numbers go bad. Settings: BOT_* variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    raw = _HelpFormatter
    sub.add_parser(
        "run", help="web receiver and worker in one process (default: embedded broker, SQLite)", formatter_class=raw,
        description="Run the web receiver (webhooks, Slack, /healthz, /readyz, /metrics) and the worker (rules, "
                    "holds, vendor calls) in one process until SIGTERM/SIGINT. With the default "
                    "BOT_BROKER_URL=memory:// the broker is embedded: nothing queued survives the process.",
        epilog=_epilog(_BROKER_STATE, _STATE, _WEB, _WORKER))
    sub.add_parser(
        "web", help="web receiver only (needs BOT_BROKER_URL=amqp://...)", formatter_class=raw,
        description="Run the web receiver only: authenticate, normalize and publish webhooks and Slack requests "
                    "to RabbitMQ (202 once confirmed). Stateless: run as many as you like. Needs "
                    "BOT_BROKER_URL=amqp://...; a `worker` consumes what it publishes.",
        epilog=_epilog(_BROKER_STATE, _WEB))
    sub.add_parser(
        "worker", help="worker only (needs BOT_BROKER_URL=amqp://...)", formatter_class=raw,
        description="Run the worker only: consume events from RabbitMQ, apply the rules, place holds and call "
                    "the vendors. One worker per SQLite database: a second one on the same BOT_STATE_URL refuses "
                    "to start; on PostgreSQL run as many as you like. `campaign-guard healthcheck` tells whether "
                    "it is alive.",
        epilog=_epilog(_BROKER_STATE, _STATE, _WORKER))
    health = sub.add_parser(
        "healthcheck", help="exit 0 when a worker on BOT_STATE_URL is alive (for container health checks)",
        formatter_class=raw,
        description="Check the worker of the state database named by BOT_STATE_URL: it holds the database's "
                    "worker lock and touched it (its heartbeat, once per BOT_SWEEP_SECONDS) recently; with "
                    "PostgreSQL, a worker of this host wrote its heartbeat row recently. Prints one line; exit 0 "
                    "when alive, 1 when not. Takes no lock (and opens no SQLite database).")
    health.add_argument("--max-age", type=float, metavar="SECONDS",
                        help="oldest acceptable heartbeat (default: 3 x BOT_SWEEP_SECONDS + 60)")
    simulate = sub.add_parser("simulate", help="serve the vendor simulator (Smartlead, Leadterra, Inbox)")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8090)
    sub.add_parser(
        "demo", help="start the simulator and the bot, play a bounce spike, show what happened", formatter_class=raw,
        description="Start the vendor simulator and the bot (web and worker in one process, a throw-away state "
                    "database), play a bounce spike through signed Smartlead webhooks (each delivered twice), "
                    "then print the vendor calls the bot made and the audit trail explaining them. Touches no "
                    "real vendor: the vendors' base URLs and keys are the simulator's.",
        epilog="main settings:\n  BOT_RULES_DIR           the rules played (rules)\n"
               "  BOT_BROKER_URL          memory:// (default) or a RabbitMQ (a fresh prefix per demo)\n"
               "  (state, HTTP port, vendor URLs, keys and secrets are the demo's own)\n\n" + _SETTINGS_HINT)
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
    digest = sub.add_parser(
        "digest", help="the daily digest of the last 24 hours, as each Slack channel would get it",
        description="Print the daily digest (what was paused and why, what resumed, pauses waiting for approval, "
                    "unhealthy mailboxes, warnings, shadow-mode decisions) of the last 24 hours, read from the "
                    "state database (BOT_STATE_URL): one per Slack channel, times in BOT_DIGEST_TZ.")
    digest.add_argument("--account", metavar="NAME", help="only this account's campaigns and mailboxes "
                                                         "(its name, or vendor@name)")
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
    db = sub.add_parser("db", help="state database tools")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    db_sub.add_parser(
        "upgrade", help="create or upgrade the schema of the state database (BOT_STATE_URL)",
        description="Create the tables of the state database named by BOT_STATE_URL, or bring them up to date; "
                    "safe to run while workers run, and by several processes at once. Workers do it too when "
                    "they start: run it first to upgrade a fleet before rolling it out.")
    return parser


def _rules_check(directory: Path) -> int:
    from bot.ruleset import load_rules

    ruleset = load_rules(directory)
    for rule in ruleset.rules:
        print(f"ok  {rule.name:<32} {rule.mode:<8} on {', '.join(rule.on)}")
    print(f"{len(ruleset)} rule(s) valid in {directory}")
    return 0


def _campaign_option(text: str) -> str:
    """A `--campaign` value as `vendor:id`; ConfigError (one line) naming the expected form otherwise."""
    from bot.events import VENDORS, CampaignRef

    try:
        return str(CampaignRef.parse(text.strip()))
    except ValidationError as exc:
        problem = str(exc.errors()[0]["msg"]).removeprefix("Value error, ") if exc.errors() else "invalid"
    raise ConfigError(f"--campaign {text[:80]!r}: expected vendor:id with vendor one of {', '.join(sorted(VENDORS))}"
                      f" (e.g. smartlead:123, leadterra:camp_123, inbox:abc123): {problem}")


def _healthcheck(settings: Settings, max_age: float | None) -> int:
    from bot.state.open import check_worker, state_name

    limit = max_age if max_age is not None else 3 * settings.sweep_seconds + 60
    problem = check_worker(settings, max_age=limit)
    if problem is not None:
        print(f"campaign-guard: worker unhealthy: {problem}", file=sys.stderr)
        return 1
    print(f"worker alive on {state_name(settings)}")
    return 0


def _no_sqlite_database(settings: Settings) -> None:
    """ConfigError when BOT_STATE_URL names a SQLite file that does not exist (reading never creates it)."""
    if not settings.uses_postgres and not settings.state_path.exists():
        raise ConfigError(f"no state database at {settings.state_path} (BOT_STATE_URL); nothing recorded yet")


async def _db_upgrade(settings: Settings) -> int:
    from bot.state.open import upgrade_state

    print(await upgrade_state(settings))
    return 0


async def _audit(
    settings: Settings, *, campaign: str | None, limit: int, as_json: bool, export: bool = False
) -> int:
    from bot.state.open import open_store

    if campaign is not None:
        campaign = _campaign_option(campaign)
    _no_sqlite_database(settings)
    async with open_store(settings) as store:
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
    from bot.state.open import open_store

    if verb != "list" and decision_id is None:
        raise ConfigError(f"decisions {verb} needs a decision number (see `campaign-guard decisions`)")
    _no_sqlite_database(settings)
    async with open_store(settings) as store:
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


async def _digest(settings: Settings, account: str | None) -> int:
    """Print each channel's digest of the last 24 hours (bot.digest), or one account's."""
    from bot.accounts import load_accounts
    from bot.digest import collect, zone_of
    from bot.events import utcnow
    from bot.slack.daily import daily_text
    from bot.state.open import open_store

    accounts = load_accounts(settings)
    routes = None
    if account is not None:
        routes = frozenset(a.route for a in accounts if account in (a.name, a.route))
        if not routes:
            names = ", ".join(sorted(a.route for a in accounts)) or "none"
            raise ConfigError(f"--account {account!r}: no such account (configured: {names})")
    _no_sqlite_database(settings)
    end = utcnow()
    async with open_store(settings) as store:
        digests = await collect(store, accounts=accounts, channel=settings.slack_channel,
                                start=end - timedelta(days=1), end=end, zone=zone_of(settings.digest_tz),
                                routes=routes)
    print("\n\n".join(daily_text(digest) for digest in digests.values()))
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
    if args.command == "healthcheck":
        return _healthcheck(settings, args.max_age)
    if args.command == "db":
        return asyncio.run(_db_upgrade(settings))
    if args.command == "decisions":
        return asyncio.run(_decisions(settings, args.verb, args.id, by=args.by))
    if args.command == "digest":
        return asyncio.run(_digest(settings, args.account))
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
    except (ValidationError, SettingsError):  # reported properly (one line) by load_settings() below
        json_logs, level = True, "info"
    # Commands whose stdout is their output (reports, JSON lines) log errors only, to stderr.
    quiet = args.command in ("rules", "audit", "replay", "healthcheck", "db", "digest")
    configure_logging(json=json_logs, level="error" if quiet else level, stream=sys.stderr if quiet else None)
    try:
        return _dispatch(args)
    except BotError as exc:
        print(f"campaign-guard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
