"""The daily digest: once a day, per Slack channel, what the last day held (issue 13).

For each channel (BOT_SLACK_CHANNEL, and every account's `slack_channel`), at BOT_DIGEST_HOUR o'clock in
BOT_DIGEST_TZ, one message about the day that ends then (from the same hour the day before): what was
paused and why, what resumed, the pauses waiting for approval (now), the mailboxes a poll found unhealthy
(`account.health` events with `data.healthy` false, bot.polling), the warnings (rule notices, failures, pauses
that were not campaign-guard's, drift, refusals, ...) and what shadow-mode rules would have done. Read from the
state (audit rows, parked decisions, recorded events) and rendered by bot.slack.daily; the campaigns of an
account go to its channel, the rest to the default one, as notices do.

Once per channel and day across a fleet: a digest is queued in the Slack outbox under the key
`digest:<channel>:<date>`, which the outbox takes once (whichever worker, however often the duty runs), and
delivered like any notice. `send_digest` is a fleet duty (bot.fleet.Duties: one worker at a time), run every
`DIGEST_CHECK_SECONDS`: cheap when nothing is due. A digest more than `LATE` overdue (the fleet was down at
the hour) is skipped, not sent in the middle of the next day. `campaign-guard digest` prints the same
content for the last 24 hours (bot.cli).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from bot.accounts import Accounts
from bot.config import CoreSettings
from bot.errors import ConfigError
from bot.events import CampaignRef, utcnow
from bot.slack.daily import SECTIONS, Digest, Line, Section, daily_message
from bot.state.base import AuditRow, PendingDecision
from bot.state.outbox import Outbox
from bot.state.protocol import StateStore

__all__ = ["DIGEST_CHECK_SECONDS", "LATE", "DigestPlan", "collect", "day_ending", "digest_due", "send_digest",
           "zone_of"]

log = structlog.get_logger(__name__)

#: how often the fleet duty looks whether a digest is due (seconds)
DIGEST_CHECK_SECONDS: Final = 60.0
#: a digest not queued within this long after its hour is skipped
LATE: Final = timedelta(hours=12)
#: audit outcomes that are warnings (besides every `failure` row)
WARNINGS: Final = frozenset({"notified", "warned", "failed", "unproven", "skipped", "drift", "no_campaign", "suppressed",
                             "expired", "refused"})
_Item = tuple[str, str | None, Line]          # (section key, route or None, line)


def zone_of(name: str) -> tzinfo:
    """The time zone BOT_DIGEST_TZ names (`UTC` needs no tz database); ConfigError when unknown."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"BOT_DIGEST_TZ: unknown time zone {name!r} (an IANA name, e.g. Europe/Paris)") from None


@dataclass(frozen=True, slots=True)
class DigestPlan:
    """When and where digests go: at `hour` o'clock in `zone`, to `channel` (the default) and the accounts'."""

    hour: int
    zone: tzinfo
    channel: str | None
    accounts: Accounts

    @classmethod
    def from_settings(cls, settings: CoreSettings, accounts: Accounts) -> DigestPlan | None:
        """None when the digest is off (BOT_DIGEST_HOUR empty or -1)."""
        hour = settings.digest_hour
        if hour is None or hour < 0:
            return None
        return cls(hour, zone_of(settings.digest_tz), settings.slack_channel, accounts)

    def channels(self) -> list[str]:
        """Every channel a notice may go to: the default and each account's."""
        found = {a.slack_channel for a in self.accounts if a.slack_channel} | ({self.channel} if self.channel else set())
        return sorted(found)


def _at_hour(day: date, hour: int, zone: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone)


def digest_due(now: datetime, *, hour: int, zone: tzinfo, late: timedelta = LATE) -> datetime | None:
    """The end of the day whose digest is due at `now`: the latest `hour` o'clock in `zone` not after `now`,
    if less than `late` ago; None otherwise (and when `hour` is negative: off)."""
    if hour < 0:
        return None
    local = now.astimezone(zone)
    end = _at_hour(local.date(), hour, zone)
    if end > now:
        end = _at_hour(local.date() - timedelta(days=1), hour, zone)
    return end if now - end < late else None


def day_ending(end: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """(start, end) of the digest's day: from the same local time the day before (23 or 25 hours across a
    daylight-saving change) to `end`."""
    return (end.astimezone(zone) - timedelta(days=1)).astimezone(UTC), end     # wall-clock arithmetic in `zone`


def _route(campaign: str | None) -> str | None:
    if not campaign:
        return None
    try:
        return CampaignRef.parse(campaign).route
    except ValueError:                  # a vendor no longer registered: the default channel
        return None


def _paused(rows: Sequence[AuditRow]) -> Iterable[_Item]:
    """Pauses (and dry-run pauses) with why: the hold's reason and who placed it (rule, alert, person)."""
    cause: dict[str, AuditRow] = {}
    for row in rows:
        if row.kind == "decision" and row.outcome == "hold_placed" and row.campaign:
            cause[row.campaign] = row
        elif row.kind == "action" and row.campaign and (
                row.outcome in ("paused", "confirmed") or row.detail.startswith("dry run: would have paused")):
            placed = cause.get(row.campaign)
            by = f"{placed.rule}: " if placed is not None and placed.rule else ""
            why = placed.detail if placed is not None and row.outcome != "paused" else row.detail
            if row.outcome == "confirmed":
                why = f"pause confirmed after its answer was lost; {why}"
            yield "paused", _route(row.campaign), Line(by + why, row.campaign, row.at)


def _resumed(rows: Sequence[AuditRow]) -> Iterable[_Item]:
    """Resumes (and dry-run resumes), each with the person's override that led to it, if any; a person's
    override with no resume of campaign-guard's (resumed at the vendor, or not campaign-guard's pause)."""
    overrides: dict[str, AuditRow] = {}
    for row in rows:
        if row.kind == "decision" and row.action == "override" and row.campaign:
            overrides[row.campaign] = row
        elif row.kind == "action" and row.campaign and (
                row.outcome == "resumed" or row.detail.startswith("dry run: would have resumed")):
            override = overrides.pop(row.campaign, None)
            text = row.detail + (f" — {override.detail}" if override is not None else "")
            yield "resumed", _route(row.campaign), Line(text, row.campaign, row.at)
    for row in overrides.values():
        yield "resumed", _route(row.campaign), Line(row.detail, row.campaign, row.at)


def _warnings_and_shadow(rows: Sequence[AuditRow]) -> Iterable[_Item]:
    for row in rows:
        rule = f"{row.rule}: " if row.rule else ""
        if row.outcome.startswith("would_"):
            yield "shadow", _route(row.campaign), Line(rule + row.detail, row.campaign, row.at)
        elif row.kind == "failure" or row.outcome in WARNINGS:
            yield "warnings", _route(row.campaign), Line(f"{row.outcome}: {rule}{row.detail}", row.campaign, row.at)


def _approvals(pending: Sequence[PendingDecision], zone: tzinfo) -> Iterable[_Item]:
    for parked in pending:
        hold = parked.hold
        expires = parked.expires_at.astimezone(zone).strftime("%m-%d %H:%M")
        text = (f"decision #{parked.id} ({hold.owner}): {hold.reason}; expires {expires} unless approved "
                f"(Slack buttons, or `campaign-guard decisions approve {parked.id}`)")
        yield "approvals", _route(hold.campaign), Line(text, hold.campaign, hold.created_at)


def _mailboxes(bodies: Sequence[str], zone: tzinfo) -> Iterable[_Item]:
    """Each mailbox found unhealthy in the day once (its latest problems), and whether it recovered since."""
    latest: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}
    healthy_at: dict[tuple[str, str], datetime] = {}
    for body in bodies:
        event = json.loads(body)
        data = event.get("data") or {}
        key = (str(data.get("route") or event.get("source") or ""), str(data.get("email") or "?"))
        at = datetime.fromisoformat(str(event["occurred_at"]))
        if data.get("healthy") is False:
            latest[key] = (at, data)
            healthy_at.pop(key, None)
        elif key in latest:
            healthy_at.setdefault(key, at)
    for (route, email), (at, data) in sorted(latest.items(), key=lambda item: item[1][0]):
        problems = ", ".join(str(p) for p in data.get("problems") or []) or "unhealthy"
        campaigns = [str(c) for c in data.get("campaigns") or []]
        sends = f"; sends for {', '.join(campaigns[:5])}{' …' if len(campaigns) > 5 else ''}" if campaigns else ""
        again = (f"; healthy again at {healthy_at[(route, email)].astimezone(zone):%H:%M}"
                 if (route, email) in healthy_at else "")
        yield "mailboxes", route or None, Line(f"{email} ({route}): {problems}{sends}{again}", None, at)


async def collect(store: StateStore, *, accounts: Accounts, channel: str | None, start: datetime, end: datetime,
                  zone: tzinfo, routes: frozenset[str] | None = None) -> dict[str | None, Digest]:
    """Every channel's digest of [start, end): the configured channels (`channel`, the default, and the
    accounts'), each even when quiet, and None for what no channel receives, if anything. `routes`: only
    what concerns those accounts (`smartlead@acme`, `smartlead`: the default account)."""
    rows = await store.audit_between(start, end)
    health = await store.events_between("account.health", start, end)
    async with store.transaction() as tx:
        pending = await tx.pending(status="pending")
    items = [*_paused(rows), *_resumed(rows), *_approvals(pending, zone), *_mailboxes(health, zone),
             *_warnings_and_shadow(rows)]

    def channel_of(route: str | None) -> str | None:
        account = accounts.get(route) if route else None
        return (account.slack_channel if account is not None else None) or channel

    grouped: dict[str | None, dict[str, list[Line]]] = {}
    for key, route, line in items:
        if routes is None or route in routes:
            grouped.setdefault(channel_of(route), {}).setdefault(key, []).append(line)
    told = {a.route: channel_of(a.route) for a in accounts if routes is None or a.route in routes}
    wanted = set(told.values()) | ({channel} if routes is None else set())
    digests = {}
    for target in sorted(wanted | set(grouped), key=lambda c: (c is None, c or "")):
        if target is None and target not in grouped:
            continue
        sections = tuple(Section(key, tuple(sorted(lines, key=lambda line: line.at or start)))
                         for key in SECTIONS if (lines := grouped.get(target, {}).get(key)))
        # the accounts told here: those whose own channel it is (or the ones asked for)
        names = tuple(sorted(route for route, where in told.items() if where == target and (
            routes is not None or bool((account := accounts.get(route)) and account.slack_channel))))
        digests[target] = Digest(target, start, end, zone, sections, names)
    return digests


def _key(channel: str, day: date) -> str:
    return f"digest:{channel}:{day.isoformat()}"


async def send_digest(store: StateStore, outbox: Outbox, plan: DigestPlan, *, now: datetime | None = None) -> list[str]:
    """Queue the digest that is due (`digest_due`) for every channel that has none queued for its day yet;
    the channels queued now. The fleet duty (bot.fleet.Duties.run("digest", DIGEST_CHECK_SECONDS, ...))."""
    now = now or utcnow()
    end = digest_due(now, hour=plan.hour, zone=plan.zone)
    if end is None:
        return []
    day = end.astimezone(plan.zone).date()
    missing = [channel for channel in plan.channels() if not await outbox.has(_key(channel, day))]
    if not missing:
        return []
    start, end = day_ending(end, plan.zone)
    digests = await collect(store, accounts=plan.accounts, channel=plan.channel, start=start, end=end,
                            zone=plan.zone)
    queued = []
    for channel in missing:
        digest = digests.get(channel) or Digest(channel, start, end, plan.zone, ())
        if await outbox.enqueue("channel", {"channel": channel, **daily_message(digest)}, now=now,
                                key=_key(channel, day)):
            queued.append(channel)
    if queued:
        log.info("digest.queued", channels=queued, day=day.isoformat())
    return queued
