"""Records kept by the state store: holds, per-campaign bot state, audit rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["AuditRow", "CampaignRecord", "Hold", "Pending", "PendingDecision"]


class Pending(StrEnum):
    """A write-ahead intent for one campaign, so a crash between decision and vendor call recovers.

    `*_SENT` is written just before the vendor call: after a crash, seeing the campaign paused with
    PAUSE_SENT proves the pause was ours; with PAUSE it was someone else's and is left alone.
    """

    PAUSE = "pause"
    PAUSE_SENT = "pause-sent"
    RESUME = "resume"
    RESUME_SENT = "resume-sent"


@dataclass(frozen=True, slots=True)
class Hold:
    """One reason to keep a campaign paused, owned by a rule, an alert, a person or the vendor."""

    campaign: str
    owner: str              # e.g. "rule:bounce-guard", "alert:<fingerprint>", "user:U123", "vendor"
    kind: str               # rule | alert | person | vendor
    reason: str
    created_at: datetime
    event_ids: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """What the bot knows about a campaign it acted on."""

    campaign: str
    bot_paused: bool = False            # the bot itself paused it (the only pauses it may undo)
    pending: Pending | None = None      # unfinished vendor action, if any
    dry_paused: bool = False            # dry-run bookkeeping: "would be paused"; never used for real calls
    vendor_status: str | None = None    # last status seen from or reported by the vendor
    updated_at: datetime | None = None


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


@dataclass(frozen=True, slots=True)
class PendingDecision:
    """An automated pause the blast-radius breaker parked until a person approves or rejects it."""

    id: int
    hold: Hold              # the hold it would place (owner, kind, reason, triggering events)
    expires_at: datetime
    status: str             # pending | approved | rejected | expired
    decided_by: str | None = None
