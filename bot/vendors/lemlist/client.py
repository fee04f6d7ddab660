"""lemlist client: read, pause and start (resume) a campaign, with HTTP Basic auth.

Contract (docs/vendors.md §5):

* Auth [C]: `Authorization: Basic base64(":" + key)`, an empty user and the key as password. Never the
  legacy `?access_token=` (the key would ride in URLs). The base64 form is registered with the log
  redactor when the client is made (`bot.vendors.http`).
* `GET /campaigns/{id}` [C]: `status` running|paused|draft|ended|archived|errors, plus `hasError`.
  `ended` → completed and `errors` → VENDOR_HELD are [G]; a `paused` campaign with `hasError: true` is
  read as VENDOR_HELD too [G] (lemlist stopped it for its errors: never resumed automatically), while a
  running one with errors stays ACTIVE (it is sending: pausing it is safe). The campaign object documents
  no update stamp: `updatedAt` is used as `changed_at` when present, else None.
* `POST /campaigns/{id}/pause` [C]: `{"_id", "state"}` (`state`, not `status`); "if the campaign is not
  running, it simply does nothing". Only a campaign read `running` is paused, and the read after the
  pause is the evidence; a pause of a paused, draft or held campaign is not sent, not proven.
* `POST /campaigns/{id}/start` [3P]: 400 "You can't start campaigns that are already running" is a no-op:
  the campaign is read again and, running, the resume is "already at target" (not proven, nothing raised,
  as for any same-state 400 in `bot.vendors.guarded`). A start on a draft LAUNCHES it: resume sends it only
  for a campaign read `paused` (never draft, ended, archived, errors or unknown).
* 20 requests per 2 s per key [C]; `Retry-After` seconds, and `X-RateLimit-Reset` as a date string
  (read by `bot.vendors.http.parse_retry_after` as a fallback).

Metrics (`MetricsSource`; facts and parsers in `bot.vendors.lemlist.stats`), every request `background`
(after every pause, resume and foreground read), retried on 429/5xx: `GET /campaigns?version=v2&limit=100
&offset=N` page after page (until a short or empty page, a pagination object saying it was the last, or a
page of campaigns already seen: a server ignoring `offset` must not loop), then `GET /v2/campaigns/{id}/stats`
for each campaign that may still send (not draft, ended or archived). A campaign gone between the list
and its stats (404) is left out.
"""

from __future__ import annotations

from typing import Any, Final, Unpack
from urllib.parse import urlencode

import aiohttp
import structlog

from bot.vendors.base import CampaignMetrics, CampaignStatus, Guard, Observation
from bot.vendors.budget import MakeLimiter, limiter_of
from bot.vendors.guarded import Action, Connection, GuardedVendor, Settled
from bot.vendors.http import Reply, RetryPolicy, check_campaign_id
from bot.vendors.lemlist import SPEC, STATUSES
from bot.vendors.lemlist.stats import parse_campaign_page, parse_stats
from bot.vendors.spec import VendorConfig

__all__ = ["CAMPAIGNS_PAGE", "LemlistClient", "make_client", "parse_observation", "parse_status"]

log = structlog.get_logger(__name__)

DEFAULT_CAMPAIGNS_PATH: Final = SPEC.settings["campaigns_path"].default or "/campaigns"
DEFAULT_STATS_PATH: Final = SPEC.settings["stats_path"].default or "/v2/campaigns/{id}/stats"
#: campaigns per page: 100 is lemlist's maximum [C]
CAMPAIGNS_PAGE: Final = 100
#: statuses whose numbers are not polled: nothing is or will be sent (a draft launches only by a person)
_NOT_POLLED: Final = frozenset({"draft", "ended", "archived"})
_MAX_PAGES: Final = 1000

_PATHS: Final[dict[str, str]] = {"pause": "/campaigns/{id}/pause", "resume": "/campaigns/{id}/start"}
_STAMPS: Final = ("updatedAt", "updated_at", "lastUpdatedAt")


def _campaign(body: Any) -> dict[str, Any]:
    """The campaign object of an answer: flat, or wrapped in `campaign` / `data`."""
    if isinstance(body, dict):
        for wrapper in ("campaign", "data"):
            inner = body.get(wrapper)
            if isinstance(inner, dict):
                return inner
        return body
    return {}


def parse_status(body: Any, *, key: str = "status") -> tuple[CampaignStatus, str | None]:
    """(common status, raw value) of `key` (`status` in reads, `state` in the pause answer; either is
    tried); unknown values → UNKNOWN. `hasError` on a paused campaign → VENDOR_HELD."""
    campaign = _campaign(body)
    raw = campaign.get(key)
    if not isinstance(raw, str):
        raw = next((v for k in ("status", "state") if isinstance(v := campaign.get(k), str)), None)
    status = STATUSES.get(raw.strip().lower() if raw else "", CampaignStatus.UNKNOWN)
    if status is CampaignStatus.PAUSED and campaign.get("hasError") is True:
        status = CampaignStatus.VENDOR_HELD
    return status, raw


def parse_observation(body: Any) -> Observation:
    """Status and the update stamp (verbatim; None: lemlist documents none) of a campaign read."""
    campaign = _campaign(body)
    stamp = next((campaign[k] for k in _STAMPS if isinstance(campaign.get(k), str | int | float)
                  and not isinstance(campaign.get(k), bool)), None)
    return Observation(parse_status(body)[0], None if stamp is None else str(stamp))


class LemlistClient(GuardedVendor):
    """lemlist campaign API: pause, start (resume), read status."""

    name = "lemlist"
    auth = "basic"      # the base64 form of the key is registered with the log redactor by `VendorHttp`
    spec = SPEC

    def __init__(self, session: aiohttp.ClientSession, *, campaigns_path: str = DEFAULT_CAMPAIGNS_PATH,
                 stats_path: str = DEFAULT_STATS_PATH, **connection: Unpack[Connection]) -> None:
        """`campaigns_path`: the campaign list (no query); `stats_path`: the stats template (`{id}` once)."""
        if not campaigns_path.startswith("/") or any(c in campaigns_path for c in "?#{} "):
            raise ValueError(f"lemlist campaigns path must start with / and hold no query: {campaigns_path!r}")
        if not stats_path.startswith("/") or stats_path.count("{id}") != 1 or "?" in stats_path:
            raise ValueError(f"lemlist stats path must start with / and contain {{id}} once: {stats_path!r}")
        super().__init__(session, **connection)
        self._campaigns_path = campaigns_path
        self._stats_path = stats_path

    async def _campaigns(self) -> list[tuple[str, str | None]]:
        """(id, raw status) of every campaign, page after page (see the module docstring)."""
        found: dict[str, str | None] = {}
        for page_number in range(_MAX_PAGES):
            query = urlencode({"version": "v2", "limit": CAMPAIGNS_PAGE, "offset": page_number * CAMPAIGNS_PAGE})
            reply = await self._http.request("GET", f"{self._campaigns_path}?{query}", operation="metrics",
                                             background=True)
            assert reply is not None        # no `settled` callback: request() answers or raises
            page = parse_campaign_page(reply.body)
            new = [(cid, status) for cid, status in page.campaigns if cid not in found]
            if page.campaigns and not new:
                log.warning("vendor.page_repeated", vendor=self.name, where=f"GET {self._campaigns_path}",
                            offset=page_number * CAMPAIGNS_PAGE)
                break
            found.update(new)
            if page.size < CAMPAIGNS_PAGE or page.has_more is False:
                break
        return list(found.items())

    async def campaign_metrics(self) -> list[CampaignMetrics]:
        """The lifetime numbers of every campaign that may still send, in the list's order."""
        polled = [campaign_id for campaign_id, status in await self._campaigns() if status not in _NOT_POLLED]
        return await self._stats_of(polled, self._stats_path, parse_stats)

    def _parse_read(self, body: Any, campaign_id: str) -> Observation:
        return parse_observation(body)

    def _raw_status(self, body: Any, campaign_id: str) -> str | None:
        return parse_status(body)[1]

    def _reply_status(self, reply: Reply, campaign_id: str) -> CampaignStatus:
        return parse_status(reply.body, key="state")[0]

    async def _write(self, campaign_id: str, action: Action, settled: Settled, guard: Guard | None) -> Reply | None:
        path = _PATHS[action].replace("{id}", campaign_id)
        check_campaign_id(self.name, campaign_id, f"POST {path}")
        return await self._http.request("POST", path, operation=action, settled=settled, guard=guard)


def make_client(session: aiohttp.ClientSession, config: VendorConfig, retry: RetryPolicy, timeout: float, *,
                limiters: MakeLimiter | None = None) -> LemlistClient:
    """`SPEC.client`: a client from the lemlist settings block. `limiters`: the fleet's shared budgets (bot.vendors.budget); without it, a limiter of its own."""
    assert config.api_key is not None
    return LemlistClient(session, api_key=config.api_key, base_url=config.base_url, rate_limit=config.rate(),
                         limiter=limiter_of(limiters, config), retry=retry, timeout=timeout,
                         campaigns_path=config.text("campaigns_path"), stats_path=config.text("stats_path"))
