"""Pause/resume logic shared by vendors with a read endpoint (Smartlead, Inbox): read, act, confirm.

The rules (vendors.md §7, §8.4, §8.7):

* `pause` reads the state first (unless the caller passes the status it just read as `current`). ACTIVE → send the pause. PAUSED → no call (idempotent).
  DRAFT/STOPPED/COMPLETED/ARCHIVED → no call: nothing is sending, and a "pause" could turn a draft
  into a paused campaign that a later resume would launch. UNKNOWN → `VendorRefused` (take no
  automatic action on a status we do not understand).
* `resume` reads the state first. PAUSED → send the resume. ACTIVE → no call. Anything else
  (notably DRAFT: resuming would *launch* it) → `VendorRefused`, no call.
* Before retrying a write that failed with 429/5xx/timeout, the state is read again; the loop stops
  if the campaign is already at the target (the first attempt went through but its answer was lost).
* A 400/409/422 answer to a write: read again and succeed if the campaign is already at the target.
* After a 2xx write the status in the answer is trusted when it is the target; otherwise the state
  is read again and returned as it is.
"""

from __future__ import annotations

from typing import Final, Literal

import structlog

from bot.errors import VendorRejected, VendorUnavailable
from bot.vendors.base import CampaignStatus
from bot.vendors.http import Reply, VendorHttp, VendorRefused

__all__ = ["Action", "GuardedVendor", "Settled"]

log = structlog.get_logger(__name__)

Action = Literal["pause", "resume"]

#: States in which nothing is being sent: pausing them is a no-op we do not send.
_NOT_SENDING: Final = frozenset(
    {CampaignStatus.DRAFT, CampaignStatus.STOPPED, CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED}
)
_SAME_STATE_ERRORS: Final = frozenset({400, 409, 422})


class GuardedVendor:
    """Base for clients that can read campaign state. Subclasses implement `_read` and `_write`."""

    name: str
    can_read_state = True
    _http: VendorHttp

    async def _read(self, campaign_id: str, *, operation: str, attempts: int | None = None) -> CampaignStatus:
        raise NotImplementedError

    async def _write(self, campaign_id: str, action: Action, settled: Settled) -> Reply | None:
        raise NotImplementedError

    def _reply_status(self, reply: Reply, campaign_id: str) -> CampaignStatus:
        raise NotImplementedError

    async def state(self, campaign_id: str) -> CampaignStatus:
        return await self._read(campaign_id, operation="state")

    async def pause(self, campaign_id: str, *, current: CampaignStatus | None = None) -> CampaignStatus:
        if current is None:
            current = await self._read(campaign_id, operation="pause")
        if current is CampaignStatus.PAUSED or current in _NOT_SENDING:
            log.info("vendor.pause_skipped", vendor=self.name, campaign_id=campaign_id, status=str(current))
            return current
        if current is not CampaignStatus.ACTIVE:
            raise VendorRefused(self.name, f"pause of campaign {campaign_id}",
                                f"campaign status is {current}; no automatic action")
        return await self._change(campaign_id, "pause", CampaignStatus.PAUSED)

    async def resume(self, campaign_id: str, *, current: CampaignStatus | None = None) -> CampaignStatus:
        if current is None:
            current = await self._read(campaign_id, operation="resume")
        if current is CampaignStatus.ACTIVE:
            log.info("vendor.resume_skipped", vendor=self.name, campaign_id=campaign_id, status=str(current))
            return current
        if current is not CampaignStatus.PAUSED:
            raise VendorRefused(self.name, f"resume of campaign {campaign_id}",
                                f"campaign is {current}; only a paused campaign is resumed")
        return await self._change(campaign_id, "resume", CampaignStatus.ACTIVE)

    async def _change(self, campaign_id: str, action: Action, target: CampaignStatus) -> CampaignStatus:
        settled = Settled(self, campaign_id, action, target)
        try:
            reply = await self._write(campaign_id, action, settled)
        except VendorRejected as exc:
            if isinstance(exc, VendorRefused) or exc.status not in _SAME_STATE_ERRORS:
                raise
            rejected = exc
        else:
            if reply is None:           # settled before a retry: nothing more to send
                return settled.final
            status = self._reply_status(reply, campaign_id)
            return status if status is target else await self._read(campaign_id, operation=action)
        now = await self._read(campaign_id, operation=action)
        if now is target:
            log.info("vendor.already_at_target", vendor=self.name, campaign_id=campaign_id,
                     status=rejected.status, detail=rejected.detail)
            return now
        raise rejected


class Settled:
    """Re-read before a retry: True (and `final` set) when there is nothing left to send."""

    def __init__(self, vendor: GuardedVendor, campaign_id: str, action: Action, target: CampaignStatus) -> None:
        self._vendor = vendor
        self._campaign_id = campaign_id
        self._action = action
        self._target = target
        self.final = target

    async def __call__(self) -> bool:
        try:
            now = await self._vendor._read(self._campaign_id, operation=self._action, attempts=1)
        except VendorUnavailable:
            if self._action == "pause":
                return False            # pausing again is harmless: keep retrying the write
            raise                       # never repeat a resume without knowing the state
        if now is self._target:
            return True
        if self._action == "resume" and now is not CampaignStatus.PAUSED:
            raise VendorRefused(self._vendor.name, f"resume of campaign {self._campaign_id}",
                                f"campaign became {now} while retrying; not resumed")
        if self._action == "pause" and now in _NOT_SENDING:
            self.final = now            # it stopped sending some other way: nothing to pause
            return True
        return False
