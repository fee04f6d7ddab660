"""Blast-radius breaker: past N automated pauses per vendor in a window, pauses wait for a person.

A misconfigured alert or rule must not pause the whole workspace. Over the limit, an automated hold
is parked as a pending decision (a passive `pending:` hold plus a row a person approves, rejects or
lets expire); the first trip in a window is announced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.errors import ConfigError
from bot.events import CampaignRef
from bot.state.base import AuditRow, Hold, Pending, PendingDecision
from bot.state.sqlite import Tx

__all__ = ["AUTOMATED_KINDS", "Breaker", "Trip"]

#: Hold kinds the breaker counts and may park. People's pauses and vendor holds are never parked.
AUTOMATED_KINDS = frozenset({"rule", "alert"})


@dataclass(frozen=True, slots=True)
class Trip:
    """What happened when the breaker parked a hold."""

    decision_id: int
    first_in_window: bool
    recent: int


@dataclass(frozen=True, slots=True)
class Breaker:
    limit: int = 5
    window: timedelta = timedelta(minutes=10)
    ttl: timedelta = timedelta(hours=24)

    async def admit(self, tx: Tx, hold: Hold) -> Trip | None:
        """None: the automated pause may go ahead (and is counted). A Trip: it was parked instead."""
        vendor = hold.campaign.partition(":")[0]
        now = hold.created_at
        recent = await tx.recent_pauses(vendor, now - self.window)
        if recent < self.limit:
            await tx.log_pause(vendor, hold.campaign, now)
            return None
        await tx.remove_hold(hold.campaign, hold.owner)
        parked = Hold(hold.campaign, f"pending:{hold.owner}", "pending", hold.reason, now, hold.event_ids,
                      hold.details)
        await tx.add_hold(parked)
        decision_id = await tx.add_pending(hold, expires_at=now + self.ttl)
        already = await tx.pending(status="pending")
        first = sum(1 for p in already if p.hold.campaign.startswith(f"{vendor}:")
                    and now - p.hold.created_at < self.window) == 1
        detail = (f"breaker open: {recent} automated pauses of {vendor} campaigns in the last {self.window}; "
                  f"pause of {hold.campaign} ({hold.reason}) waits for approval as decision #{decision_id}")
        await tx.add_audit(AuditRow(now, "decision", hold.campaign, hold.owner, "pause", "pending_approval", detail,
                                    hold.event_ids, {"decision_id": decision_id, "recent": recent, **hold.details}))
        return Trip(decision_id, first, recent)

    async def approve(self, tx: Tx, decision_id: int, *, by: str, now: datetime) -> CampaignRef:
        """Place the parked hold for real, counted but past the breaker, and write the pause intent."""
        hold = (await self._pending(tx, decision_id)).hold
        await tx.decide_pending(decision_id, "approved", by=by, now=now)
        await tx.remove_hold(hold.campaign, f"pending:{hold.owner}")
        await tx.add_hold(hold)
        await tx.log_pause(hold.campaign.partition(":")[0], hold.campaign, now)
        await tx.add_audit(AuditRow(now, "decision", hold.campaign, hold.owner, "pause", "approved",
                                    f"decision #{decision_id} approved by {by}", hold.event_ids))
        record = await tx.campaign(hold.campaign)
        if not (record.bot_paused or record.pending in (Pending.PAUSE, Pending.PAUSE_SENT)):
            await tx.set_campaign(replace(record, pending=Pending.PAUSE), now)
        return CampaignRef.parse(hold.campaign)

    async def reject(self, tx: Tx, decision_id: int, *, by: str, now: datetime) -> CampaignRef:
        """Drop the parked hold: nothing is paused."""
        hold = (await self._pending(tx, decision_id)).hold
        await tx.decide_pending(decision_id, "rejected", by=by, now=now)
        await tx.remove_hold(hold.campaign, f"pending:{hold.owner}")
        await tx.add_audit(AuditRow(now, "decision", hold.campaign, hold.owner, "pause", "rejected",
                                    f"decision #{decision_id} rejected by {by}: not paused"))
        return CampaignRef.parse(hold.campaign)

    @staticmethod
    async def _pending(tx: Tx, decision_id: int) -> PendingDecision:
        found = await tx.pending(decision_id=decision_id, status=None)
        if not found:
            raise ConfigError(f"no decision #{decision_id}")
        if found[0].status != "pending":
            raise ConfigError(f"decision #{decision_id} is already {found[0].status}")
        return found[0]

    @staticmethod
    async def expire(tx: Tx, now: datetime) -> list[PendingDecision]:
        """Expire pending decisions past their time; their parked holds go away."""
        expired = [p for p in await tx.pending(status="pending") if p.expires_at <= now]
        for pending in expired:
            await tx.decide_pending(pending.id, "expired", by="campaign-guard", now=now)
            await tx.remove_hold(pending.hold.campaign, f"pending:{pending.hold.owner}")
            await tx.add_audit(AuditRow(now, "decision", pending.hold.campaign, pending.hold.owner, "pause",
                                        "expired", f"decision #{pending.id} expired without approval: not paused"))
        return expired
