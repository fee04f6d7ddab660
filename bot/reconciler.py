"""Reconciles one campaign's vendor state with its holds: the only place that calls pause and resume.

Every vendor write is preceded by a write-ahead intent (`Pending.*_SENT`), so a crash or a redelivery
never writes twice and never mistakes someone else's pause for campaign-guard's. A campaign is paused
while any active hold remains; it is resumed only when none is left, it is paused now, and
campaign-guard itself paused it; never a draft, never a status it does not understand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from bot.errors import VendorError, VendorUnavailable
from bot.events import CampaignRef
from bot.notify import Notice, Notifier, deliver
from bot.state.base import AuditRow, CampaignRecord, Hold, Pending
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignStatus, CampaignVendor

__all__ = ["PASSIVE_KINDS", "PAUSE_INTENTS", "Reconciler"]

log = structlog.get_logger(__name__)

PAUSE_INTENTS = (Pending.PAUSE, Pending.PAUSE_SENT)
#: Holds that are records only: they never pause a campaign nor keep it paused.
PASSIVE_KINDS = frozenset({"shadow", "suppressed", "pending"})


class Reconciler:
    """Moves a campaign toward what its holds say, one vendor call at a time, recording each step."""

    def __init__(self, store: SqliteStateStore, vendors: Mapping[str, CampaignVendor], *,
                 dry_run_vendors: frozenset[str], clock: Callable[[], datetime], notifier: Notifier) -> None:
        self._store = store
        self._vendors = vendors
        self._dry = dry_run_vendors
        self._clock = clock
        self._notifier = notifier

    async def reconcile(self, ref: CampaignRef) -> None:
        """Carry out the campaign's pending intent, if any. Call while holding `lock(ref)`."""
        key = str(ref)
        async with self._store.transaction() as tx:
            record = await tx.campaign(key)
            holds = [h for h in await tx.holds(key) if h.kind not in PASSIVE_KINDS]
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

    async def gave_up(self, ref: CampaignRef, error: str, *, attempts: int) -> None:
        """The retry budget is spent while the vendor is down: record and announce it. The intent stays
        pending, so the periodic sweep still applies it (once) when the vendor answers again."""
        now = self._clock()
        detail = (f"vendor unavailable after {attempts} deliveries ({error}); message dead-lettered; "
                  "campaign-guard keeps retrying the pending action every sweep")
        async with self._store.transaction() as tx:
            record = await tx.campaign(str(ref))
            action = "pause" if record.pending in PAUSE_INTENTS else "resume" if record.pending else "none"
            await tx.add_audit(AuditRow(now, "failure", str(ref), None, action, "failed", detail))
            tx.on_commit(partial(deliver, self._notifier, Notice("failed", str(ref), detail, now)))
        log.error("campaign.action_failed", error=error, attempts=attempts)

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
            new_status = await vendor.pause(ref.id, current=status if vendor.can_read_state else None)
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
            new_status = await vendor.resume(ref.id, current=status if vendor.can_read_state else None)
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
        action = "pause" if record.pending in PAUSE_INTENTS else "resume"
        async with self._store.transaction() as tx:
            await tx.set_campaign(replace(record, **changes), now)
            if audit is not None:
                kind, outcome, detail, inputs = audit
                await tx.add_audit(AuditRow(now, kind, record.campaign, None, action, outcome, detail, (), inputs))
                tx.on_commit(partial(deliver, self._notifier, Notice(outcome, record.campaign, detail, now, None, inputs)))
