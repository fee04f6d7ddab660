"""The vendor protocol the executor relies on, and the common campaign status model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

__all__ = ["CampaignMetrics", "CampaignStatus", "CampaignVendor", "Guard", "HealthSource", "InventorySource",
           "MailboxHealth", "MetricsSource", "Observation", "WriteResult"]


class CampaignStatus(StrEnum):
    """One status vocabulary for every vendor (docs/vendors.md §6)."""

    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"
    ARCHIVED = "archived"
    #: paused by the vendor itself (Instantly -1/-2/-99: accounts unhealthy, bounce protect, suspended;
    #: lemlist `errors`): campaign-guard never pauses over it and never resumes it
    VENDOR_HELD = "vendor_held"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Observation:
    """One read of a campaign at the vendor."""

    status: CampaignStatus
    #: the vendor's own last-change stamp of the campaign (Smartlead `updated_at`, ...) when its answer
    #: carries one, verbatim. A stamp that moved since campaign-guard's pause means someone touched it.
    changed_at: str | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one pause or resume did, with the evidence for it (ownership needs positive evidence)."""

    status: CampaignStatus              # the status after the call (UNKNOWN when nothing said it)
    sent: bool                          # a write request went out (False: decided a no-op client-side)
    #: positive evidence that THIS call moved the campaign: it was seen running (paused, for a resume)
    #: before the write and paused (running) after it; for a vendor without reads, the answer's own
    #: status and time stamp (`pausedAt` not earlier than `sent_at`).
    proven: bool
    #: the last-change stamp read right after the write, if any; when nothing was sent, the stamp of the
    #: read that decided so; Leadterra (no reads): the answer's `pausedAt`/`startedAt`, verbatim
    changed_at: str | None = None
    detail: str = ""                    # why it is not proven, in words for the audit row and notice


#: "Is this write still wanted?" Called right before each attempt is sent (after the rate-limit slot
#: was granted); False withdraws the write (bot.errors.WriteCancelled) instead of sending it.
Guard = Callable[[], Awaitable[bool]]


class CampaignVendor(Protocol):
    """What the executor needs from an outreach vendor.

    `campaign_id` is the vendor's own id, already validated by `bot.events.CampaignRef`.
    Implementations raise the `bot.errors.VendorError` tree, retry 429/5xx/timeouts internally
    within their budget, respect the vendor's rate limit, and never send an irreversible status.
    """

    name: str
    #: False when the vendor has no read endpoint (Leadterra): `state` then returns UNKNOWN.
    can_read_state: bool

    async def state(self, campaign_id: str) -> CampaignStatus:
        """`(await observe(campaign_id)).status`."""
        ...

    async def observe(self, campaign_id: str, *, background: bool = False) -> Observation:
        """Read the campaign (UNKNOWN, no call, without a read endpoint). `background`: a drift check,
        served by the rate limiter only after every waiting pause, resume and foreground read."""
        ...

    async def pause(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                    sent_at: datetime | None = None) -> WriteResult:
        """Pause an active campaign and prove it. `current`: a read made just now (so the client need not
        read again). `guard`: see `Guard`. `sent_at`: when this intent was first sent (a retry after a
        crash): evidence must not predate it. A draft, stopped, completed or archived campaign is never
        written; an unknown status is refused (VendorRefused)."""
        ...

    async def resume(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                     sent_at: datetime | None = None) -> WriteResult:
        """Resume a paused campaign (never a draft, never an unknown status); arguments as for `pause`."""
        ...


@runtime_checkable
class InventorySource(Protocol):
    """A vendor that can tell which sender accounts each of its campaigns sends from.

    `inventory()` maps `vendor:id` to lower-cased sender emails (an empty set: a campaign with no
    sender known). Implemented where the vendor's API offers it (Smartlead); Leadterra documents no
    campaign → sender mapping and Inbox no campaign list, so they do not implement it.
    """

    async def inventory(self) -> dict[str, set[str]]: ...


@dataclass(frozen=True, slots=True)
class CampaignMetrics:
    """A campaign's numbers as the vendor's own analytics count them (a poll, bot.polling), lifetime totals.

    Counts the vendor does not give are None (never 0: "not said" is not "none"). Rates are the vendor's
    own, as fractions (Smartlead's `"1.6%"` → 0.016), None when it gives none."""

    campaign_id: str                    # the vendor's own id, validated by the caller (CampaignRef)
    sent: int | None = None
    bounced: int | None = None
    replied: int | None = None
    opened: int | None = None
    unsubscribed: int | None = None
    bounce_rate: float | None = None
    reply_rate: float | None = None
    #: when the campaign sent its first email, if the vendor says (the "no outcome after 48 hours" rule)
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MailboxHealth:
    """One sending mailbox's health as the vendor reports it (a poll). None: the vendor does not say.

    Never carries a password or any other credential of the mailbox: only these fields are taken from
    the vendor's answer (Smartlead's email-accounts answer holds SMTP and IMAP passwords)."""

    email: str                          # lower-cased sender address (the inventory's sender key)
    account_id: str = ""                # the vendor's own id of the mailbox
    smtp_ok: bool | None = None
    imap_ok: bool | None = None
    #: warmup reputation, 0-100 (Smartlead gives `95` in one endpoint and `"95%"` in another)
    reputation: float | None = None
    warmup_blocked: bool | None = None
    #: campaign ids this mailbox sends for, when the vendor's answer lists them (else the inventory's)
    campaigns: tuple[str, ...] = ()


@runtime_checkable
class MetricsSource(Protocol):
    """A vendor client that can poll its campaigns' analytics (Smartlead overall-stats, Instantly daily
    analytics, Leadterra stats, lemlist stats). Reads are `background` (served after pauses and resumes).
    Raises the `bot.errors.VendorError` tree; the poller retries and reports, never decides on a failure."""

    async def campaign_metrics(self) -> list[CampaignMetrics]: ...


@runtime_checkable
class HealthSource(Protocol):
    """A vendor client that can poll its sending mailboxes' health (Smartlead email-accounts, Instantly
    account diagnostics). Reads are `background`; errors as for `MetricsSource`."""

    async def mailbox_health(self) -> list[MailboxHealth]: ...
