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

Polls (a `MetricsSource` and a `HealthSource`, parsed by `bot.vendors.smartlead.analytics`), every request
at background priority (served by the rate limiter after every waiting pause, resume and foreground read):
`campaign_metrics()` (§1.4): `GET /analytics/campaign/overall-stats` over `analytics.LOOKBACK_DAYS`, pages
read until one comes back empty; rates are percent strings. `mailbox_health()` (§1.5):
`GET /email-accounts/`, pages of 100 until a shorter one; its answers carry passwords, of which nothing
is kept, logged or put into an error (only `MailboxHealth`'s fields are read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import aiohttp
import structlog

from bot.errors import VendorNotFound, VendorRejected
from bot.vendors.base import CampaignMetrics, CampaignStatus, Guard, MailboxHealth, Observation
from bot.vendors.budget import MakeLimiter, limiter_of
from bot.vendors.guarded import Action, GuardedVendor, Settled
from bot.vendors.http import Reply, RetryPolicy, VendorRefused, check_campaign_id, find_stamp, find_status
from bot.vendors.smartlead import CAMPAIGN_ID, SPEC, STATUSES
from bot.vendors.smartlead.analytics import (
    MAILBOX_PAGE,
    MAX_PAGES,
    STATS_PAGE,
    Page,
    email_accounts_query,
    mailbox_page,
    metrics_page,
    overall_stats_query,
)
from bot.vendors.spec import VendorConfig

__all__ = ["ALLOWED_STATUS_VALUES", "SmartleadClient", "campaign_items", "make_client", "parse_observation",
           "parse_status", "sender_emails"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

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
    """Smartlead campaign API: pause, resume, read status; inventory; campaign metrics and mailbox health."""

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

    async def campaign_metrics(self) -> list[CampaignMetrics]:
        """Every campaign's lifetime numbers from overall-stats (§1.4), one per campaign id (the first seen
        if a listing shifted between pages). `started_at` and `unsubscribed` are None: not in this answer."""
        today = datetime.now(UTC).date()
        return await self._paged(
            "/analytics/campaign/overall-stats", lambda offset: overall_stats_query(today, offset), metrics_page,
            key=lambda item: item.campaign_id, page_size=STATS_PAGE, until_empty=True, operation="metrics")

    async def mailbox_health(self) -> list[MailboxHealth]:
        """Every mailbox's health from the email-accounts listing (§1.5), one per address. No other field of
        the answer (passwords!) is kept, logged or put into an error."""
        return await self._paged(
            "/email-accounts/", email_accounts_query, mailbox_page, key=lambda item: item.email,
            page_size=MAILBOX_PAGE, until_empty=False, operation="health")

    async def _paged(self, path: str, query: Callable[[int], str], parse: Callable[[Any], Page[T] | None], *,
                     key: Callable[[T], str], page_size: int, until_empty: bool, operation: str) -> list[T]:
        """Read a listing page by page at background priority: until an empty page (`until_empty`) or one
        shorter than `page_size`, a page with nothing new (a vendor ignoring `offset`), or `MAX_PAGES`.
        An answer of an unknown shape raises `VendorRejected` naming the path only."""
        found: dict[str, T] = {}
        offset = skipped = pages = 0
        while pages < MAX_PAGES:
            reply = await self._http.request("GET", f"{path}?{query(offset)}", operation=operation,
                                             background=True)
            assert reply is not None
            pages += 1
            page = parse(reply.body)
            if page is None:
                raise VendorRejected(self.name, reply.status, f"GET {path}", "unexpected answer shape")
            new = 0
            for item in page.items:
                if key(item) not in found:
                    found[key(item)] = item
                    new += 1
            skipped += page.listed - len(page.items)
            if page.listed == 0 or (not until_empty and page.listed < page_size) or (page.items and not new):
                break
            offset += page.listed
        else:
            log.warning("vendor.poll_truncated", vendor=self.name, where=f"GET {path}", pages=pages)
        log.info("vendor.polled", vendor=self.name, where=f"GET {path}", pages=pages, items=len(found),
                 skipped=skipped)
        return list(found.values())

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
