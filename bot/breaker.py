"""Blast-radius breaker: past N automated pauses per vendor in a window, pauses wait for a person.

A misconfigured alert or rule must not pause the whole workspace. The breaker is consulted by the
reconciler at the moment of a real pause of a campaign it saw running (or, without a read endpoint,
did not see paused), so it counts pauses that really stop sending: campaigns already paused, finished
or gone, and dry-run pauses, never use up the budget. Over the limit, the automated holds are parked
as pending decisions (a passive `pending:` hold plus a row a person approves, rejects or lets expire);
the first trip in a window is announced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.errors import ConfigError
from bot.events import CampaignRef
from bot.state.base import AUTOMATED_KINDS, AuditRow, Hold, HoldKind, Parked, Pending, PendingDecision
from bot.state.protocol import Transaction
from bot.vocabulary import Act

__all__ = ["Breaker", "Trip"]


@dataclass(frozen=True, slots=True)
class Trip:
    """What happened when the breaker parked a campaign's automated holds."""

    decision_id: int
    first_in_window: bool
    recent: int


@dataclass(frozen=True, slots=True)
class Breaker:
    limit: int = 5
    window: timedelta = timedelta(minutes=10)
    ttl: timedelta = timedelta(hours=24)

    @staticmethod
    def applies(holds: list[Hold]) -> bool:
        """Only automated holds are metered: a person's or the vendor's hold, or a pause a person approved,
        goes ahead whatever the count."""
        return bool(holds) and all(h.kind in AUTOMATED_KINDS and "approved_by" not in h.details for h in holds)

    async def admit(self, tx: Transaction, campaign: str, holds: list[Hold], now: datetime) -> Trip | None:
        """Call right before pausing a running campaign for `holds` (all automated). None: go ahead (the
        pause is counted). A Trip: the holds were parked instead, nothing is to be sent."""
        vendor = campaign.partition(":")[0]
        recent = await tx.recent_pauses(vendor, now - self.window)
        if recent < self.limit:
            await tx.log_pause(vendor, campaign, now)
            return None
        decision_ids = []
        for hold in holds:
            await tx.remove_hold(campaign, hold.owner)
            await tx.add_hold(Hold(campaign, f"pending:{hold.owner}", HoldKind.PENDING, hold.reason, now,
                                   hold.event_ids, hold.details))
            decision_id = await tx.add_pending(replace(hold, created_at=now), expires_at=now + self.ttl)
            decision_ids.append(decision_id)
            detail = (f"breaker open: {recent} automated pauses of {vendor} campaigns in the last {self.window}; "
                      f"pause of {campaign} ({hold.reason}) waits for approval as decision #{decision_id}")
            await tx.add_audit(AuditRow(now, "decision", campaign, hold.owner, Act.PAUSE, "pending_approval", detail,
                                        hold.event_ids, {"decision_id": decision_id, "recent": recent,
                                                         **hold.details}))
        already = await tx.pending(status=Parked.PENDING)
        first = sum(1 for p in already if p.hold.campaign.startswith(f"{vendor}:")
                    and now - p.hold.created_at < self.window) == len(decision_ids)
        return Trip(decision_ids[0], first, recent)

    async def approve(self, tx: Transaction, decision_id: int, *, by: str, now: datetime) -> CampaignRef:
        """Place the parked hold for real, counted but past the breaker, and write the pause intent."""
        hold = (await self._pending(tx, decision_id)).hold
        await tx.decide_pending(decision_id, Parked.APPROVED, by=by, now=now)
        await tx.remove_hold(hold.campaign, f"pending:{hold.owner}")
        await tx.add_hold(replace(hold, details={**hold.details, "approved_by": by, "decision_id": decision_id}))
        await tx.log_pause(hold.campaign.partition(":")[0], hold.campaign, now)
        await tx.add_audit(AuditRow(now, "decision", hold.campaign, hold.owner, Act.PAUSE, Parked.APPROVED,
                                    f"decision #{decision_id} approved by {by}", hold.event_ids))
        record = await tx.campaign(hold.campaign)
        if record.pending is None and not record.bot_paused:
            await tx.set_campaign(replace(record, pending=Pending.PAUSE), now)
        return CampaignRef.parse(hold.campaign)

    async def reject(self, tx: Transaction, decision_id: int, *, by: str, now: datetime) -> CampaignRef:
        """Drop the parked hold: nothing is paused."""
        hold = (await self._pending(tx, decision_id)).hold
        await tx.decide_pending(decision_id, Parked.REJECTED, by=by, now=now)
        await tx.remove_hold(hold.campaign, f"pending:{hold.owner}")
        await tx.add_audit(AuditRow(now, "decision", hold.campaign, hold.owner, Act.PAUSE, Parked.REJECTED,
                                    f"decision #{decision_id} rejected by {by}: not paused"))
        return CampaignRef.parse(hold.campaign)

    @staticmethod
    async def _pending(tx: Transaction, decision_id: int) -> PendingDecision:
        found = await tx.pending(decision_id=decision_id, status=None)
        if not found:
            raise ConfigError(f"no decision #{decision_id}")
        if found[0].status != Parked.PENDING:
            raise ConfigError(f"decision #{decision_id} is already {found[0].status}")
        return found[0]

    @staticmethod
    async def expire(tx: Transaction, now: datetime) -> list[PendingDecision]:
        """Expire pending decisions past their time; their parked holds go away."""
        expired = [p for p in await tx.pending(status=Parked.PENDING) if p.expires_at <= now]
        for pending in expired:
            await tx.decide_pending(pending.id, Parked.EXPIRED, by="campaign-guard", now=now)
            await tx.remove_hold(pending.hold.campaign, f"pending:{pending.hold.owner}")
            await tx.add_audit(AuditRow(now, "decision", pending.hold.campaign, pending.hold.owner, Act.PAUSE,
                                        Parked.EXPIRED, f"decision #{pending.id} expired without approval: not paused"))
        return expired
