"""Reconciles one campaign's vendor state with its holds: the only place that calls pause and resume.

Call it holding the campaign's lock (bot.executor.Executor.lock). It loops: read the record and the
holds as they are now, take one step toward what the holds say, store what the step proved, and read
again, until the two agree. So a hold placed while a resume was in flight pauses the campaign right
after, and a release that arrived while a pause was in flight resumes it: neither is overwritten.

* Every vendor write is preceded by a write-ahead intent (`Pending.*_SENT`, with its time), so a crash
  or a redelivery never writes twice, and the evidence of a resent write cannot predate the first.
* Each write carries a guard that re-reads the holds right before the request is sent (after the
  rate-limit wait): a pause no longer wanted, or a resume under a new hold, is withdrawn unsent.
* Ownership needs positive evidence (`WriteResult.proven`): campaign-guard calls a pause its own only
  when it saw the campaign running before its write and paused after it. Anything else is "not ours":
  the holds stay, the campaign is never resumed automatically, and the notice says why.
* A resume goes only to a campaign campaign-guard proved it paused, that is paused now, and whose
  vendor change stamp has not moved since (someone resumed and paused it again in the UI); never to a
  draft or an unknown status.
* The blast-radius breaker is consulted right before a real pause of a running campaign.
* `check` is the drift watch: a background read of a held or bot-paused campaign that notices what
  people did at the vendor without a webhook.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, Final

import structlog

from bot.breaker import Breaker, Trip
from bot.errors import (
    AccountError,
    StaleRecord,
    VendorError,
    VendorNotFound,
    VendorUnavailable,
    WriteCancelled,
)
from bot.events import CampaignRef
from bot.notify import Notice, Notifier, deliver
from bot.state.base import SENT, AuditRow, CampaignRecord, Hold, Pending, active
from bot.state.protocol import StateStore, Transaction
from bot.vendors.base import CampaignStatus, CampaignVendor, Observation, WriteResult
from bot.vocabulary import Act

__all__ = ["PAUSE_INTENTS", "Reconciler", "desired"]

log = structlog.get_logger(__name__)

PAUSE_INTENTS = (Pending.PAUSE, Pending.PAUSE_SENT)
#: Steps one reconcile takes at most (a pause, then a resume a release asked for meanwhile, ...): the
#: rest waits for the next trigger, so two fast-flapping causes cannot keep one worker busy.
_MAX_STEPS: Final = 4
_Audit = tuple[str, str, str, dict[str, Any]]


def desired(record: CampaignRecord, holds: list[Hold]) -> Pending | None:
    """The intent the holds ask for, given what campaign-guard did so far (None: nothing to do)."""
    if holds:
        return None if record.bot_paused or record.dry_paused else Pending.PAUSE
    return Pending.RESUME if record.bot_paused or record.dry_paused else None


def mark(record: CampaignRecord, holds: list[Hold]) -> Pending | None:
    """The record's new `pending` after its holds changed: an intent in flight (*_SENT) stays, since the
    reconcile that sent it reads the holds again once its call returns; otherwise what the holds ask."""
    return record.pending if record.pending in SENT else desired(record, holds)


class Reconciler:
    """Moves a campaign toward what its holds say, one vendor call at a time, recording each step."""

    def __init__(self, store: StateStore, vendors: Mapping[str, CampaignVendor], *,
                 dry_run_vendors: frozenset[str], clock: Callable[[], datetime], notifier: Notifier,
                 breaker: Breaker | None = None,
                 fence: Callable[[str], Awaitable[None]] | None = None) -> None:
        self._store = store
        #: the last check before a vendor write: this worker still holds the campaign's writer lease
        #: (bot.fleet.Writers.fence raises LeaseLost otherwise)
        self._fence = fence
        self._vendors = vendors
        self._dry = dry_run_vendors
        self._clock = clock
        self._notifier = notifier
        self._breaker = breaker or Breaker()

    async def reconcile(self, ref: CampaignRef) -> None:
        """Carry out the campaign's pending intent, reading again after each step. Call holding the lock."""
        for _ in range(_MAX_STEPS):
            record, holds = await self._read(str(ref))
            if record.pending is None:
                return
            try:
                if holds:
                    await self._ensure_paused(ref, record, holds)
                else:
                    await self._ensure_released(ref, record)
            except VendorUnavailable:
                raise                                       # the worker retries later; the intent stays
            except StaleRecord:
                log.info("campaign.record_moved")           # written meanwhile: read it again
            except WriteCancelled as exc:
                await self._withdrawn(ref, record, exc)
            except VendorError as exc:                      # 401/403/404/4xx: retrying will not help
                log.error("campaign.action_failed", error=str(exc), status=exc.status)
                await self._finish(record, holds, settle=True,
                                   audit=("failure", "failed", str(exc), {"status": exc.status}))
        log.warning("campaign.reconcile_deferred", steps=_MAX_STEPS)

    async def gave_up(self, ref: CampaignRef, error: str, *, attempts: int) -> None:
        """The retry budget is spent while the vendor is down: record and announce it. The intent stays
        pending, so the periodic sweep still applies it (once) when the vendor answers again."""
        now = self._clock()
        detail = (f"vendor unavailable after {attempts} deliveries ({error}); message dead-lettered; "
                  "campaign-guard keeps retrying the pending action every sweep")
        async with self._store.transaction() as tx:
            record = await tx.campaign(str(ref))
            action = Act.PAUSE if record.pending in PAUSE_INTENTS else Act.RESUME if record.pending else "none"
            await tx.add_audit(AuditRow(now, "failure", str(ref), None, action, "failed", detail))
            tx.on_commit(partial(deliver, self._notifier, Notice("failed", str(ref), detail, now)))
        log.error("campaign.action_failed", error=error, attempts=attempts)

    def _client(self, ref: CampaignRef) -> CampaignVendor:
        """The client of the campaign's account; AccountError when that account is no longer configured."""
        vendor = self._vendors.get(ref.route)
        if vendor is None:
            raise AccountError(f"{ref}: no account {ref.account_name!r} of {ref.vendor} is configured "
                               "(BOT_ACCOUNTS_FILE / BOT_ACCOUNT_<N>_*): nothing can be done at the vendor")
        return vendor

    # ------------------------------------------------------------------ pausing

    async def _ensure_paused(self, ref: CampaignRef, record: CampaignRecord, holds: list[Hold]) -> None:
        reasons = "; ".join(h.reason for h in holds)
        if record.bot_paused and record.pending is not Pending.RESUME_SENT:
            await self._finish(record, holds, settle=True)
            return
        if ref.route in self._dry:
            await self._finish(record, holds, settle=True, dry_paused=True,
                               audit=("action", "dry_run", f"dry run: would have paused {ref}: {reasons}", {}))
            log.info("campaign.pause_simulated", reason=reasons)
            return
        vendor = self._client(ref)
        seen = await vendor.observe(ref.id) if vendor.can_read_state else None
        if seen is not None and seen.status is CampaignStatus.PAUSED and record.pending is Pending.RESUME_SENT:
            await self._finish(record, holds)     # the resume did not go through: still campaign-guard's pause
            return
        if seen is not None and seen.status is not CampaignStatus.ACTIVE:
            await self._not_running(record, holds, seen)
            return
        # without a read endpoint the pause is sent: the vendor makes it a no-op on a paused or draft
        # campaign, and its answer is the evidence
        resend = record.pending is Pending.PAUSE_SENT and seen is None   # a pause whose answer was lost
        if not resend:
            admitted = await self._admitted(ref, record, holds)
            if admitted is None:
                return
            record = admitted
        # the guard stores the write-ahead intent right before the request goes out (after the rate-limit
        # wait): a crash while waiting leaves `pause`, never a `pause-sent` that would claim a person's pause
        result = await vendor.pause(ref.id, current=seen, guard=partial(self._wanted, str(ref), held=True),
                                    sent_at=record.sent_at if resend else None)
        await self._paused(ref, record, holds, result, reasons)

    async def _admitted(self, ref: CampaignRef, record: CampaignRecord, holds: list[Hold]) -> CampaignRecord | None:
        """The breaker's word, right before pausing a campaign that runs: the record to go on with, or
        None when its automated holds were parked instead."""
        if not self._breaker.applies(holds):
            return record
        now = self._clock()
        async with self._store.transaction() as tx:
            current = await tx.campaign(record.campaign)
            trip = await self._breaker.admit(tx, record.campaign, active(await tx.holds(record.campaign)), now)
            if trip is None:
                return current
            await tx.set_campaign(replace(current, pending=mark(current, active(await tx.holds(record.campaign)))),
                                  now)
            self._announce_trip(tx, ref, holds, trip, now)
        return None

    async def _paused(self, ref: CampaignRef, record: CampaignRecord, holds: list[Hold], result: WriteResult,
                      reasons: str) -> None:
        owners = {"holds": [h.owner for h in holds]}
        if result.proven:
            await self._finish(record, holds, bot_paused=True, vendor_status=result.status,
                               vendor_marker=result.changed_at, audit=("action", "paused", reasons, owners))
            log.warning("campaign.paused", reason=reasons, holds=owners["holds"])
            return
        why = result.detail or f"{ref.vendor} did not confirm the pause"
        detail = (f"not counted as campaign-guard's pause ({why}); status {result.status}: the holds stay and "
                  "campaign-guard will never resume it automatically")
        await self._finish(record, holds, bot_paused=False, vendor_status=result.status,
                           audit=("action", "unproven" if result.sent else "skipped", detail, owners))
        log.warning("campaign.pause_unproven", detail=why, status=str(result.status))

    async def _not_running(self, record: CampaignRecord, holds: list[Hold], seen: Observation) -> None:
        """Nothing to pause: paused by someone else (or, after a lost answer, by us), or not sending."""
        if seen.status is CampaignStatus.PAUSED and record.pending is Pending.PAUSE_SENT:
            # the write-ahead intent is written only after the campaign was read running: running before
            # our write, paused after it is the evidence a pause needs
            await self._finish(record, holds, bot_paused=True, vendor_status=seen.status,
                               vendor_marker=seen.changed_at,
                               audit=("action", "confirmed", "pause confirmed after its answer was lost", {}))
            return
        if seen.status is CampaignStatus.PAUSED:
            detail = "already paused by someone else: holds kept, never resumed automatically"
        elif seen.status is CampaignStatus.UNKNOWN:
            detail = "status unknown: no automatic action; holds kept"
        else:
            detail = f"campaign is {seen.status}: nothing to pause; holds kept"
        await self._finish(record, holds, bot_paused=False, vendor_status=seen.status,
                           audit=("action", "skipped", detail, {}))

    # ------------------------------------------------------------------ resuming

    async def _ensure_released(self, ref: CampaignRef, record: CampaignRecord) -> None:
        if record.pending is Pending.PAUSE_SENT and ref.route not in self._dry:
            await self._settle_lost_pause(ref, record)
            return
        if not record.bot_paused:
            simulated: _Audit = ("action", "dry_run", f"dry run: would have resumed {ref}", {})
            await self._finish(record, [], settle=True, dry_paused=False,
                               audit=simulated if record.dry_paused else None)
            return
        vendor = self._client(ref)
        if vendor.can_read_state:
            seen = await vendor.observe(ref.id)
        elif record.vendor_status == CampaignStatus.PAUSED:
            seen = Observation(CampaignStatus.PAUSED)   # no read endpoint: our own proven pause is the evidence
        else:
            seen = Observation(CampaignStatus(record.vendor_status or CampaignStatus.UNKNOWN))
        moved = seen.changed_at is not None and record.vendor_marker is not None and \
            seen.changed_at != record.vendor_marker
        if seen.status is not CampaignStatus.PAUSED or moved:
            await self._finish(record, [], settle=True, bot_paused=False, vendor_status=seen.status,
                               vendor_marker=None, audit=("action", "skipped", _not_resumed(ref, seen, moved), {}))
            return
        resend = record.pending is Pending.RESUME_SENT
        result = await vendor.resume(ref.id, current=seen if vendor.can_read_state else None,
                                     guard=partial(self._wanted, str(ref), held=False),
                                     sent_at=record.sent_at if resend else None)
        outcome = "resumed" if result.status is CampaignStatus.ACTIVE else "unproven"
        detail = "no hold remains" if outcome == "resumed" else (
            f"resume sent; {ref.vendor} reports {result.status}" + (f" ({result.detail})" if result.detail else ""))
        await self._finish(record, [], bot_paused=False, vendor_status=result.status, vendor_marker=None,
                           audit=("action", outcome, detail, {}))
        log.warning("campaign.resumed", status=str(result.status))

    async def _settle_lost_pause(self, ref: CampaignRef, record: CampaignRecord) -> None:
        """A release found a pause whose answer was lost (a crash, a timeout): find out whether it was ours
        first; the next step resumes it if so."""
        vendor = self._client(ref)
        if vendor.can_read_state:
            seen = await vendor.observe(ref.id)
            await self._not_running(record, [], seen) if seen.status is not CampaignStatus.ACTIVE else \
                await self._finish(record, [], bot_paused=False, vendor_status=seen.status)
            return
        # no read endpoint: resending the pause is a no-op if the first went through, and its answer's
        # pausedAt, checked against the first send, tells whose pause it is
        assert record.sent_at is not None
        if self._fence is not None:
            await self._fence(str(ref))
        result = await vendor.pause(ref.id, guard=None, sent_at=record.sent_at)
        await self._finish(record, [], bot_paused=result.proven, vendor_status=result.status,
                           vendor_marker=result.changed_at)

    # ------------------------------------------------------------------ drift

    async def check(self, ref: CampaignRef) -> bool:
        """Re-read a held or bot-paused campaign in the background (the rate limiter serves pauses and
        resumes first) and record what people did at the vendor without a webhook. Call holding the lock.
        True: a person resumed it while held; the caller records that override (Executor.check)."""
        vendor = self._vendors.get(ref.route)
        if vendor is None or ref.route in self._dry or not vendor.can_read_state:
            return False
        try:
            seen = await vendor.observe(ref.id, background=True)
        except VendorNotFound:
            await self._gone(ref)
            return False
        now = self._clock()
        key = str(ref)
        async with self._store.transaction() as tx:
            record = await tx.campaign(key)
            holds = active(await tx.holds(key))
            if record.pending is not None:      # a reconcile is due: it reads the vendor itself
                return False
            was_paused = record.bot_paused or record.vendor_status == CampaignStatus.PAUSED
            record = replace(record, checked_at=now, vendor_status=seen.status)
            moved = (seen.changed_at is not None and record.vendor_marker is not None
                     and seen.changed_at != record.vendor_marker)
            if seen.status is CampaignStatus.ACTIVE and holds:
                if was_paused:
                    await tx.set_campaign(record, now)
                    return True
                # running while held and never seen paused (a draft launched since, a pause that did not
                # take): the holds still ask for a pause
                await tx.set_campaign(replace(record, pending=Pending.PAUSE), now)
                return False
            if record.bot_paused and (moved or seen.status is not CampaignStatus.PAUSED):
                await tx.set_campaign(replace(record, bot_paused=False, vendor_marker=None), now)
                await self._audit(tx, key, Act.PAUSE if holds else Act.RESUME, "drift", _not_resumed(ref, seen, moved),
                                  now)
                return False
            await tx.set_campaign(record, now)
        return False

    async def _gone(self, ref: CampaignRef) -> None:
        """The vendor answers 404 (deleted, or no longer this key's): no pause of campaign-guard's is left
        to undo; said once, then the campaign is only read again while a hold names it."""
        now = self._clock()
        async with self._store.transaction() as tx:
            record = await tx.campaign(str(ref))
            if record.pending is not None:
                return
            await tx.set_campaign(replace(record, bot_paused=False, vendor_status=CampaignStatus.UNKNOWN,
                                          vendor_marker=None, checked_at=now), now)
            if record.bot_paused:
                await self._audit(tx, str(ref), Act.RESUME, "drift", f"{ref.vendor} no longer knows the campaign "
                                  "(404): campaign-guard has no pause of its own left to undo", now)

    # ------------------------------------------------------------------ bookkeeping

    async def _read(self, key: str) -> tuple[CampaignRecord, list[Hold]]:
        async with self._store.transaction() as tx:
            return await tx.campaign(key), active(await tx.holds(key))

    async def _wanted(self, key: str, *, held: bool) -> bool:
        """The write's guard, called right before each attempt is sent: is a pause (held=True) or a resume
        (held=False) still what the holds ask? If so, the write-ahead intent (`*-sent`, with the time of the
        first send) is stored in the same transaction before the request leaves, so after a crash
        `pause-sent` means the request may have gone out, and a campaign found paused then was seen
        running before it and paused after it."""
        if self._fence is not None:
            await self._fence(key)
        sent = Pending.PAUSE_SENT if held else Pending.RESUME_SENT
        now = self._clock()
        async with self._store.transaction() as tx:
            if bool(active(await tx.holds(key))) != held:
                return False
            record = await tx.campaign(key)
            if record.pending is not sent:
                await tx.set_campaign(replace(record, pending=sent, sent_at=now,
                                              bot_paused=False if held else record.bot_paused), now)
        return True

    async def _withdrawn(self, ref: CampaignRef, record: CampaignRecord, exc: WriteCancelled) -> None:
        """The guard withdrew a write before it was sent: the holds changed while it waited."""
        now = self._clock()
        async with self._store.transaction() as tx:
            current = await tx.campaign(str(ref))
            holds = active(await tx.holds(str(ref)))
            if not exc.sent_before:     # else an earlier attempt may have gone through: the next step reads
                await tx.set_campaign(replace(current, pending=desired(current, holds), sent_at=None), now)
            await self._audit(tx, str(ref), Act.PAUSE if record.pending in PAUSE_INTENTS else Act.RESUME, "withdrawn",
                              f"{exc.where} withdrawn before it was sent: the holds changed while it waited", now)
        log.info("campaign.write_withdrawn", where=exc.where, sent_before=exc.sent_before)

    async def _finish(self, record: CampaignRecord, holds: list[Hold], *, settle: bool = False,
                      audit: _Audit | None = None, **changes: Any) -> None:
        """Store what the step learned on the record AS IT IS NOW (someone may have placed or removed a hold
        meanwhile) and the step's audit row, in one transaction; then the intent the holds now ask for,
        which the reconcile loop carries out next."""
        now = self._clock()
        action = Act.PAUSE if record.pending in PAUSE_INTENTS or holds else Act.RESUME
        key = record.campaign
        async with self._store.transaction() as tx:
            current = replace(await tx.campaign(key), **changes)
            now_holds = active(await tx.holds(key))
            # held before and after: the step settled the pause; not held: a proven lost pause still needs
            # its resume (unless `settle`); and if a hold came or went meanwhile, the next step follows it
            done = bool(now_holds) == bool(holds) and (bool(holds) or settle)
            pending = None if done else desired(current, now_holds)
            await tx.set_campaign(replace(current, pending=pending, sent_at=None), now)
            if audit is not None:
                kind, outcome, detail, inputs = audit
                await tx.add_audit(AuditRow(now, kind, key, None, action, outcome, detail, (), inputs))
                tx.on_commit(partial(deliver, self._notifier, Notice(outcome, key, detail, now, None, inputs)))

    async def _audit(self, tx: Transaction, key: str, action: str, outcome: str, detail: str, now: datetime) -> None:
        await tx.add_audit(AuditRow(now, "action", key, None, action, outcome, detail))
        tx.on_commit(partial(deliver, self._notifier, Notice(outcome, key, detail, now)))

    def _announce_trip(self, tx: Transaction, ref: CampaignRef, holds: list[Hold], trip: Trip, now: datetime) -> None:
        key = str(ref)
        reason = "; ".join(h.reason for h in holds)
        text = (f"pause of {key} parked as decision #{trip.decision_id}: {reason} "
                f"(approve with `campaign-guard decisions approve {trip.decision_id}`)")
        notices = [Notice("pending_decision", key, text, now, holds[0].owner,
                          {"decision_id": trip.decision_id, **holds[0].details})]
        if trip.first_in_window:
            notices.insert(0, Notice("breaker_open", None, f"blast-radius breaker open for {ref.vendor}: "
                                     f"{trip.recent} automated pauses in the window; further pauses wait for "
                                     "approval", now))
        for notice in notices:
            tx.on_commit(partial(deliver, self._notifier, notice))
        log.error("breaker.tripped", decision_id=trip.decision_id, recent=trip.recent, target=key)


def _not_resumed(ref: CampaignRef, seen: Observation, moved: bool) -> str:
    if moved:
        return (f"{ref.vendor} shows the campaign changed since campaign-guard paused it: someone resumed or "
                "paused it there. It is no longer campaign-guard's pause and will never be resumed automatically")
    if seen.status is CampaignStatus.ACTIVE:
        return "already active: resumed by someone else"
    return f"campaign is {seen.status}: never resumed automatically"
