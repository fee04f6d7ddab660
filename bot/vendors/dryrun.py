"""Dry-run vendor: logs what would have been done and makes no HTTP call at all.

Used for a vendor without an API key, or for every vendor when `BOT_DRY_RUN` is set. It answers with
the status the real call would have produced, marked as not sent and not proven: pause →
`WriteResult(PAUSED, sent=False, proven=False, detail="dry run")`, resume → the same with ACTIVE, and
observe/state → UNKNOWN (it cannot read anything, so `can_read_state` is False).
"""

from __future__ import annotations

from datetime import datetime

import structlog

from bot.vendors.base import CampaignStatus, Guard, Observation, WriteResult

__all__ = ["DryRunVendor"]

log = structlog.get_logger(__name__)


class DryRunVendor:
    """Stands in for `name`'s real client; `reason` is "dry_run" or "no_api_key"."""

    can_read_state = False

    def __init__(self, name: str, *, reason: str = "dry_run") -> None:
        self.name = name
        self.reason = reason

    def __repr__(self) -> str:
        return f"DryRunVendor({self.name!r}, reason={self.reason!r})"

    async def observe(self, campaign_id: str, *, background: bool = False) -> Observation:
        return Observation(self._log("state", campaign_id, CampaignStatus.UNKNOWN))

    async def state(self, campaign_id: str) -> CampaignStatus:
        return (await self.observe(campaign_id)).status

    async def pause(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                    sent_at: datetime | None = None) -> WriteResult:
        status = self._log("pause", campaign_id, CampaignStatus.PAUSED)
        return WriteResult(status, sent=False, proven=False, detail="dry run")

    async def resume(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                     sent_at: datetime | None = None) -> WriteResult:
        status = self._log("resume", campaign_id, CampaignStatus.ACTIVE)
        return WriteResult(status, sent=False, proven=False, detail="dry run")

    async def inventory(self) -> dict[str, set[str]]:
        """Dry-run calls no vendor, reads included: nothing is learned."""
        return {}

    def _log(self, action: str, campaign_id: str, result: CampaignStatus) -> CampaignStatus:
        log.info("vendor.dry_run", vendor=self.name, action=action, campaign_id=campaign_id,
                 result=str(result), reason=self.reason)
        return result
