"""Leadterra client: pause and start a campaign with a Bearer key; Leadterra has no read endpoint.

Contract (vendors.md §2, seeds 001 and 004): `POST /campaigns/{id}/pause` and `POST /campaigns/{id}/start`,
no request body; answers `{"id", "status": "paused", "pausedAt"}` / `{"id", "status": "running", "startedAt"}`.
Pause on a paused or draft campaign and start on a running one are documented no-ops returning the
current state, so both writes are retried on 429/5xx/timeouts without a re-read (there is none).

There is no `GET /campaigns/{id}`: `can_read_state` is False and `state()` returns UNKNOWN without a
call. The client therefore cannot see a draft: start on a draft LAUNCHES it, and only the caller's
own record ("campaign-guard paused this campaign") makes `resume()` safe. Errors carry the vendor
code first in `detail` (`no_leads_enrolled: ...`), read from `error.code`, `code` or `error`.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp
from pydantic import SecretStr

from bot.config import REAL_BASE_URLS
from bot.vendors.base import CampaignStatus
from bot.vendors.http import RetryPolicy, VendorHttp, check_campaign_id, find_status
from bot.vendors.ratelimit import SlidingWindowLimiter

__all__ = ["LeadterraClient", "parse_status"]

_TO_COMMON: Final = {
    "draft": CampaignStatus.DRAFT,
    "running": CampaignStatus.ACTIVE,
    "paused": CampaignStatus.PAUSED,
}


def parse_status(body: Any, campaign_id: str, default: CampaignStatus) -> CampaignStatus:
    """Common status from a pause/start answer; `default` when the answer carries none."""
    raw = find_status(body, campaign_id)
    if raw is None:
        return default
    return _TO_COMMON.get(raw.lower(), CampaignStatus.UNKNOWN)


class LeadterraClient:
    """Leadterra campaign API: pause and start. No state read."""

    name = "leadterra"
    can_read_state = False

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: SecretStr | str,
        base_url: str = REAL_BASE_URLS["leadterra"],
        rate_limit: tuple[int, float] = (60, 60.0),
        limiter: SlidingWindowLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        self._http = VendorHttp(
            self.name, session, base_url=base_url,
            api_key=api_key, auth="bearer",
            limiter=limiter or SlidingWindowLimiter(*rate_limit), retry=retry, timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"LeadterraClient({self._http!r})"

    async def state(self, campaign_id: str) -> CampaignStatus:
        """Leadterra documents no read endpoint: always UNKNOWN, no call."""
        check_campaign_id(self.name, campaign_id, "state")
        return CampaignStatus.UNKNOWN

    async def pause(self, campaign_id: str, *, current: CampaignStatus | None = None) -> CampaignStatus:
        """Pause; a paused or draft campaign is left as it is (the answer then says so)."""
        return await self._post(campaign_id, "pause", CampaignStatus.PAUSED)

    async def resume(self, campaign_id: str, *, current: CampaignStatus | None = None) -> CampaignStatus:
        """Start. Only call it for a campaign known (from your own record) to be paused."""
        return await self._post(campaign_id, "start", CampaignStatus.ACTIVE)

    async def _post(self, campaign_id: str, verb: str, target: CampaignStatus) -> CampaignStatus:
        path = f"/campaigns/{campaign_id}/{verb}"
        check_campaign_id(self.name, campaign_id, f"POST {path}")
        operation = "pause" if verb == "pause" else "resume"
        reply = await self._http.request("POST", path, operation=operation)
        assert reply is not None        # no `settled` callback: request() always answers or raises
        return parse_status(reply.body, campaign_id, target)
