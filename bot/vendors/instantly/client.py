"""Instantly client: read, pause and activate a campaign through API v2 with a Bearer key.

Contract (docs/vendors.md §4): `GET /campaigns/{id}` reads the numeric `status` (0 draft, 1 active,
2 paused, 3 completed, 4 running subsequences, -1 accounts unhealthy, -2 bounce protect, -99 account
suspended) and `timestamp_updated`, the campaign object's last-change stamp [G: the field is not in
the doc read], kept verbatim as `Observation.changed_at` (None when absent);
`POST /campaigns/{id}/pause` pauses and `POST /campaigns/{id}/activate` resumes. Both answer "the
Campaign object", but the documented pause example shows `status: 1`: a generic schema example, so the
answer's status is never trusted and the campaign is ALWAYS read again (`bot.vendors.guarded`).

Activate on a draft STARTS it [G from the title], so only a campaign read as paused (2) is activated;
the vendor's holds (-1/-2/-99, `VENDOR_HELD`) are never paused over and never activated. The only two
write paths are an allowlist checked right before the request is built.

Rate limits [C]: 100 requests/s AND 6,000/min per WORKSPACE, across keys and across v1/v2: one
`MultiWindowLimiter` holding both windows, shared by every client `make_client` builds on one session
for one workspace (`VendorConfig.budget`: accounts naming the same `workspace` share it; bot.accounts).
The key rides in the Authorization header only; `VendorHttp` sets an explicit User-Agent (a third-party
note says Instantly's Cloudflare may refuse requests without one).

Polls (`MetricsSource`, `HealthSource`; parsers and the facts behind them in `bot.vendors.instantly.analytics`),
every request `background` (served by the workspace's limiter after every pause, resume and foreground
read), retried on 429/5xx like any read:

* `campaign_metrics()`: `GET /campaigns/analytics?exclude_total_leads_count=true` (every campaign, lifetime
  totals), then, once per campaign that has sent something, `GET /campaigns/analytics/daily?campaign_id=
  &start_date=<analytics_since>` for its first day with sends (`started_at`, remembered by the client: it
  never changes) and for any count the overview left out. A campaign gone meanwhile (404) keeps its totals.
* `mailbox_health()`: `GET /accounts?limit=100`, following `next_starting_after` until a page has none or
  is empty (a cursor seen twice ends the walk: a vendor bug must not loop forever).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any, Final, Unpack
from urllib.parse import urlencode

import aiohttp
import structlog

from bot.errors import VendorNotFound
from bot.vendors.base import CampaignMetrics, CampaignStatus, Guard, MailboxHealth, Observation
from bot.vendors.budget import MakeLimiter, limiter_of
from bot.vendors.guarded import Action, Connection, GuardedVendor, Settled
from bot.vendors.http import Reply, RetryPolicy, VendorRefused, check_campaign_id, find_field, find_stamp
from bot.vendors.instantly import SPEC, STATUSES
from bot.vendors.instantly.analytics import (
    DailyTotals,
    campaign_totals,
    daily_totals,
    merge_daily,
    parse_accounts,
)
from bot.vendors.ratelimit import MultiWindowLimiter
from bot.vendors.spec import VendorConfig

__all__ = ["ALLOWED_ACTIONS", "DEFAULT_PATHS", "InstantlyClient", "make_client", "parse_observation",
           "parse_status", "workspace_limiter"]

log = structlog.get_logger(__name__)

#: The only writes campaign-guard ever sends: action → the path's last segment.
ALLOWED_ACTIONS: Final[dict[str, str]] = {"pause": "pause", "resume": "activate"}
#: The workspace's windows by default: 100 per second and 6,000 per minute.
DEFAULT_WINDOWS: Final = (SPEC.rate_limits["rate_limit"], SPEC.rate_limits["minute_rate_limit"])

#: The polled reads' paths (settings `analytics_path`, `daily_analytics_path`, `accounts_path`).
DEFAULT_PATHS: Final[Mapping[str, str]] = {
    "analytics": SPEC.settings["analytics_path"].default or "",
    "daily": SPEC.settings["daily_analytics_path"].default or "",
    "accounts": SPEC.settings["accounts_path"].default or "",
}
DEFAULT_SINCE: Final = SPEC.settings["analytics_since"].default or "2017-01-01"
#: accounts per page: Instantly's cursor lists take 1-100 (documented for its other lists; G for accounts)
ACCOUNTS_PAGE: Final = 100
#: a walk of more pages than this is a vendor bug, not a workspace
_MAX_PAGES: Final = 1000

_TO_COMMON: Final = STATUSES
_SHARED: weakref.WeakKeyDictionary[aiohttp.ClientSession, dict[str, MultiWindowLimiter]] = (
    weakref.WeakKeyDictionary())


def raw_status(body: Any, campaign_id: str) -> str | None:
    """The campaign's numeric `status` as a decimal string (`"2"`, `"-99"`), from a number or a numeric
    string; the raw text for anything else; None when absent."""
    value = find_field(body, campaign_id, "status", (int, str))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return str(int(text))
        except ValueError:
            return text
    return None


def parse_status(body: Any, campaign_id: str) -> tuple[CampaignStatus, str | None]:
    """(common status, raw vendor value); unknown values → UNKNOWN."""
    raw = raw_status(body, campaign_id)
    return _TO_COMMON.get(raw or "", CampaignStatus.UNKNOWN), raw


def parse_observation(body: Any, campaign_id: str) -> Observation:
    """Status and `timestamp_updated` (verbatim) of a campaign read."""
    return Observation(parse_status(body, campaign_id)[0], find_stamp(body, campaign_id, "timestamp_updated"))


def workspace_limiter(session: aiohttp.ClientSession, workspace: str,
                      windows: Sequence[tuple[int, float]] = DEFAULT_WINDOWS) -> MultiWindowLimiter:
    """The one limiter of `workspace` for clients sharing `session` (made on first use with `windows`)."""
    by_workspace = _SHARED.setdefault(session, {})
    if workspace not in by_workspace:
        by_workspace[workspace] = MultiWindowLimiter(windows)
    return by_workspace[workspace]


class InstantlyClient(GuardedVendor):
    """Instantly campaign API v2: pause, activate (resume), read status."""

    name = "instantly"
    auth = "bearer"
    spec = SPEC

    def __init__(self, session: aiohttp.ClientSession, *,
                 rate_limits: Sequence[tuple[int, float]] = DEFAULT_WINDOWS, paths: Mapping[str, str] | None = None,
                 analytics_since: str = DEFAULT_SINCE, **connection: Unpack[Connection]) -> None:
        """`rate_limits`: the windows of a limiter of its own (one `MultiWindowLimiter`) unless `limiter` is given.
        `paths`: the polled reads' paths by `DEFAULT_PATHS` key (each starting with `/`, no query);
        `analytics_since`: the first day (YYYY-MM-DD) asked of the daily analytics."""
        merged = {**DEFAULT_PATHS, **(paths or {})}
        for key, path in merged.items():
            if key not in DEFAULT_PATHS or not path.startswith("/") or any(c in path for c in "?#{} "):
                raise ValueError(f"instantly {key} path must start with / and hold no query: {path!r}")
        date.fromisoformat(analytics_since)             # ValueError unless YYYY-MM-DD
        connection["limiter"] = connection.get("limiter") or MultiWindowLimiter(rate_limits)
        super().__init__(session, **connection)
        self._paths = merged
        self._since = analytics_since
        #: campaign id → its first day with sends, once seen (it never changes)
        self._started: dict[str, datetime] = {}

    def _parse_read(self, body: Any, campaign_id: str) -> Observation:
        return parse_observation(body, campaign_id)

    def _raw_status(self, body: Any, campaign_id: str) -> str | None:
        return raw_status(body, campaign_id)

    def _reply_status(self, reply: Reply, campaign_id: str) -> CampaignStatus:
        # The write's answer is a generic example: it says nothing trustworthy about the state.
        return CampaignStatus.UNKNOWN

    async def _get(self, path: str, query: Mapping[str, str | int], operation: str) -> Any:
        """One background read; the answer's body."""
        reply = await self._http.request("GET", f"{path}?{urlencode(query)}" if query else path,
                                         operation=operation, background=True)
        assert reply is not None        # no `settled` callback: request() answers or raises
        return reply.body

    async def campaign_metrics(self) -> list[CampaignMetrics]:
        """Every campaign's lifetime numbers (see the module docstring), in the overview's order."""
        overview = campaign_totals(await self._get(self._paths["analytics"], {"exclude_total_leads_count": "true"},
                                                   "metrics"))
        found = []
        for item in overview:
            started = self._started.get(item.campaign_id)
            # what the daily rows are documented to carry: a count the overview left out is filled from them
            missing = any(getattr(item, name) is None for name in ("sent", "replied", "opened"))
            daily = None
            if (item.sent is None or item.sent > 0) and (started is None or missing):
                daily = await self._daily(item.campaign_id)
            merged = merge_daily(item, daily)
            if started is not None:
                merged = replace(merged, started_at=started)
            elif merged.started_at is not None:
                self._started[item.campaign_id] = merged.started_at
            found.append(merged)
        return found

    async def _daily(self, campaign_id: str) -> DailyTotals | None:
        """The campaign's daily series summed; None when it is gone (404)."""
        check_campaign_id(self.name, campaign_id, f"GET {self._paths['daily']}")
        try:
            body = await self._get(self._paths["daily"], {"campaign_id": campaign_id, "start_date": self._since},
                                   "metrics")
        except VendorNotFound:
            log.info("vendor.metrics_campaign_gone", vendor=self.name, campaign_id=campaign_id)
            return None
        return daily_totals(body)

    async def mailbox_health(self) -> list[MailboxHealth]:
        """Every sending account's health, following the cursor (see the module docstring)."""
        found: dict[str, MailboxHealth] = {}
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            query: dict[str, str | int] = {"limit": ACCOUNTS_PAGE}
            if cursor is not None:
                query["starting_after"] = cursor
            healths, size, cursor = parse_accounts(await self._get(self._paths["accounts"], query, "health"))
            for health in healths:
                found.setdefault(health.email, health)
            if cursor is None or size == 0:
                break
            if cursor in seen:
                log.warning("vendor.cursor_repeated", vendor=self.name, where=f"GET {self._paths['accounts']}")
                break
            seen.add(cursor)
        return list(found.values())

    async def _write(self, campaign_id: str, action: Action, settled: Settled, guard: Guard | None) -> Reply | None:
        """The one place a write is sent. The allowlist check sits right before the request."""
        segment = ALLOWED_ACTIONS.get(action)
        path = f"/campaigns/{campaign_id}/{segment}"
        check_campaign_id(self.name, campaign_id, f"POST {path}")
        if segment is None:
            raise VendorRefused(self.name, f"POST {path}", f"action {action[:20]!r} is never sent")
        return await self._http.request("POST", path, operation=action, json_body={}, settled=settled, guard=guard)


def make_client(session: aiohttp.ClientSession, config: VendorConfig, retry: RetryPolicy, timeout: float, *,
                limiters: MakeLimiter | None = None) -> InstantlyClient:
    """`SPEC.client`: a client from the Instantly settings block; its limiter is the workspace's: the fleet's
    shared budget of it with `limiters` (bot.vendors.budget), else the one of the clients on `session`."""
    assert config.api_key is not None
    windows = (config.rate("rate_limit"), config.rate("minute_rate_limit"))
    limiter = (limiter_of(limiters, config, "rate_limit", "minute_rate_limit")
               or workspace_limiter(session, config.budget or config.base_url, windows))
    paths = {"analytics": config.text("analytics_path"), "daily": config.text("daily_analytics_path"),
             "accounts": config.text("accounts_path")}
    return InstantlyClient(session, api_key=config.api_key, base_url=config.base_url, limiter=limiter,
                           retry=retry, timeout=timeout, paths=paths, analytics_since=config.text("analytics_since"))
