"""Smartlead client: read, pause and resume a campaign through the v1 API (key in the query string).

Contract (vendors.md §1, seed 000): `GET /campaigns/{id}` reads the status; `POST /campaigns/{id}/status`
with `{"status": "PAUSED"}` pauses and `{"status": "START"}` resumes (the campaign then reports ACTIVE).
`STOPPED` is permanent: it, and anything else but PAUSED/START, is refused by an allowlist checked
right before the request is built. `resume` refuses (VendorRefused, no call) anything but a PAUSED
campaign, because START on a DRAFTED campaign launches it. See `bot.vendors.guarded` for the rest.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp
import structlog
from pydantic import SecretStr

from bot.config import REAL_BASE_URLS
from bot.vendors.base import CampaignStatus
from bot.vendors.guarded import Action, GuardedVendor, Settled
from bot.vendors.http import Reply, RetryPolicy, VendorHttp, VendorRefused, check_campaign_id, find_status
from bot.vendors.ratelimit import SlidingWindowLimiter

__all__ = ["ALLOWED_STATUS_VALUES", "SmartleadClient", "parse_status"]

log = structlog.get_logger(__name__)

#: The only values campaign-guard ever sends to `POST /campaigns/{id}/status`. Never STOPPED.
ALLOWED_STATUS_VALUES: Final = frozenset({"PAUSED", "START"})
_REQUEST_VALUE: Final[dict[str, str]] = {"pause": "PAUSED", "resume": "START"}

_TO_COMMON: Final = {
    "DRAFTED": CampaignStatus.DRAFT,
    "ACTIVE": CampaignStatus.ACTIVE,
    "PAUSED": CampaignStatus.PAUSED,
    "STOPPED": CampaignStatus.STOPPED,
    "COMPLETED": CampaignStatus.COMPLETED,
    "ARCHIVED": CampaignStatus.ARCHIVED,
}


def parse_status(body: Any, campaign_id: str) -> tuple[CampaignStatus, str | None]:
    """(common status, raw vendor value) from any Smartlead envelope; unknown values → UNKNOWN."""
    raw = find_status(body, campaign_id)
    return _TO_COMMON.get(raw.upper() if raw else "", CampaignStatus.UNKNOWN), raw


class SmartleadClient(GuardedVendor):
    """Smartlead campaign API: pause, resume, read status."""

    name = "smartlead"
    can_read_state = True

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: SecretStr | str,
        base_url: str = REAL_BASE_URLS["smartlead"],
        rate_limit: tuple[int, float] = (10, 2.0),
        limiter: SlidingWindowLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        self._http = VendorHttp(
            self.name, session, base_url=base_url,
            api_key=api_key if isinstance(api_key, SecretStr) else SecretStr(api_key), auth="query",
            limiter=limiter or SlidingWindowLimiter(*rate_limit), retry=retry, timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"SmartleadClient({self._http!r})"

    async def _read(self, campaign_id: str, *, operation: str, attempts: int | None = None) -> CampaignStatus:
        path = f"/campaigns/{campaign_id}"
        check_campaign_id(self.name, campaign_id, f"GET {path}")
        reply = await self._http.request("GET", path, operation=operation, max_attempts=attempts)
        assert reply is not None        # only a `settled` callback can make request() return None
        status, raw = parse_status(reply.body, campaign_id)
        if status is CampaignStatus.UNKNOWN:
            log.warning("vendor.unknown_status", vendor=self.name, campaign_id=campaign_id, raw=str(raw)[:40])
        return status

    def _reply_status(self, reply: Reply, campaign_id: str) -> CampaignStatus:
        return parse_status(reply.body, campaign_id)[0]

    async def _write(self, campaign_id: str, action: Action, settled: Settled) -> Reply | None:
        return await self._post_status(campaign_id, _REQUEST_VALUE[action], action, settled)

    async def _post_status(
        self, campaign_id: str, value: str, operation: str, settled: Settled | None = None
    ) -> Reply | None:
        """The one place a status is sent. The allowlist check sits right before the request."""
        path = f"/campaigns/{campaign_id}/status"
        check_campaign_id(self.name, campaign_id, f"POST {path}")
        if value not in ALLOWED_STATUS_VALUES:
            raise VendorRefused(self.name, f"POST {path}",
                                f"status {value[:20]!r} is never sent; allowed: {sorted(ALLOWED_STATUS_VALUES)}")
        return await self._http.request("POST", path, operation=operation, json_body={"status": value},
                                        settled=settled)
