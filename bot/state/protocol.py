"""What the bot needs from its state store: `StateStore` and its `Transaction`, as protocols.

The worker, executor, reconciler, breaker and Slack code depend on these, never on an implementation;
only the composition root (bot.service, bot.cli, bot.demo) picks one (today bot.state.sqlite). Each
docstring states the contract every implementation keeps; tests/state/test_store_contract.py checks it
for every implementation.

Common to all: times are timezone-aware datetimes (read back in UTC); lists of campaign keys are sorted
and without duplicates; storage failures raise bot.errors.StateError (retryable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from bot.events import Event
from bot.state.base import AuditRow, CampaignRecord, Hold, PendingDecision

__all__ = ["Leases", "StateStore", "Transaction"]


class Transaction(Protocol):
    """Reads and writes inside one atomic, serializable transaction (obtained from `StateStore.transaction()`).

    Its reads see its own writes and everything committed before it began; no other transaction's
    writes interleave with it. Its writes all commit together, or none does (when the block raises).
    """

    def on_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` once this transaction has committed, never if it rolls back (or its commit fails).

        Callbacks run in registration order, awaited by the caller of `transaction()` after the commit and
        before its `async with` block returns. One that raises propagates to that caller (the writes stay
        committed) and the later ones do not run; a caller cancelled while the commit is under way may see
        the writes committed without its callbacks having run."""
        ...

    async def record_event(self, event: Event, now: datetime, *, body: bytes | None = None) -> bool:
        """Store the event (`body`: the JSON it was parsed from, kept verbatim for `StateStore.events`;
        else its serialisation). False, and nothing changes, when its id was recorded before (a redelivery)."""
        ...

    async def record_events(self, items: list[tuple[Event, bytes | None]], now: datetime) -> set[str]:
        """`record_event` for each (event, body) in order, in as few round trips as the store can: the ids
        recorded now (an id seen before, or earlier in `items`, is not among them)."""
        ...

    async def alert_resolved(self, fingerprint: str, starts_at: str) -> bool:
        """Was an `alert.resolved` event with this `data.fingerprint` and `data.starts_at` recorded?"""
        ...

    async def window(self, rule: str, key: str) -> dict[str, Any] | None:
        """The state `rule` keeps for `key` (as last given to `set_window`, seen by this transaction); None if none."""
        ...

    async def take_windows(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any] | None]:
        """Take these (rule, key) windows for this transaction at once (as `window` takes each on first use)
        and return their states as this transaction sees them (None: no window yet): what the worker does
        with every window a batch of events reaches, before it runs their rules."""
        ...

    async def set_window(self, rule: str, key: str, state: dict[str, Any], now: datetime) -> None:
        """Replace the window state (JSON-serialisable) of (`rule`, `key`); may be buffered until the commit,
        but commits or rolls back with the transaction and is read back by `window` meanwhile."""
        ...

    async def set_windows(self, states: Mapping[tuple[str, str], dict[str, Any]], now: datetime) -> None:
        """`set_window` for each (rule, key) → state, windows this transaction took (`take_windows`)."""
        ...

    async def holds(self, campaign: str) -> list[Hold]:
        """Every hold on the campaign, passive kinds included, oldest first (then by owner)."""
        ...

    async def add_hold(self, hold: Hold) -> bool:
        """Place a hold; False when `hold.owner` already holds the campaign (the existing hold stays as is)."""
        ...

    async def remove_hold(self, campaign: str, owner: str, *, every_key: bool = False) -> bool:
        """Remove `owner`'s hold on the campaign; with `every_key`, also every per-key hold `owner@<key>`
        (`rule:x` removes `rule:x@k`, never `rule:xy@k`). True when something was removed."""
        ...

    async def held_by(self, owner: str) -> list[str]:
        """Campaigns on which exactly `owner` holds a hold."""
        ...

    async def held_or_paused(self) -> list[str]:
        """Campaigns holding any hold (passive kinds too), or paused (for real or in a dry run) by campaign-guard."""
        ...

    async def campaign(self, campaign: str) -> CampaignRecord:
        """The campaign's record; `CampaignRecord(campaign)` (version 0) when it was never stored."""
        ...

    async def set_campaign(self, record: CampaignRecord, now: datetime) -> CampaignRecord:
        """Compare-and-set: store `record` only if the stored version is still `record.version` (0: none
        stored yet), and return it as stored: version + 1, `updated_at` = `now`. Raises bot.errors.StaleRecord,
        changing nothing, when the campaign was written since that version was read."""
        ...

    async def add_override(self, campaign: str, *, by: str, now: datetime, until: datetime, rule: str = "*") -> None:
        """A person overrode the bot on this campaign: `rule` (`*`: every rule) may not pause it before `until`.
        Replaces an earlier override of the same (campaign, rule)."""
        ...

    async def override(self, campaign: str, rule: str, now: datetime) -> tuple[str, datetime] | None:
        """(by, until) of the override of `rule` or `*` on this campaign still in force at `now` (the one
        lasting longest), if any."""
        ...

    async def add_inventory(self, campaign: str, sender: str, now: datetime) -> None:
        """Remember that `campaign` sends from `sender`; idempotent."""
        ...

    async def add_audit(self, row: AuditRow) -> None:
        """Append an audit row (`row.id` is ignored: the store numbers rows in increasing order)."""
        ...

    async def log_pause(self, vendor: str, campaign: str, now: datetime) -> None:
        """Count an automated pause of a campaign of `vendor` at `now` (the blast-radius breaker's log)."""
        ...

    async def recent_pauses(self, vendor: str, since: datetime) -> int:
        """How many pauses `log_pause` logged for `vendor` strictly after `since`."""
        ...

    async def add_pending(self, hold: Hold, *, expires_at: datetime) -> int:
        """Park an automated pause for a person to approve (status `pending`); returns its id (> 0, increasing)."""
        ...

    async def pending(self, *, decision_id: int | None = None, status: str | None = "pending") -> list[PendingDecision]:
        """Parked decisions with that id and/or status (None: any), by id."""
        ...

    async def decide_pending(self, decision_id: int, status: str, *, by: str, now: datetime) -> None:
        """Set a parked decision's status (a bot.state.base.Parked) and who decided; an unknown id changes nothing."""
        ...


class StateStore(Protocol):
    """The bot's durable state: recorded events, holds, campaign records, rule windows, overrides,
    parked decisions and the audit log. Writes go through `transaction()`; the other methods read
    committed state only."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """`async with store.transaction() as tx:` one atomic, serializable transaction.

        The block's writes commit when it ends normally; the `async with` returns only after that commit is
        durable (so a caller never acts on an uncommitted write), then runs the `on_commit` callbacks. When
        the block raises, its writes are rolled back (no other transaction's) and the exception propagates;
        a failed commit raises bot.errors.StateError."""
        ...

    async def audit(self, *, campaign: str | None = None, limit: int = 100) -> list[AuditRow]:
        """The newest `limit` audit rows (of `campaign`, if given), oldest first, with their ids."""
        ...

    def events(self, *, campaign: str | None = None) -> AsyncIterator[str]:
        """Recorded events (of `campaign`, if given) as JSON lines, by occurrence then recording time."""
        ...

    async def inventory(self) -> list[tuple[str, str]]:
        """Every (campaign, sender) pair given to `Transaction.add_inventory`."""
        ...

    async def pending_campaigns(self) -> list[str]:
        """Campaigns whose record has an unfinished vendor action (`pending` set; reconciled at worker start)."""
        ...

    async def dry_paused_campaigns(self) -> list[str]:
        """Campaigns whose record says a dry run paused them (carried into live mode at start)."""
        ...

    async def watched_campaigns(self) -> list[str]:
        """Campaigns holding an active hold (not a passive kind) or paused by campaign-guard for real
        (`bot_paused`; a dry-run pause is not): the drift watch re-reads their vendor state."""
        ...

    async def windows_where(self, rule: str, flag: str) -> list[tuple[str, dict[str, Any]]]:
        """(key, state) of `rule`'s windows whose state has `flag` true (e.g. `active`)."""
        ...

    async def audit_between(self, since: datetime, until: datetime, *, limit: int = 10_000) -> list[AuditRow]:
        """Audit rows whose `at` is from `since` up to but not including `until`: the newest `limit` of them,
        oldest first (by id), with their ids (the daily digest's day, bot.digest)."""
        ...

    async def events_between(self, event_type: str, since: datetime, until: datetime, *,
                             limit: int = 10_000) -> list[str]:
        """Recorded events of `event_type` that occurred from `since` up to but not including `until`, as JSON
        lines (as `events` gives them): the latest `limit` of them, by occurrence then recording time."""
        ...


class Leases(Protocol):
    """Exclusive, time-bounded claims on names, shared by every process on the state database: what makes
    one writer per campaign and each background duty run once across a fleet (bot.fleet).

    A claim lasts `seconds` from the moment it is made, by the database's clock; a holder that stops
    renewing it (killed, frozen, cut off) loses it when it runs out, and any other holder may then take it.
    """

    async def claim(self, name: str, holder: str, seconds: float) -> bool:
        """Take `name` for `holder` for `seconds`, or extend `holder`'s own claim; False (nothing changes)
        while another holder's claim is in force. StateError when the database fails."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """End `holder`'s claim on `name` now (nothing when another holder has it)."""
        ...
