"""Smartlead client: read, pause and resume a campaign through the v1 API (key in the query string).

Contract (docs/vendors.md §1, the vendor's API reference): `GET /campaigns/{id}` reads the status and `updated_at` (the campaign's
last-change stamp, kept verbatim as `Observation.changed_at`); `POST /campaigns/{id}/status`
with `{"status": "PAUSED"}` pauses and `{"status": "START"}` resumes (the campaign then reports ACTIVE).
`STOPPED` is permanent: it, and anything else but PAUSED/START, is refused by an allowlist checked
right before the request is built. `resume` refuses (VendorRefused, no call) anything but a PAUSED
campaign, because START on a DRAFTED campaign launches it. See `bot.vendors.guarded` for the rest.

`inventory()` (§1.3, §1.5): `GET /campaigns/` (a bare array, or `{success, data}`), then
`GET /campaigns/{id}/email-accounts` for each campaign not ARCHIVED/STOPPED. Those bodies carry SMTP/IMAP
passwords: only `from_email` is ever taken out of them, and no part of them is logged or kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import aiohttp

from bot.errors import VendorNotFound
from bot.vendors.base import CampaignStatus, Guard, Observation
from bot.vendors.budget import MakeLimiter, limiter_of
from bot.vendors.guarded import Action, GuardedVendor, Settled
from bot.vendors.http import Reply, RetryPolicy, VendorRefused, check_campaign_id, find_stamp, find_status
from bot.vendors.smartlead import CAMPAIGN_ID, SPEC, STATUSES
from bot.vendors.spec import VendorConfig

__all__ = ["ALLOWED_STATUS_VALUES", "SmartleadClient", "campaign_items", "make_client", "parse_observation",
           "parse_status", "sender_emails"]

#: The only values campaign-guard ever sends to `POST /campaigns/{id}/status`. Never STOPPED.
ALLOWED_STATUS_VALUES: Final = frozenset({"PAUSED", "START"})
_REQUEST_VALUE: Final[dict[str, str]] = {"pause": "PAUSED", "resume": "START"}

_TO_COMMON: Final = STATUSES


#: Campaigns whose senders are not read: nothing will be sent from them again through this API.
_INVENTORY_SKIPPED: Final = frozenset({CampaignStatus.ARCHIVED, CampaignStatus.STOPPED})


def _items(body: Any) -> list[dict[str, Any]]:
    """The objects of a bare array or of a `{"data": [...]}` / `{"success": true, "data": [...]}` wrapper."""
    if isinstance(body, dict):
        body = body.get("data")
    return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []


def campaign_items(body: Any) -> Iterator[tuple[str, CampaignStatus]]:
    """(campaign id, common status) of each listed campaign whose id is a valid Smartlead id."""
    for item in _items(body):
        campaign_id = str(item.get("id", ""))
        if CAMPAIGN_ID.fullmatch(campaign_id):
            raw = item.get("status")
            yield campaign_id, _TO_COMMON.get(raw.upper() if isinstance(raw, str) else "", CampaignStatus.UNKNOWN)


def sender_emails(body: Any) -> set[str]:
    """The lower-cased `from_email` of each email account; every other field (passwords!) is dropped."""
    emails: set[str] = set()
    for item in _items(body):
        email = item.get("from_email")
        if isinstance(email, str) and "@" in email.strip():
            emails.add(email.strip().lower())
    return emails


def parse_status(body: Any, campaign_id: str) -> tuple[CampaignStatus, str | None]:
    """(common status, raw vendor value) from any Smartlead envelope; unknown values → UNKNOWN."""
    raw = find_status(body, campaign_id)
    return _TO_COMMON.get(raw.upper() if raw else "", CampaignStatus.UNKNOWN), raw


def parse_observation(body: Any, campaign_id: str) -> Observation:
    """Status and `updated_at` (verbatim) of a campaign read, from any Smartlead envelope."""
    return Observation(parse_status(body, campaign_id)[0], find_stamp(body, campaign_id, "updated_at"))


class SmartleadClient(GuardedVendor):
    """Smartlead campaign API: pause, resume, read status."""

    name = "smartlead"
    auth = "query"
    spec = SPEC

    def _parse_read(self, body: Any, campaign_id: str) -> Observation:
        return parse_observation(body, campaign_id)

    def _raw_status(self, body: Any, campaign_id: str) -> str | None:
        return find_status(body, campaign_id)

    async def inventory(self) -> dict[str, set[str]]:
        """`smartlead:<id>` → sender emails of every campaign that is not archived or stopped.

        Sequential, through the same limiter and retry policy as every other call. A campaign deleted
        between the list and its accounts (404) is left out; any other failure ends the refresh.
        """
        listed = await self._http.request("GET", "/campaigns/", operation="inventory")
        assert listed is not None
        mapping: dict[str, set[str]] = {}
        for campaign_id, status in campaign_items(listed.body):
            if status in _INVENTORY_SKIPPED:
                continue
            try:
                reply = await self._http.request("GET", f"/campaigns/{campaign_id}/email-accounts",
                                                 operation="inventory")
            except VendorNotFound:
                continue
            assert reply is not None
            mapping[f"{self.name}:{campaign_id}"] = sender_emails(reply.body)
        return mapping

    def _reply_status(self, reply: Reply, campaign_id: str) -> CampaignStatus:
        return parse_status(reply.body, campaign_id)[0]

    async def _write(self, campaign_id: str, action: Action, settled: Settled, guard: Guard | None) -> Reply | None:
        return await self._post_status(campaign_id, _REQUEST_VALUE[action], action, settled, guard)

    async def _post_status(
        self, campaign_id: str, value: str, operation: str, settled: Settled | None = None, guard: Guard | None = None
    ) -> Reply | None:
        """The one place a status is sent. The allowlist check sits right before the request."""
        path = f"/campaigns/{campaign_id}/status"
        check_campaign_id(self.name, campaign_id, f"POST {path}")
        if value not in ALLOWED_STATUS_VALUES:
            raise VendorRefused(self.name, f"POST {path}",
                                f"status {value[:20]!r} is never sent; allowed: {sorted(ALLOWED_STATUS_VALUES)}")
        return await self._http.request("POST", path, operation=operation, json_body={"status": value},
                                        settled=settled, guard=guard)


def make_client(session: aiohttp.ClientSession, config: VendorConfig, retry: RetryPolicy, timeout: float, *,
                limiters: MakeLimiter | None = None) -> SmartleadClient:
    """`SPEC.client`: a client from the Smartlead settings block. `limiters`: the fleet's shared budgets (bot.vendors.budget); without it, a limiter of its own."""
    assert config.api_key is not None
    return SmartleadClient(session, api_key=config.api_key, base_url=config.base_url, rate_limit=config.rate(),
                           limiter=limiter_of(limiters, config), retry=retry, timeout=timeout)
