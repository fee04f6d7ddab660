"""The vendor protocol the executor relies on, and the common campaign status model."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, runtime_checkable

__all__ = ["CampaignStatus", "CampaignVendor", "InventorySource"]


class CampaignStatus(StrEnum):
    """One status vocabulary for every vendor (vendors.md §6)."""

    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"
    ARCHIVED = "archived"
    UNKNOWN = "unknown"


class CampaignVendor(Protocol):
    """What the executor needs from an outreach vendor.

    `campaign_id` is the vendor's own id, already validated by `bot.events.CampaignRef`.
    Implementations raise the `bot.errors.VendorError` tree, retry 429/5xx/timeouts internally
    within their budget, respect the vendor's rate limit, and never send an irreversible status.
    """

    name: str
    #: False when the vendor has no read endpoint (Leadterra): `state` then returns UNKNOWN.
    can_read_state: bool

    async def state(self, campaign_id: str) -> CampaignStatus: ...

    async def pause(self, campaign_id: str, *, current: CampaignStatus | None = None) -> CampaignStatus:
        """Pause an active campaign. `current`: a status the caller read just now, so the client need
        not read it again (a client without a read endpoint ignores it)."""
        ...

    async def resume(self, campaign_id: str, *, current: CampaignStatus | None = None) -> CampaignStatus:
        """Resume a paused campaign (never a draft); `current` as for `pause`."""
        ...


@runtime_checkable
class InventorySource(Protocol):
    """A vendor that can tell which sender accounts each of its campaigns sends from.

    `inventory()` maps `vendor:id` to lower-cased sender emails (an empty set: a campaign with no
    sender known). Implemented where the vendor's API offers it (Smartlead); Leadterra documents no
    campaign → sender mapping and Inbox no campaign list, so they do not implement it.
    """

    async def inventory(self) -> dict[str, set[str]]: ...
