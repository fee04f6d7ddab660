"""Turns decisions into holds and reconciles each campaign's vendor state with its holds.

Holds, not toggles: a pause places a hold; the campaign is paused while any hold remains and resumed
only when none is left, it is paused now, and campaign-guard itself paused it. Every vendor write is
preceded by a write-ahead intent (`Pending`), so a crash or redelivery never writes twice and never
mistakes someone else's pause for ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from bot.engine import Decision
from bot.errors import VendorError, VendorUnavailable
from bot.events import CampaignRef, utcnow
from bot.metrics import DECISIONS
from bot.notify import LogNotifier, Notice, Notifier
from bot.state.base import AuditRow, CampaignRecord, Hold, Pending
from bot.state.sqlite import SqliteStateStore, Tx
from bot.vendors.base import CampaignStatus, CampaignVendor

__all__ = ["Executor"]

log = structlog.get_logger(__name__)

_PAUSE_INTENTS = (Pending.PAUSE, Pending.PAUSE_SENT)
#: Holds that are records only: they never pause a campaign nor keep it paused.
_PASSIVE_KINDS = frozenset({"shadow", "suppressed"})


class Executor:
    """Places and removes holds (inside the caller's transaction) and reconciles campaigns (outside)."""

    def __init__(
        self,
        store: SqliteStateStore,
        vendors: Mapping[str, CampaignVendor],
        *,
        dry_run_vendors: frozenset[str] = frozenset(),
        clock: Callable[[], datetime] = utcnow,
        notifier: Notifier | None = None,
    ) -> None:
        self._store = store
        self._vendors = vendors
        self._dry = dry_run_vendors
        self._clock = clock
        self._notifier: Notifier = notifier or LogNotifier()
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}

    @asynccontextmanager
    async def lock(self, ref: CampaignRef) -> AsyncIterator[None]:
        """Serialize everything done to one campaign in this process."""
        key = str(ref)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:
                del self._waiters[key], self._locks[key]

    async def place(self, tx: Tx, decision: Decision, now: datetime) -> bool:
        """Record the decision as a hold; True when the campaign now needs a vendor action."""
        key = str(decision.campaign)
        kind = "shadow" if decision.shadow else "rule"
        overridden = None if decision.shadow else await tx.override(key, decision.rule, now)
        if overridden is not None:
            return await self._suppress(tx, decision, now, *overridden)
        hold = Hold(key, f"{kind}:{decision.rule}", kind, decision.reason, now, decision.event_ids,
                    {"digest": decision.digest, **decision.inputs})
        if not await tx.add_hold(hold):
            return False                      # this rule already holds the campaign: nothing new
        await tx.remove_hold(key, f"suppressed:{decision.rule}")
        DECISIONS.labels(decision.rule, "shadow" if decision.shadow else decision.action).inc()
        await tx.add_audit(AuditRow(
            now, "decision", key, decision.rule, decision.action,
            "would_pause" if decision.shadow else "hold_placed",
            (f"shadow: would have paused {key}: " if decision.shadow else "") + decision.reason,
            decision.event_ids, {"digest": decision.digest, **decision.inputs},
        ))
        log.info("decision.made", rule=decision.rule, action=decision.action, shadow=decision.shadow,
                 reason=decision.reason, **decision.inputs)
        if decision.shadow:
            tx.on_commit(partial(self._notify, Notice("shadow", key, f"shadow: would have paused {key}: "
                                                      f"{decision.reason}", now, decision.rule, decision.inputs)))
            return False
        record = await tx.campaign(key)
        if record.bot_paused or record.pending in _PAUSE_INTENTS:
            return False
        if record.pending is Pending.RESUME:   # a release not yet sent: cancel it, the campaign stays paused
            await tx.set_campaign(replace(record, pending=None), now)
            return False
        await tx.set_campaign(replace(record, pending=Pending.PAUSE), now)
        return True

    async def _suppress(self, tx: Tx, decision: Decision, now: datetime, by: str, until: datetime) -> bool:
        """A person overrode the bot on this campaign: record the would-be pause once, act on nothing."""
        key = str(decision.campaign)
        detail = f"not paused: {by} overrode campaign-guard until {until:%Y-%m-%d %H:%M} UTC ({decision.reason})"
        marker = Hold(key, f"suppressed:{decision.rule}", "suppressed", detail, now, decision.event_ids)
        if await tx.add_hold(marker):
            await tx.add_audit(AuditRow(now, "decision", key, decision.rule, decision.action, "suppressed", detail,
                                        decision.event_ids, {"digest": decision.digest, **decision.inputs}))
            tx.on_commit(partial(self._notify, Notice("suppressed", key, detail, now, decision.rule,
                                                      decision.inputs)))
        return False

    async def hold(self, tx: Tx, hold: Hold) -> bool:
        """Place any hold (a person's, an alert's, the vendor's); True when the campaign needs a pause."""
        if not await tx.add_hold(hold):
            return False
        await tx.add_audit(AuditRow(hold.created_at, "decision", hold.campaign, hold.owner, "pause", "hold_placed",
                                    hold.reason, hold.event_ids, hold.details))
        if hold.kind in _PASSIVE_KINDS:
            return False
        record = await tx.campaign(hold.campaign)
        if record.bot_paused or record.pending in _PAUSE_INTENTS:
            return False
        if record.pending is Pending.RESUME:
            await tx.set_campaign(replace(record, pending=None), hold.created_at)
            return False
        await tx.set_campaign(replace(record, pending=Pending.PAUSE), hold.created_at)
        return True

    async def override(self, tx: Tx, ref: CampaignRef, *, by: str, now: datetime, until: datetime) -> None:
        """Record that a person overrode the bot: no rule pauses this campaign again before `until`."""
        await tx.add_override(str(ref), by=by, now=now, until=until)
        await tx.add_audit(AuditRow(now, "decision", str(ref), None, "override", "recorded",
                                    f"{by} overrode campaign-guard; rules will not pause it before {until:%Y-%m-%d %H:%M} UTC"))

    async def release(self, tx: Tx, ref: CampaignRef, owner: str, now: datetime, *, why: str) -> bool:
        """Remove one owner's hold; True when no hold is left and the bot's pause must be undone."""
        key = str(ref)
        if not await tx.remove_hold(key, owner):
            return False
        await tx.add_audit(AuditRow(now, "decision", key, owner, "release", "hold_removed", why))
        if any(h.kind not in _PASSIVE_KINDS for h in await tx.holds(key)):
            return False
        record = await tx.campaign(key)
        if not (record.bot_paused or record.dry_paused or record.pending in _PAUSE_INTENTS):
            return False
        await tx.set_campaign(replace(record, pending=Pending.RESUME), now)
        return True

    async def reconcile(self, ref: CampaignRef) -> None:
        """Carry out the campaign's pending intent, if any. Call while holding `lock(ref)`."""
        key = str(ref)
        async with self._store.transaction() as tx:
            record = await tx.campaign(key)
            holds = [h for h in await tx.holds(key) if h.kind not in _PASSIVE_KINDS]
        if record.pending is None:
            return
        try:
            if holds:
                await self._ensure_paused(ref, record, holds)
            else:
                await self._ensure_released(ref, record)
        except VendorUnavailable:
            raise                                       # the worker retries later; the intent stays
        except VendorError as exc:                      # 401/403/404/4xx: retrying will not help
            log.error("campaign.action_failed", error=str(exc), status=exc.status)
            await self._finish(record, pending=None, audit=("failure", "failed", str(exc), {"status": exc.status}))

    async def _ensure_paused(self, ref: CampaignRef, record: CampaignRecord, holds: list[Hold]) -> None:
        reasons = "; ".join(h.reason for h in holds)
        if record.bot_paused:
            await self._finish(record, pending=None)
            return
        if ref.vendor in self._dry:
            await self._finish(record, pending=None, dry_paused=True,
                               audit=("action", "dry_run", f"dry run: would have paused {ref}: {reasons}", {}))
            log.info("campaign.pause_simulated", reason=reasons)
            return
        vendor = self._vendors[ref.vendor]
        status = await vendor.state(ref.id) if vendor.can_read_state else CampaignStatus.UNKNOWN
        if status is CampaignStatus.PAUSED:
            ours = record.pending is Pending.PAUSE_SENT
            detail = "pause confirmed after restart" if ours else (
                "already paused by someone else: holds kept, never resumed automatically")
            await self._finish(record, pending=None, bot_paused=ours, vendor_status=status,
                               audit=("action", "confirmed" if ours else "skipped", detail, {}))
            return
        if status is CampaignStatus.ACTIVE or (status is CampaignStatus.UNKNOWN and not vendor.can_read_state):
            record = await self._save(replace(record, pending=Pending.PAUSE_SENT))
            new_status = await vendor.pause(ref.id)
            await self._finish(record, pending=None, bot_paused=True, vendor_status=new_status,
                               audit=("action", "paused", reasons, {"holds": [h.owner for h in holds]}))
            log.warning("campaign.paused", reason=reasons, holds=[h.owner for h in holds])
            return
        await self._finish(record, pending=None, vendor_status=status,
                           audit=("action", "skipped", f"campaign is {status}: nothing to pause", {}))

    async def _ensure_released(self, ref: CampaignRef, record: CampaignRecord) -> None:
        if not record.bot_paused:
            simulated = ("action", "dry_run", f"dry run: would have resumed {ref}", {})
            await self._finish(record, pending=None, dry_paused=False, audit=simulated if record.dry_paused else None)
            return
        vendor = self._vendors[ref.vendor]
        if vendor.can_read_state:
            status = await vendor.state(ref.id)
        else:   # Leadterra has no read endpoint: trust the status we recorded when we paused it
            status = CampaignStatus.PAUSED if record.vendor_status == CampaignStatus.PAUSED else CampaignStatus.UNKNOWN
        if status is CampaignStatus.PAUSED:
            record = await self._save(replace(record, pending=Pending.RESUME_SENT))
            new_status = await vendor.resume(ref.id)
            await self._finish(record, pending=None, bot_paused=False, vendor_status=new_status,
                               audit=("action", "resumed", "no hold remains", {}))
            log.warning("campaign.resumed")
            return
        detail = ("already active: resumed by someone else" if status is CampaignStatus.ACTIVE
                  else f"campaign is {status}: never resumed automatically")
        await self._finish(record, pending=None, bot_paused=False, vendor_status=status,
                           audit=("action", "skipped", detail, {}))

    async def _save(self, record: CampaignRecord) -> CampaignRecord:
        async with self._store.transaction() as tx:
            await tx.set_campaign(record, self._clock())
        return record

    async def _finish(
        self, record: CampaignRecord, *, audit: tuple[str, str, str, dict[str, Any]] | None = None, **changes: Any
    ) -> None:
        """Store the record's new fields and, in the same transaction, the audit row of what happened."""
        now = self._clock()
        action = "pause" if record.pending in _PAUSE_INTENTS else "resume"
        async with self._store.transaction() as tx:
            await tx.set_campaign(replace(record, **changes), now)
            if audit is not None:
                kind, outcome, detail, inputs = audit
                await tx.add_audit(AuditRow(now, kind, record.campaign, None, action, outcome, detail, (), inputs))
                tx.on_commit(partial(self._notify, Notice(outcome, record.campaign, detail, now, None, inputs)))

    async def _notify(self, notice: Notice) -> None:
        """Hand a notice to the notifier; a notifier failure never undoes or blocks a decision."""
        try:
            await self._notifier.notify(notice)
        except Exception:  # the notifier is a plug-in; the decision is already recorded
            log.exception("notice.failed", kind=notice.kind)
