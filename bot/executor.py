"""Turns decisions into holds, inside the worker's transaction, and serializes work per campaign.

Holds, not toggles: a pause places a hold owned by its cause (a rule, an alert, a person, the vendor)
and writes a pause intent; a release removes one owner's hold and, when none is left and campaign-guard
paused the campaign, writes a resume intent. Overrides, the blast-radius breaker and vendor-side
observations are applied here. Carrying an intent out at the vendor is bot.reconciler's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

import structlog

from bot.breaker import Breaker
from bot.engine import Decision
from bot.events import CampaignRef, Event, utcnow
from bot.fleet import Writers, holder_id
from bot.metrics import DECISIONS
from bot.notify import LogNotifier, Notice, Notifier, deliver
from bot.reconciler import Reconciler, mark
from bot.state.base import PASSIVE_KINDS, AuditRow, Hold, HoldKind, Parked, Pending, active
from bot.state.leases import MemoryLeases
from bot.state.protocol import StateStore, Transaction
from bot.vendors.base import CampaignStatus, CampaignVendor
from bot.vocabulary import Act

__all__ = ["Executor"]

log = structlog.get_logger(__name__)



class Executor:
    """Places and removes holds (inside the caller's transaction) and reconciles campaigns (outside)."""

    def __init__(
        self,
        store: StateStore,
        vendors: Mapping[str, CampaignVendor],
        *,
        dry_run_vendors: frozenset[str] = frozenset(),
        clock: Callable[[], datetime] = utcnow,
        notifier: Notifier | None = None,
        override_for: timedelta = timedelta(days=7),
        breaker: Breaker | None = None,
        writers: Writers | None = None,
    ) -> None:
        self._store = store
        self._vendors = vendors
        self._dry = dry_run_vendors
        self._clock = clock
        self._notifier: Notifier = notifier or LogNotifier()
        self._override_for = override_for
        self._breaker = breaker or Breaker()
        #: one writer per campaign: this process's and, on a shared database, the fleet's (bot.fleet)
        self.writers = writers or Writers(MemoryLeases(), holder_id())
        self._reconciler = Reconciler(store, vendors, dry_run_vendors=dry_run_vendors, clock=clock,
                                      notifier=self._notifier, breaker=self._breaker, fence=self.writers.fence)

    def lock(self, ref: CampaignRef) -> AbstractAsyncContextManager[None]:
        """Serialize everything done to one campaign, in this process and across the fleet."""
        return self.writers.lock(str(ref))

    async def apply(self, tx: Transaction, decision: Decision, campaign: CampaignRef, now: datetime) -> bool:
        """Carry one decision to one campaign inside the worker's transaction; True when it needs reconciling."""
        key = str(campaign)
        if decision.action == Act.PAUSE:
            return await self.place(tx, decision, campaign, now)
        if decision.shadow or decision.action == Act.NOTIFY:
            # a measured rule's warning (`warn`) is a notice of its own kind: "warning", recorded as "warned"
            outcome = "would_" + decision.action if decision.shadow else "warned" if decision.warning else "notified"
            detail = (f"shadow: would have applied {decision.action} to {key}: " if decision.shadow else "") + \
                decision.reason
            await tx.add_audit(AuditRow(now, "decision", key, decision.rule, decision.action, outcome, detail,
                                        decision.event_ids, decision.inputs))
            kind = "shadow" if decision.shadow else "warning" if decision.warning else "rule_notice"
            tx.on_commit(partial(deliver, self._notifier, Notice(kind, key, detail, now, decision.rule, decision.inputs)))
            return False
        if decision.action == Act.VENDOR_HOLD:
            return await self.hold(tx, Hold(key, "vendor", HoldKind.VENDOR, decision.reason, now, decision.event_ids,
                                            {"rule": decision.rule}))
        needs = False
        for owner in decision.releases:
            needs |= await self.release(tx, campaign, owner, now, why=decision.reason, decision=decision)
        return needs

    async def declined(self, tx: Transaction, decision: Decision, now: datetime) -> None:
        """A decision the engine did not take (a release before the cooldown's minimum hold, a pause with
        no target): recorded with why, so nothing is dropped silently."""
        target = next((t.value for t in decision.targets if t.scope == "campaign"), None)
        await tx.add_audit(AuditRow(now, "decision", target, decision.rule, decision.action, "declined",
                                    f"{decision.declined}: {decision.reason}", decision.event_ids, decision.inputs))
        log.info("decision.declined", rule=decision.rule, action=decision.action, why=decision.declined)

    async def unmatched(self, tx: Transaction, decision: Decision, now: datetime) -> None:
        """A decision that designates no known campaign: recorded and notified, never silently dropped."""
        targets = ", ".join(f"{t.scope}={t.value}" for t in decision.targets) or "nothing"
        detail = f"{decision.reason}: no known campaign matches {targets}"
        await tx.add_audit(AuditRow(now, "decision", None, decision.rule, decision.action, "no_campaign", detail,
                                    decision.event_ids, decision.inputs))
        tx.on_commit(partial(deliver, self._notifier, Notice("no_campaign", None, detail, now, decision.rule, decision.inputs)))

    async def vendor_started(self, tx: Transaction, event: Event, now: datetime) -> bool:
        """The vendor says the campaign runs again. If campaign-guard paused it and did not resume it, a
        person did: that is an override, recorded, and the bot's holds give way. True to reconcile."""
        assert event.campaign is not None
        key = str(event.campaign)
        record = await tx.campaign(key)
        stale = record.updated_at is not None and event.occurred_at < record.updated_at
        if stale or not record.bot_paused or record.pending in (Pending.RESUME, Pending.RESUME_SENT):
            return await self._lift(tx, key, "vendor", now)        # the vendor lifted its own pause
        await self.person_resumed(tx, event.campaign, now, how="resumed at the vendor")
        return False

    async def person_resumed(self, tx: Transaction, ref: CampaignRef, now: datetime, *, how: str) -> None:
        """A person resumed a campaign campaign-guard held: their call. The bot's holds give way, and no rule
        pauses it again for the override period (as a Slack resume does); a notice says so."""
        key = str(ref)
        holds = active(await tx.holds(key))
        for hold in holds:
            if hold.kind != HoldKind.VENDOR:
                await tx.remove_hold(key, hold.owner)
        record = await tx.campaign(key)
        await tx.set_campaign(replace(record, bot_paused=False, pending=None, vendor_status=CampaignStatus.ACTIVE,
                                      vendor_marker=None, sent_at=None), now)
        until = now + self._override_for
        await self.override(tx, ref, by=f"a person ({how})", now=now, until=until)
        detail = (f"{how} outside campaign-guard while it held the campaign ({', '.join(h.owner for h in holds)})"
                  f": treated as a person's override until {until:%Y-%m-%d %H:%M} UTC")
        tx.on_commit(partial(deliver, self._notifier, Notice("override", key, detail, now)))
        log.warning("campaign.override_detected", holds=[h.owner for h in holds])

    async def check(self, ref: CampaignRef) -> None:
        """The drift watch for one campaign (call holding `lock(ref)`): re-read it, record a person's
        resume as an override, and carry out whatever the read made due."""
        if await self._reconciler.check(ref):
            now = self._clock()
            async with self._store.transaction() as tx:
                await self.person_resumed(tx, ref, now, how="resumed at the vendor (seen by the drift watch)")
        await self._reconciler.reconcile(ref)

    async def place(self, tx: Transaction, decision: Decision, campaign: CampaignRef, now: datetime) -> bool:
        """Record a rule's pause decision as a hold on `campaign`; True when it now needs a vendor action."""
        key = str(campaign)
        overridden = None if decision.shadow else await tx.override(key, decision.rule, now)
        if overridden is not None:
            return await self._suppress(tx, decision, key, now, *overridden)
        kind = HoldKind.SHADOW if decision.shadow else HoldKind(decision.owner.partition(":")[0])
        owner = f"shadow:{decision.rule}" if decision.shadow else decision.owner
        hold = Hold(key, owner, kind, decision.reason, now, decision.event_ids,
                    {"digest": decision.digest, **decision.inputs})
        if not await tx.add_hold(hold):
            return False                      # this owner already holds the campaign: nothing new
        await tx.remove_hold(key, f"suppressed:{decision.rule}")
        DECISIONS.labels(decision.rule, "shadow" if decision.shadow else decision.action).inc()
        detail = (f"shadow: would have paused {key}: " if decision.shadow else "") + decision.reason
        await tx.add_audit(AuditRow(now, "decision", key, decision.rule, decision.action,
                                    "would_pause" if decision.shadow else "hold_placed", detail,
                                    decision.event_ids, {"digest": decision.digest, **decision.inputs}))
        log.info("decision.made", rule=decision.rule, action=decision.action, shadow=decision.shadow,
                 target=key, reason=decision.reason, **decision.inputs)
        if decision.shadow:
            tx.on_commit(partial(deliver, self._notifier, Notice("shadow", key, detail, now, decision.rule, decision.inputs)))
            return False
        return await self._engage(tx, hold)

    async def _suppress(self, tx: Transaction, decision: Decision, key: str, now: datetime, by: str, until: datetime) -> bool:
        """A person overrode the bot on this campaign: record the would-be pause once, act on nothing."""
        detail = f"not paused: {by} overrode campaign-guard until {until:%Y-%m-%d %H:%M} UTC ({decision.reason})"
        marker = Hold(key, f"suppressed:{decision.rule}", HoldKind.SUPPRESSED, detail, now, decision.event_ids)
        if await tx.add_hold(marker):
            await tx.add_audit(AuditRow(now, "decision", key, decision.rule, decision.action, "suppressed", detail,
                                        decision.event_ids, {"digest": decision.digest, **decision.inputs}))
            tx.on_commit(partial(deliver, self._notifier, Notice("suppressed", key, detail, now, decision.rule,
                                                      decision.inputs)))
        return False

    async def hold(self, tx: Transaction, hold: Hold) -> bool:
        """Place any hold (a person's, an alert's, the vendor's); True when the campaign needs a pause."""
        if not await tx.add_hold(hold):
            return False
        await tx.add_audit(AuditRow(hold.created_at, "decision", hold.campaign, hold.owner, Act.PAUSE, "hold_placed",
                                    hold.reason, hold.event_ids, hold.details))
        return await self._engage(tx, hold)

    async def _engage(self, tx: Transaction, hold: Hold) -> bool:
        """After a hold was placed: True when the campaign now needs reconciling."""
        if hold.kind in PASSIVE_KINDS:
            return False
        return await self._mark(tx, hold.campaign, hold.created_at)

    async def _mark(self, tx: Transaction, key: str, now: datetime) -> bool:
        """The campaign's holds changed: write the intent they ask for (the breaker and the vendor's state
        are weighed by the reconcile, at the moment of the write). True when there is one to carry out."""
        record = await tx.campaign(key)
        pending = mark(record, active(await tx.holds(key)))
        if pending is not record.pending:
            await tx.set_campaign(replace(record, pending=pending), now)
        return pending is not None

    async def approve_pending(self, tx: Transaction, decision_id: int, *, by: str, now: datetime) -> CampaignRef:
        """A person approves a parked pause: the hold is placed for real (past the breaker). Reconcile after."""
        return await self._breaker.approve(tx, decision_id, by=by, now=now)

    async def reject_pending(self, tx: Transaction, decision_id: int, *, by: str, now: datetime) -> CampaignRef:
        """A person rejects a parked pause: nothing is paused, the parked hold goes away."""
        return await self._breaker.reject(tx, decision_id, by=by, now=now)

    async def expire_pending(self, tx: Transaction, now: datetime) -> None:
        for pending in await self._breaker.expire(tx, now):
            tx.on_commit(partial(deliver, self._notifier, Notice(
                "decision_expired", pending.hold.campaign, f"decision #{pending.id} expired: not paused", now)))

    async def override(self, tx: Transaction, ref: CampaignRef, *, by: str, now: datetime, until: datetime) -> None:
        """Record that a person overrode the bot: no rule pauses this campaign again before `until`."""
        await tx.add_override(str(ref), by=by, now=now, until=until)
        await tx.add_audit(AuditRow(now, "decision", str(ref), None, "override", "recorded",
                                    f"{by} overrode campaign-guard; rules will not pause it before {until:%Y-%m-%d %H:%M} UTC"))

    async def withdraw(self, tx: Transaction, decision: Decision, now: datetime) -> list[CampaignRef]:
        """For a release: withdraw parked pauses of its owners; return the campaigns those owners hold.
        Only an exact owner (an alert's fingerprint, a rule's key) reaches beyond the decision's targets:
        a release of `rule:<name>` written in a rule file acts on the campaigns it targets."""
        held: set[str] = set()
        for owner in decision.releases:
            if _every_key(owner):
                continue
            held.update(await tx.held_by(owner))
            for parked in await tx.pending(status=Parked.PENDING):
                if parked.hold.owner == owner:
                    await tx.decide_pending(parked.id, Parked.WITHDRAWN, by=decision.rule, now=now)
                    await tx.remove_hold(parked.hold.campaign, f"pending:{owner}")
                    await tx.add_audit(AuditRow(now, "decision", parked.hold.campaign, decision.rule, Act.PAUSE,
                                                Parked.WITHDRAWN, f"decision #{parked.id} withdrawn: {decision.reason}",
                                                decision.event_ids))
        return [CampaignRef.parse(key) for key in sorted(held)]

    async def resolved_before(self, tx: Transaction, event: Event, now: datetime) -> bool:
        """A firing alert whose resolution (same fingerprint and start) was already recorded: HA peers can
        deliver the firing late. It must not pause again under a hold nothing would ever lift."""
        fingerprint, starts_at = event.data.get("fingerprint"), event.data.get("starts_at")
        if not (isinstance(fingerprint, str) and isinstance(starts_at, str)):
            return False
        if not await tx.alert_resolved(fingerprint, starts_at):
            return False
        await tx.add_audit(AuditRow(now, "decision", None, None, Act.PAUSE, "ignored",
                                    f"alert {fingerprint} fired again for {starts_at} after it resolved: "
                                    "a late duplicate, ignored", (event.id,)))
        return True

    async def release(self, tx: Transaction, ref: CampaignRef, owner: str, now: datetime, *, why: str,
                      decision: Decision | None = None) -> bool:
        """Remove one owner's hold; True when no hold is left and the bot's pause must be undone."""
        key = str(ref)
        removed = await tx.remove_hold(key, owner, every_key=_every_key(owner))
        legacy = owner.partition("@")[0] if owner.startswith("rule:") and "@" in owner else None
        if legacy is not None:          # a hold placed before holds were kept per key (one owner per rule)
            removed = await tx.remove_hold(key, legacy) or removed
        if not removed:
            return False
        await tx.add_audit(AuditRow(now, "decision", key, decision.rule if decision else owner, Act.RELEASE,
                                    "hold_removed", why, decision.event_ids if decision else (),
                                    {"owner": owner, **(decision.inputs if decision else {})}))
        return await self._mark(tx, key, now)

    async def _lift(self, tx: Transaction, key: str, owner: str, now: datetime) -> bool:
        """Remove a hold without a decision behind it (the vendor lifted its own pause)."""
        return await tx.remove_hold(key, owner) and await self._mark(tx, key, now)

    async def go_live(self, tx: Transaction, ref: CampaignRef, now: datetime) -> bool:
        """The campaign's vendor was in dry run when a rule held it and is live now: what dry run only
        recorded is carried out (paused, with an audit row and a notice). True to reconcile."""
        key = str(ref)
        record = await tx.campaign(key)
        holds = active(await tx.holds(key))
        await tx.set_campaign(replace(record, dry_paused=False), now)
        if not holds:
            return False
        detail = (f"held while {ref.vendor} ran in dry run ({'; '.join(h.reason for h in holds)}); "
                  f"{ref.vendor} is live now: pausing")
        await tx.add_audit(AuditRow(now, "decision", key, None, Act.PAUSE, "carried_live", detail, (),
                                    {"holds": [h.owner for h in holds]}))
        tx.on_commit(partial(deliver, self._notifier, Notice("carried_live", key, detail, now)))
        log.warning("campaign.dry_run_carried_live", campaign=key, holds=[h.owner for h in holds])
        return await self._mark(tx, key, now)

    async def reconcile(self, ref: CampaignRef) -> None:
        """Carry out the campaign's pending intent, if any. Call while holding `lock(ref)`."""
        await self._reconciler.reconcile(ref)

    async def gave_up(self, ref: CampaignRef, error: str, *, attempts: int) -> None:
        """The retry budget is spent while the vendor is down: record and announce it (see Reconciler)."""
        await self._reconciler.gave_up(ref, error, attempts=attempts)


def _every_key(owner: str) -> bool:
    """`rule:<name>` without a key: every per-key hold of that rule (`rule:<name>@<key>`)."""
    return owner.startswith("rule:") and "@" not in owner
