"""Records kept by the state store: holds, per-campaign bot state, audit rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["ACTIVE_KINDS", "AUTOMATED_KINDS", "PASSIVE_KINDS", "SENT", "AuditRow", "CampaignRecord", "Hold",
           "HoldKind", "Parked", "Pending", "PendingDecision", "active"]


class Pending(StrEnum):
    """A write-ahead intent for one campaign, so a crash between decision and vendor call recovers.

    `*_SENT` is written just before the vendor call: after a crash, seeing the campaign paused with
    PAUSE_SENT proves the pause was ours; with PAUSE it was someone else's and is left alone.
    """

    PAUSE = "pause"
    PAUSE_SENT = "pause-sent"
    RESUME = "resume"
    RESUME_SENT = "resume-sent"


#: Intents whose vendor call may have gone out (an answer may be lost): resolved by a read or a resend.
SENT = frozenset({Pending.PAUSE_SENT, Pending.RESUME_SENT})


class HoldKind(StrEnum):
    """Who placed a hold. The active kinds keep a campaign paused; the passive ones are records only."""

    RULE = "rule"
    ALERT = "alert"
    PERSON = "person"
    VENDOR = "vendor"
    SHADOW = "shadow"           # a shadow-mode rule would have paused it
    SUPPRESSED = "suppressed"   # a rule would have paused it, but a person's override stands
    PENDING = "pending"         # parked by the blast-radius breaker until a person approves


#: Holds that are records only: they never pause a campaign nor keep it paused.
PASSIVE_KINDS = frozenset({HoldKind.SHADOW, HoldKind.SUPPRESSED, HoldKind.PENDING})
ACTIVE_KINDS = frozenset(HoldKind) - PASSIVE_KINDS
#: Hold kinds the blast-radius breaker counts and may park. People's pauses and vendor holds never are.
AUTOMATED_KINDS = frozenset({HoldKind.RULE, HoldKind.ALERT})


@dataclass(frozen=True, slots=True)
class Hold:
    """One reason to keep a campaign paused, owned by a rule, an alert, a person or the vendor."""

    campaign: str
    owner: str              # e.g. "rule:bounce-guard", "alert:<fingerprint>", "user:U123", "vendor"
    kind: str               # a HoldKind
    reason: str
    created_at: datetime
    event_ids: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


def active(holds: list[Hold]) -> list[Hold]:
    """The holds that keep a campaign paused."""
    return [h for h in holds if h.kind not in PASSIVE_KINDS]


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """What the bot knows about a campaign it acted on. Versioned: every write is a compare-and-set on
    `version`, so a write based on a stale read fails (bot.errors.StaleRecord) instead of undoing a newer one."""

    campaign: str
    #: campaign-guard paused it itself, with positive evidence (the only pauses it may undo)
    bot_paused: bool = False
    pending: Pending | None = None      # unfinished vendor action, if any
    dry_paused: bool = False            # dry-run bookkeeping: "would be paused"; never used for real calls
    vendor_status: str | None = None    # last status seen from or reported by the vendor
    updated_at: datetime | None = None
    version: int = 0                    # 0: never stored
    #: the vendor's last-change stamp read right after campaign-guard's pause (Smartlead `updated_at`):
    #: a different stamp later means someone touched the campaign since, and it is no longer ours
    vendor_marker: str | None = None
    sent_at: datetime | None = None     # when the pending *_SENT call was first sent (evidence must not predate it)
    checked_at: datetime | None = None  # last drift read


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One line of the audit log: a decision, an action and its outcome, or a failure."""

    at: datetime
    kind: str               # decision | action | failure | event
    campaign: str | None
    rule: str | None
    action: str             # pause | resume | hold.placed | hold.released | recorded | ...
    outcome: str            # e.g. paused, skipped, dry_run, failed, would_pause
    detail: str = ""
    event_ids: tuple[str, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


class Parked(StrEnum):
    """Where a pause the blast-radius breaker parked stands."""

    PENDING = "pending"         # waiting for a person
    APPROVED = "approved"       # paused after all
    REJECTED = "rejected"       # a person said no
    EXPIRED = "expired"         # nobody answered within BOT_PENDING_TTL
    WITHDRAWN = "withdrawn"     # its cause went away (the alert resolved) before anyone answered


@dataclass(frozen=True, slots=True)
class PendingDecision:
    """An automated pause the blast-radius breaker parked until a person approves or rejects it."""

    id: int
    hold: Hold              # the hold it would place (owner, kind, reason, triggering events)
    expires_at: datetime
    status: str             # a Parked
    decided_by: str | None = None
