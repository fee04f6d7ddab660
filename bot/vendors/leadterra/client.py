"""Leadterra client: pause and start a campaign with a Bearer key; Leadterra has no read endpoint.

Contract (docs/vendors.md §2, the vendor's API reference): `POST /campaigns/{id}/pause` and `POST /campaigns/{id}/start`,
no request body; answers `{"id", "status": "paused", "pausedAt"}` / `{"id", "status": "running", "startedAt"}`.
Pause on a paused or draft campaign and start on a running one are documented no-ops returning the
current state (with its ORIGINAL `pausedAt`/`startedAt`), so both writes are retried on
429/5xx/timeouts without a re-read (there is none).

Evidence (ownership needs it): without a read, the answer is all there is. A pause is proven only when
the answer says `paused` AND its `pausedAt` is not earlier than the request time (`sent_at` when the
caller gives it, a write resent after a crash; else the moment the first attempt was about to be sent),
compared at the stamp's own precision (a stamp without fractions: whole seconds). An older `pausedAt`
(it was paused already: the no-op answer), a `draft` answer, an answer without a status (an empty 200)
or without a parsable stamp: not proven, `detail` says why. A resume (`/start`) likewise, with
`running` and `startedAt`. A vendor clock running behind ours can only make a real pause unproven,
never the reverse.

There is no `GET /campaigns/{id}`: `can_read_state` is False and `observe()`/`state()` answer UNKNOWN
without a call. The client therefore cannot see a draft: start on a draft LAUNCHES it (and that
answer would even look proven), so only the caller's own record ("campaign-guard proved it paused
this campaign") makes `resume()` safe. Errors carry the vendor code first in `detail`
(`no_leads_enrolled: ...`), read from `error.code`, `code` or `error`.

Metrics (`MetricsSource`): `GET /campaigns/{id}/stats` [C] (`bot.vendors.leadterra.stats`), one background
read per campaign, retried on 429/5xx. Leadterra has no campaign list, so the client polls the campaigns it
is TOLD about: `watch(ids)` (replaces the watched set) and/or `follow(known)`, a callable (sync or async)
asked at every poll, typically "the campaigns of this account campaign-guard knows" from the state store;
`campaign_metrics()` polls their union, sorted. An id that is not a Leadterra id is left out (logged),
never put into a path; a campaign that answers 404 (deleted) or names another campaign is left out of the
result. No campaign watched: no call, an empty result.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final, Unpack

import aiohttp
import structlog

from bot.vendors.base import CampaignMetrics, CampaignStatus, Guard, Observation, WriteResult
from bot.vendors.budget import MakeLimiter, limiter_of
from bot.vendors.guarded import Connection, VendorClient
from bot.vendors.http import RetryPolicy, check_campaign_id, find_stamp, find_status
from bot.vendors.leadterra import CAMPAIGN_ID, SPEC, STATUSES
from bot.vendors.leadterra.stats import parse_stats
from bot.vendors.spec import VendorConfig

__all__ = ["KnownCampaigns", "LeadterraClient", "evidence", "make_client", "parse_stamp", "parse_status"]

log = structlog.get_logger(__name__)

#: "Which campaigns of this account to poll": Leadterra campaign ids (`camp_...`), sync or async.
KnownCampaigns = Callable[[], Iterable[str] | Awaitable[Iterable[str]]]
DEFAULT_STATS_PATH: Final = SPEC.settings["stats_path"].default or "/campaigns/{id}/stats"

_TO_COMMON: Final = STATUSES
#: verb → (operation, target, the answer's time stamp of that transition)
_VERBS: Final = {
    "pause": ("pause", CampaignStatus.PAUSED, "pausedAt"),
    "start": ("resume", CampaignStatus.ACTIVE, "startedAt"),
}
_FRACTION: Final = re.compile(r"[T ]\d{2}:?\d{2}:?\d{2}[.,](\d+)")


def parse_status(body: Any, campaign_id: str) -> CampaignStatus:
    """Common status from a pause/start answer; UNKNOWN when it carries none (an empty 200 says nothing)."""
    raw = find_status(body, campaign_id)
    return _TO_COMMON.get(raw.lower(), CampaignStatus.UNKNOWN) if raw is not None else CampaignStatus.UNKNOWN


def parse_stamp(stamp: str) -> tuple[datetime, int] | None:
    """(UTC time, digits of fractional seconds) of an ISO 8601 stamp; no zone means UTC; None if unparsable."""
    try:
        when = datetime.fromisoformat(stamp.strip())
    except ValueError:
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    fraction = _FRACTION.search(stamp)
    return when, len(fraction[1]) if fraction else 0


def _truncate(moment: datetime, digits: int) -> datetime:
    """`moment` cut to `digits` digits of fractional seconds (0: whole seconds)."""
    if digits >= 6:
        return moment
    unit = 10 ** (6 - digits)
    return moment.replace(microsecond=moment.microsecond // unit * unit)


def evidence(body: Any, campaign_id: str, target: CampaignStatus, stamp_key: str,
             requested: datetime) -> tuple[CampaignStatus, str | None, str]:
    """(status, stamp verbatim, why it is not proven, "" when it is) of a pause/start answer."""
    status = parse_status(body, campaign_id)
    raw_status = find_status(body, campaign_id)
    stamp = find_stamp(body, campaign_id, stamp_key)
    if raw_status is None:
        return status, stamp, "the answer carries no campaign status"
    if status is not target:
        if status is CampaignStatus.DRAFT:
            return status, stamp, "the campaign is a draft (the vendor left it as it is)"
        return status, stamp, f"the answer says status {raw_status[:40]!r}, not {target}"
    if stamp is None:
        return status, stamp, f"the answer carries no {stamp_key}"
    parsed = parse_stamp(stamp)
    if parsed is None:
        return status, stamp, f"the answer's {stamp_key} {stamp[:40]!r} is not an ISO 8601 time"
    when, digits = parsed
    since = _truncate(requested.astimezone(UTC) if requested.tzinfo else requested.replace(tzinfo=UTC), digits)
    if when < since:
        return status, stamp, (f"{stamp_key} {stamp[:40]} is earlier than the request ({since.isoformat()}): "
                               f"it was already {target} (the vendor's no-op answer)")
    return status, stamp, ""


class LeadterraClient(VendorClient):
    """Leadterra campaign API: pause and start. No state read."""

    name = "leadterra"
    can_read_state = False
    auth = "bearer"
    spec = SPEC

    def __init__(self, session: aiohttp.ClientSession, *, clock: Callable[[], datetime] | None = None,
                 known: KnownCampaigns | None = None, stats_path: str = DEFAULT_STATS_PATH,
                 **connection: Unpack[Connection]) -> None:
        """`known`: see `follow`; `stats_path`: the stats path template (`{id}` once)."""
        if not stats_path.startswith("/") or stats_path.count("{id}") != 1 or "?" in stats_path:
            raise ValueError(f"leadterra stats path must start with / and contain {{id}} once: {stats_path!r}")
        super().__init__(session, **connection)
        #: wall clock (UTC) for the request time; tests may replace it
        self._now = clock or (lambda: datetime.now(UTC))
        self._stats_path = stats_path
        self._watched: frozenset[str] = frozenset()
        self._known = known

    def watch(self, campaign_ids: Iterable[str]) -> None:
        """Poll these campaigns (Leadterra ids, `camp_...`) from now on, instead of those watched before."""
        self._watched = frozenset(campaign_ids)

    def follow(self, known: KnownCampaigns | None) -> None:
        """Ask `known()` (sync or async) for more campaigns to poll at every `campaign_metrics()`; None: stop."""
        self._known = known

    @property
    def watched(self) -> frozenset[str]:
        return self._watched

    async def _polled_ids(self) -> list[str]:
        ids = set(self._watched)
        if self._known is not None:
            more = self._known()
            ids |= set(await more if inspect.isawaitable(more) else more)
        valid = {i for i in ids if isinstance(i, str) and CAMPAIGN_ID.fullmatch(i)}
        if ids - valid:
            log.warning("vendor.metrics_ids_skipped", vendor=self.name, count=len(ids - valid),
                        sample=str(next(iter(ids - valid)))[:40])
        return sorted(valid)

    async def campaign_metrics(self) -> list[CampaignMetrics]:
        """The stats of every watched campaign (see the module docstring), by campaign id."""
        return await self._stats_of(await self._polled_ids(), self._stats_path, parse_stats)

    async def observe(self, campaign_id: str, *, background: bool = False) -> Observation:
        """Leadterra documents no read endpoint: always UNKNOWN, no call."""
        check_campaign_id(self.name, campaign_id, "state")
        return Observation(CampaignStatus.UNKNOWN)

    async def state(self, campaign_id: str) -> CampaignStatus:
        return (await self.observe(campaign_id)).status

    async def pause(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                    sent_at: datetime | None = None) -> WriteResult:
        """Pause; a paused or draft campaign is left as it is (the answer then says so: not proven).
        `current` is ignored: there is no read to skip."""
        return await self._post(campaign_id, "pause", guard, sent_at)

    async def resume(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                     sent_at: datetime | None = None) -> WriteResult:
        """Start. Only call it for a campaign campaign-guard proved it paused: on a draft it LAUNCHES."""
        return await self._post(campaign_id, "start", guard, sent_at)

    async def _post(self, campaign_id: str, verb: str, guard: Guard | None, sent_at: datetime | None) -> WriteResult:
        path = f"/campaigns/{campaign_id}/{verb}"
        check_campaign_id(self.name, campaign_id, f"POST {path}")
        operation, target, stamp_key = _VERBS[verb]
        requested: list[datetime] = [sent_at] if sent_at is not None else []

        async def before_send() -> bool:
            """Runs right before each attempt is sent: the caller's guard, then the request time."""
            if guard is not None and not await guard():
                return False
            if not requested:
                requested.append(self._now())
            return True

        reply = await self._http.request("POST", path, operation=operation, guard=before_send)
        assert reply is not None        # no `settled` callback: request() always answers or raises
        status, stamp, why = evidence(reply.body, campaign_id, target, stamp_key, requested[0])
        return WriteResult(status, sent=True, proven=not why, changed_at=stamp, detail=why)


def make_client(session: aiohttp.ClientSession, config: VendorConfig, retry: RetryPolicy, timeout: float, *,
                limiters: MakeLimiter | None = None) -> LeadterraClient:
    """`SPEC.client`: a client from the Leadterra settings block. `limiters`: the fleet's shared budgets (bot.vendors.budget); without it, a limiter of its own."""
    assert config.api_key is not None
    return LeadterraClient(session, api_key=config.api_key, base_url=config.base_url, rate_limit=config.rate(),
                           limiter=limiter_of(limiters, config), retry=retry, timeout=timeout,
                           stats_path=config.text("stats_path"))
