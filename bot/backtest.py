"""Backtest: replay recorded events through a rules directory offline, on a virtual clock, and collect
what the bot would have decided and done (`campaign-guard rules test DIR --events FILE`).

Everything real is swapped for a throw-away stand-in: a `:memory:` SQLite store, a clock that follows the
events' `occurred_at`, and an in-memory vendor per vendor that keeps campaign statuses and calls nothing.
No broker: each event becomes a `Delivery` handed to `Worker.handle`, which records, evaluates, places
holds and reconciles synchronously exactly as in production. The report is read back from the audit
trail (`store.audit()`), the worker's public record of every decision and vendor effect.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.accounts import Account, Accounts
from bot.broker.base import Delivery, Verdict
from bot.engine import ticking
from bot.errors import PayloadError, WriteCancelled
from bot.events import DEFAULT_ACCOUNT, EVENT_TYPES, CampaignRef, Event
from bot.executor import Executor
from bot.inventory import Inventory
from bot.notify import Notice
from bot.ruleset import load_rules
from bot.state.base import AuditRow
from bot.state.sqlite import SqliteStateStore
from bot.vendors import registry
from bot.vendors.base import CampaignStatus, Guard, Observation, WriteResult
from bot.vendors.http import VendorRefused
from bot.vendors.spec import VendorConfig
from bot.worker import Worker

__all__ = [
    "SWEEP",
    "BacktestAction",
    "BacktestDecision",
    "BacktestReport",
    "BacktestVendor",
    "VirtualClock",
    "backtest",
    "read_events",
    "run_backtest",
]

#: What a vendor-reported campaign event says about the campaign's status at the vendor.
_STATUS_EVENTS = {"campaign.paused": CampaignStatus.PAUSED, "campaign.started": CampaignStatus.ACTIVE,
                  "campaign.completed": CampaignStatus.COMPLETED}
_ALL_ROWS = 2**62        # store.audit(limit=...): every row
#: how often the virtual worker sweeps (what `tick` decides on the clock), like BOT_SWEEP_SECONDS
SWEEP = timedelta(seconds=60)


class VirtualClock:
    """The backtest's `now`: moved to each event's `occurred_at` before the event is handled."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class BacktestVendor:
    """In-memory vendor: campaigns are `active` until an event or the bot says otherwise; no network.

    It follows the `CampaignVendor` protocol as the real clients do: with reads (`can_read_state`), a
    pause is sent only to an active campaign and proven, a paused one is left alone (not proven), a
    draft/stopped/completed one too, and a resume goes only to a paused campaign (anything else but
    active: `VendorRefused`). Without reads (Leadterra), every pause/resume is sent and proven only
    when it moved the campaign. Each status change moves the campaign's change stamp (`changed_at`).
    """

    def __init__(self, name: str, *, can_read_state: bool = True) -> None:
        self.name = name
        self.can_read_state = can_read_state
        self.statuses: dict[str, CampaignStatus] = {}
        self.writes: list[tuple[str, str]] = []
        self._stamps: dict[str, int] = {}

    def apply(self, event: Event) -> None:
        """A vendor-reported status change (`campaign.paused|started|completed`) happened at the vendor."""
        status = _STATUS_EVENTS.get(event.type)
        if status is not None and event.campaign is not None and event.campaign.vendor == self.name:
            self._set(event.campaign.id, status)

    def _set(self, campaign_id: str, status: CampaignStatus) -> None:
        if self.statuses.get(campaign_id, CampaignStatus.ACTIVE) is not status:
            self._stamps[campaign_id] = self._stamps.get(campaign_id, 0) + 1
        self.statuses[campaign_id] = status

    def _stamp(self, campaign_id: str) -> str:
        return f"v{self._stamps.get(campaign_id, 0)}"

    async def observe(self, campaign_id: str, *, background: bool = False) -> Observation:
        if not self.can_read_state:
            return Observation(CampaignStatus.UNKNOWN)
        return Observation(self.statuses.get(campaign_id, CampaignStatus.ACTIVE), self._stamp(campaign_id))

    async def state(self, campaign_id: str) -> CampaignStatus:
        return (await self.observe(campaign_id)).status

    async def pause(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                    sent_at: datetime | None = None) -> WriteResult:
        return await self._change(campaign_id, "pause", CampaignStatus.ACTIVE, CampaignStatus.PAUSED, guard)

    async def resume(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                     sent_at: datetime | None = None) -> WriteResult:
        return await self._change(campaign_id, "resume", CampaignStatus.PAUSED, CampaignStatus.ACTIVE, guard)

    async def _change(self, campaign_id: str, action: str, source: CampaignStatus, target: CampaignStatus,
                      guard: Guard | None) -> WriteResult:
        before = self.statuses.get(campaign_id, CampaignStatus.ACTIVE)
        if self.can_read_state and before is not source:
            if action == "resume" and before is not CampaignStatus.ACTIVE:
                raise VendorRefused(self.name, f"resume of campaign {campaign_id}",
                                    f"campaign is {before}; only a paused campaign is resumed")
            return WriteResult(before, sent=False, proven=False, changed_at=self._stamp(campaign_id),
                               detail=f"campaign is {before}; nothing sent")
        if guard is not None and not await guard():
            raise WriteCancelled(self.name, f"{action} of campaign {campaign_id}", sent_before=False)
        self.writes.append((action, campaign_id))
        moves = before is source or (action == "resume" and before is CampaignStatus.DRAFT)   # start launches
        if not moves:
            return WriteResult(before, sent=True, proven=False, changed_at=self._stamp(campaign_id),
                               detail=f"campaign was {before}; the vendor left it as it was")
        self._set(campaign_id, target)
        return WriteResult(target, sent=True, proven=True, changed_at=self._stamp(campaign_id))


class _Notices:
    """Collects notices instead of sending them (Slack or logs are not part of a backtest)."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    async def notify(self, notice: Notice) -> None:
        self.kinds[notice.kind] += 1


@dataclass(frozen=True, slots=True)
class BacktestDecision:
    """A rule's decision as the audit recorded it, at virtual time `at`, with the numbers behind it."""

    at: datetime
    rule: str
    campaign: str | None
    action: str              # pause | release | notify | ...
    outcome: str             # hold_placed | would_pause | hold_removed | suppressed | notified | warned | ...
    detail: str
    numerator: int | None = None
    denominator: int | None = None
    value: float | None = None
    threshold: dict[str, Any] | None = None
    event_ids: tuple[str, ...] = ()
    #: `clock` for a decision a sweep took (engine.tick: a release after its hold time, a pause that waited
    #: for `min_age`), None for one an event triggered
    trigger: str | None = None


@dataclass(frozen=True, slots=True)
class BacktestAction:
    """What the bot would have done at the vendor (or why not), per campaign."""

    at: datetime
    campaign: str | None
    action: str              # pause | resume | override
    outcome: str             # paused | resumed | skipped | confirmed | failed | recorded | ...
    detail: str


@dataclass
class BacktestReport:
    """The result of one backtest. `decisions` and `actions` are in virtual-time order."""

    rules: tuple[str, ...]
    events_read: int = 0
    events_new: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)     # (event id, worker's reason)
    by_type: dict[str, int] = field(default_factory=dict)
    first_at: datetime | None = None
    last_at: datetime | None = None
    decisions: list[BacktestDecision] = field(default_factory=list)
    actions: list[BacktestAction] = field(default_factory=list)
    notices: dict[str, int] = field(default_factory=dict)

    @property
    def unknown_types(self) -> int:
        """Events campaign-guard has no meaning for (`vendor.other` or a type it does not know)."""
        return sum(n for t, n in self.by_type.items() if t == "vendor.other" or t not in EVENT_TYPES)

    def totals(self) -> dict[str, Any]:
        decided = Counter(f"{d.action}:{d.outcome}" for d in self.decisions)
        effects = Counter(f"{a.action}:{a.outcome}" for a in self.actions)
        return {
            "decisions": dict(sorted(decided.items())),
            "vendor_actions": dict(sorted(effects.items())),
            "campaigns_paused": len({a.campaign for a in self.actions if a.outcome == "paused"}),
            "campaigns_resumed": len({a.campaign for a in self.actions if a.outcome == "resumed"}),
        }

    def to_json(self) -> dict[str, Any]:
        def stamp(value: datetime | None) -> str | None:
            return value.astimezone(UTC).isoformat() if value else None

        return {
            "rules": list(self.rules),
            "events": {"read": self.events_read, "new": self.events_new, "duplicates": self.duplicates,
                       "rejected": [{"id": i, "reason": r} for i, r in self.rejected],
                       "unknown_types": self.unknown_types, "by_type": dict(sorted(self.by_type.items()))},
            "period": {"first": stamp(self.first_at), "last": stamp(self.last_at)},
            "decisions": [{**asdict(d), "at": stamp(d.at), "event_ids": list(d.event_ids)} for d in self.decisions],
            "actions": [{**asdict(a), "at": stamp(a.at)} for a in self.actions],
            "notices": dict(sorted(self.notices.items())),
            "totals": self.totals(),
        }


def read_events(lines: Iterable[str], *, name: str = "<events>") -> Iterator[Event]:
    """Parse JSON lines of canonical events (blank lines skipped); PayloadError names `name:line`."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield Event.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(line)"
            raise PayloadError(f"{name}:{number}: not a canonical event: {where}: {first['msg']}") from None


def _number(inputs: Mapping[str, Any], key: str) -> Any:
    value = inputs.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _collect(report: BacktestReport, rows: list[AuditRow]) -> None:
    for row in rows:
        if row.kind == "decision" and row.action != "override":
            threshold = row.inputs.get("release_threshold" if row.action == "release" else "threshold")
            report.decisions.append(BacktestDecision(
                row.at, (row.rule or "-").removeprefix("rule:"), row.campaign, row.action, row.outcome, row.detail,
                _number(row.inputs, "numerator"), _number(row.inputs, "denominator"), _number(row.inputs, "value"),
                threshold if isinstance(threshold, dict) else None, row.event_ids,
                row.inputs.get("trigger") if isinstance(row.inputs.get("trigger"), str) else None))
        else:
            report.actions.append(BacktestAction(row.at, row.campaign, row.action, row.outcome, row.detail))


def _accounts(events: list[Event], inventory: Mapping[str, Iterable[str]] | None) -> tuple[Accounts, Inventory]:
    """Every vendor's default account and each named account the events or the inventory name
    (`smartlead@acme:1`), and the inventory, knowing every campaign the events name: recorded events carry
    campaigns the worker already placed in their account (`Accounts.place` leaves them as they are)."""
    known = Inventory(inventory)
    routes = {spec.name for spec in registry.specs()}       # every vendor's default account
    for event in events:
        if event.campaign is not None:
            known.add(str(event.campaign))
            routes.add(event.campaign.route)
    for campaign in inventory or {}:
        routes.add(CampaignRef.parse(campaign).route)
    made = []
    for route in sorted(routes):
        vendor, _, name = route.partition("@")
        made.append(Account(vendor, name or DEFAULT_ACCOUNT, VendorConfig(vendor, {})))
    return Accounts(made), known


async def backtest(
    rules_dir: Path, events: Iterable[Event], *, inventory: Mapping[str, Iterable[str]] | None = None,
    sweep: timedelta = SWEEP,
) -> BacktestReport:
    """Replay `events` (sorted by `occurred_at`, stable) through the rules in `rules_dir`, offline.

    The worker's sweep runs on the virtual clock too, every `sweep` from the first event to the last (as the
    service's `BOT_SWEEP_SECONDS`): what rules decide on the clock (a release after its hold time, a pause
    that waits for an age) is decided at the sweep that would have decided it, between events. Sweeps are
    skipped when no rule is ticking (engine.ticking)."""
    if sweep <= timedelta(0):
        raise ValueError("sweep must be positive")
    rules = load_rules(rules_dir)
    ordered = sorted(events, key=lambda e: e.occurred_at)
    report = BacktestReport(tuple(r.name for r in rules.rules), events_read=len(ordered))
    if not ordered:
        return report
    report.first_at, report.last_at = ordered[0].occurred_at, ordered[-1].occurred_at
    report.by_type = dict(Counter(e.type for e in ordered))
    clock = VirtualClock(ordered[0].occurred_at)
    accounts, known = _accounts(ordered, inventory)
    readable = {spec.name: spec.can_read_state for spec in registry.specs()}
    vendors = {account.route: BacktestVendor(account.vendor, can_read_state=readable[account.vendor])
               for account in accounts}
    notices = _Notices()
    seen: set[str] = set()
    async with SqliteStateStore.open(":memory:") as store:
        executor = Executor(store, vendors, clock=clock, notifier=notices)
        worker = Worker(store=store, rules=rules, executor=executor, clock=clock, inventory=known,
                        accounts=accounts)
        sweeping = any(ticking(rule) for rule in rules.rules)
        next_sweep = ordered[0].occurred_at + sweep
        for event in ordered:
            while sweeping and next_sweep <= event.occurred_at:
                clock.now = next_sweep
                await worker.sweep()
                next_sweep += sweep
            clock.now = event.occurred_at
            if event.id not in seen and event.campaign is not None:   # a redelivery changes nothing at the vendor
                vendors[event.campaign.route].apply(event)
            seen.add(event.id)
            delivery = Delivery(event.model_dump_json().encode(), event.id, event.routing_key, 0, False)
            outcome = await worker.handle(delivery)
            if outcome.verdict is not Verdict.ACK:
                report.rejected.append((event.id, f"{outcome.verdict}: {outcome.reason}"))
        _collect(report, await store.audit(limit=_ALL_ROWS))
    report.events_new, report.duplicates = worker.handled["ack"], worker.handled["duplicate"]
    report.notices = dict(notices.kinds)
    return report


def run_backtest(
    rules_dir: Path, events: Iterable[Event], *, inventory: Mapping[str, Iterable[str]] | None = None,
    sweep: timedelta = SWEEP,
) -> BacktestReport:
    """`backtest()` for synchronous callers (the CLI, tests without an event loop)."""
    return asyncio.run(backtest(rules_dir, events, inventory=inventory, sweep=sweep))

