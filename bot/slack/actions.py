"""What a person's pause, resume, keep-paused, approve or reject does to one campaign, inside the
worker's transaction. Idempotent by state: a hold already there, or already gone, changes nothing and
says so. Vendor writes happen afterwards, only through the executor's reconcile."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.errors import ConfigError
from bot.events import CampaignRef
from bot.executor import Executor
from bot.slack.blocks import esc
from bot.slack.views import VendorView, vendor_name
from bot.state.base import PASSIVE_KINDS, Hold, HoldKind
from bot.state.protocol import Transaction
from bot.vendors.base import CampaignStatus

__all__ = ["REMOVABLE_KINDS", "Step", "decide", "keep_paused", "pause", "resume"]

#: Holds a person with the resume permission may remove. Never `vendor`: the vendor paused it itself.
REMOVABLE_KINDS = frozenset({HoldKind.PERSON, HoldKind.RULE, HoldKind.ALERT})


@dataclass(frozen=True, slots=True)
class Step:
    """The answer for one campaign, and whether its vendor state must be reconciled now."""

    ref: CampaignRef | None
    text: str
    reconcile: bool = False


class _Decider(Protocol):
    async def __call__(self, tx: Transaction, decision_id: int, *, by: str, now: datetime) -> CampaignRef: ...


def _at(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


async def pause(tx: Transaction, executor: Executor, ref: CampaignRef, *, user: str, reason: str, now: datetime,
                event_id: str, view: VendorView) -> Step:
    """Place the person's hold (owner `user:<id>`, kind `person`)."""
    key, owner = str(ref), f"user:{user}"
    if view.missing:
        return Step(ref, f"`{ref}` — {esc(view.note)}, e.g. with `status {ref}`; nothing paused")
    mine = next((h for h in await tx.holds(key) if h.owner == owner), None)
    if mine is not None:
        return Step(ref, f"`{ref}` — already paused by you since {_at(mine.created_at)}; nothing changed")
    why = f"paused from Slack by <@{user}>" + (f": {reason}" if reason else "")
    hold = Hold(key, owner, HoldKind.PERSON, why, now, (event_id,), {"via": "slack", "slack_user": user})
    needs = await executor.hold(tx, hold)
    text = f"`{ref}` — hold placed by <@{user}>"
    if view.status is CampaignStatus.PAUSED and not (await tx.campaign(key)).bot_paused:
        text += f" ({vendor_name(ref)} shows it paused already, by someone else: campaign-guard will never resume it)"
    return Step(ref, text, needs)


async def resume(tx: Transaction, executor: Executor, ref: CampaignRef, *, user: str, now: datetime,
                 override_for: timedelta, view: VendorView) -> Step:
    """Remove every person, rule and alert hold; record the override; the reconcile resumes what is ours."""
    key, name = str(ref), vendor_name(ref)
    holds = await tx.holds(key)
    removable = [h for h in holds if h.kind in REMOVABLE_KINDS]
    vendor_held = any(h.kind == HoldKind.VENDOR for h in holds)
    record = await tx.campaign(key)
    outside = view.status is CampaignStatus.PAUSED and not (record.bot_paused or record.dry_paused)
    if not removable:
        if vendor_held:
            text = f"{name} paused `{ref}` itself: campaign-guard cannot resume it — resume it in {name}"
        elif outside:
            text = f"`{ref}` was paused outside campaign-guard: resume it in {name}'s UI"
        elif view.missing:
            text = f"`{ref}` — {esc(view.note)}"
        else:
            state = f"it is {view.status}" if view.status else esc(view.note) or "nothing held"
            text = f"`{ref}` — nothing to resume: campaign-guard holds no pause on it ({state})"
        return Step(ref, text)
    needs = False
    for hold in removable:
        needs |= await executor.release(tx, ref, hold.owner, now, why=f"resumed from Slack by user:{user}")
    until = now + override_for
    await executor.override(tx, ref, by=f"user:{user}", now=now, until=until)
    owners = ", ".join(f"`{esc(h.owner)}`" for h in removable)
    text = f"`{ref}` — removed {len(removable)} hold(s) ({owners}); rules leave it alone until {_at(until)}"
    if vendor_held:
        text += f". {name} paused it itself too: resume it in {name}"
    elif outside:
        text += f". It was paused outside campaign-guard: resume it in {name}'s UI"
    elif view.status is CampaignStatus.ACTIVE:
        text += ". It is already active (someone resumed it outside campaign-guard)"
    return Step(ref, text, needs)


async def keep_paused(tx: Transaction, executor: Executor, ref: CampaignRef, *, user: str, now: datetime,
                      event_id: str, view: VendorView) -> Step:
    """The Keep paused button: the clicker takes a hold of their own, so the pause outlives the rule's."""
    key, owner = str(ref), f"user:{user}"
    holds = await tx.holds(key)
    record = await tx.campaign(key)
    if view.status is CampaignStatus.ACTIVE:
        return Step(ref, f"`{ref}` is active now: someone resumed it outside campaign-guard since this notice. "
                         f"Nothing kept paused; to pause it again: `pause {ref}`")
    if not any(h.kind not in PASSIVE_KINDS for h in holds) and not (record.bot_paused or record.dry_paused):
        state = f"it is {view.status}" if view.status else "nothing holds it"
        return Step(ref, f"`{ref}` is no longer held by campaign-guard ({state}): nothing to keep; "
                         f"to pause it: `pause {ref}`")
    if any(h.owner == owner for h in holds):
        return Step(ref, f"`{ref}` — already kept paused by you; nothing changed")
    hold = Hold(key, owner, HoldKind.PERSON, f"kept paused from Slack by <@{user}>", now, (event_id,),
                {"via": "slack", "slack_user": user})
    needs = await executor.hold(tx, hold)
    return Step(ref, f"`{ref}` stays paused: <@{user}> holds it now, even after the rule clears "
                     f"(`resume {ref}` lifts it)", needs)


async def decide(tx: Transaction, executor: Executor, ref: CampaignRef | None, *, approve: bool, decision_id: int | None,
                 user: str, now: datetime) -> Step | None:
    """Approve or reject a parked pause. None when this version has no parked decisions to act on."""
    method: _Decider | None = getattr(executor, "approve_pending" if approve else "reject_pending", None)
    if method is None:
        return None
    if decision_id is None:
        return Step(ref, "this button names no decision: approve it with `campaign-guard decisions approve N`")
    try:
        decided = await method(tx, decision_id, by=f"user:{user}", now=now)
    except ConfigError as exc:       # unknown, or already approved/rejected/expired
        return Step(ref, f"decision #{decision_id}: {esc(str(exc))}; nothing changed")
    if approve:
        return Step(decided, f"decision #{decision_id} approved by <@{user}>: pausing `{decided}`", True)
    return Step(decided, f"decision #{decision_id} rejected by <@{user}>: `{decided}` is not paused")
