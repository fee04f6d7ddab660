"""Client machinery shared by the vendors: `VendorClient` (the HTTP connection with the vendor's auth style,
`repr`, and `_stats_of`: one stats read per campaign, for vendors whose stats are read campaign by campaign),
and `GuardedVendor`, the pause/resume logic of vendors with a read endpoint (Smartlead, Inbox,
Instantly, lemlist): read, act, read again.

Ownership of a pause needs positive evidence (`WriteResult.proven`). The rules (docs/vendors.md §7, §8.4, §8.7):

* `pause` reads the campaign first (unless the caller passes the read it just made as `current`).
  ACTIVE → send the pause. PAUSED → no call, not proven ("already paused": someone else did it).
  DRAFT/STOPPED/COMPLETED/ARCHIVED → no call, not proven: nothing is sending, and a "pause" could turn
  a draft into a paused campaign that a later resume would launch. UNKNOWN → `VendorRefused` (take no
  automatic action on a status we do not understand).
* `resume` reads first. PAUSED → send the resume. ACTIVE → no call, not proven. Anything else
  (notably DRAFT: resuming would *launch* it, or UNKNOWN) → `VendorRefused`, no call.
* After a 2xx write the campaign is ALWAYS read again: the write is proven when that read shows the
  target (the campaign was seen at the source status right before). The result carries that read's
  change stamp (`changed_at`, e.g. Smartlead `updated_at`). If that read fails, the write is not proven.
* Before retrying a write that failed with 429/5xx/timeout, the state is read again; the loop stops
  if the campaign is already at the target (the first attempt went through but its answer was lost):
  that counts as proven, since the campaign was seen at the source status before our first attempt.
* A 400/409/422 answer to a write: read again; if the campaign is already at the target, someone else
  moved it between our read and our write: not proven, nothing raised. Otherwise the error is raised.
* `guard` is handed to the HTTP layer, which awaits it right before each write attempt is sent.
* `sent_at` is not needed here: the evidence (read before, read after) is made within the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar, Final, Literal, Required, TypedDict

import aiohttp
import structlog
from pydantic import SecretStr

from bot.errors import VendorError, VendorNotFound, VendorRejected, VendorUnavailable
from bot.vendors.base import CampaignMetrics, CampaignStatus, Guard, Observation, WriteResult
from bot.vendors.http import AuthStyle, Reply, RetryPolicy, VendorHttp, VendorRefused, check_campaign_id
from bot.vendors.ratelimit import Limiter, SlidingWindowLimiter
from bot.vendors.spec import VendorSpec

__all__ = ["Action", "Connection", "GuardedVendor", "Settled", "VendorClient"]

log = structlog.get_logger(__name__)

Action = Literal["pause", "resume"]

#: States in which nothing is being sent: pausing them is a no-op we do not send.
_NOT_SENDING: Final = frozenset(
    {CampaignStatus.DRAFT, CampaignStatus.STOPPED, CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED,
     CampaignStatus.VENDOR_HELD}
)
_SAME_STATE_ERRORS: Final = frozenset({400, 409, 422})


def _as_observation(current: Observation | CampaignStatus | None) -> Observation | None:
    """Accept a bare status from callers of the former API (no change stamp then)."""
    return Observation(current) if isinstance(current, CampaignStatus) else current


class Connection(TypedDict, total=False):
    """The keyword arguments of `VendorClient.__init__` (for subclasses that add their own)."""

    api_key: Required[SecretStr | str]
    base_url: str | None
    rate_limit: tuple[int, float] | None
    limiter: Limiter | None
    retry: RetryPolicy | None
    timeout: float | None


class VendorClient:
    """Base of every vendor client: one `VendorHttp` with the vendor's `auth` style, its `spec`'s base URL
    and one-window `rate_limit` (the spec's `rate_limit` by default) unless a `limiter` is given."""

    name: str
    auth: ClassVar[AuthStyle]
    spec: ClassVar[VendorSpec]
    _http: VendorHttp

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: SecretStr | str,
        base_url: str | None = None,
        rate_limit: tuple[int, float] | None = None,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        limiter = limiter or SlidingWindowLimiter(*(rate_limit or self.spec.rate_limits["rate_limit"]))
        self._http = self._connect(session, api_key=api_key, base_url=base_url, limiter=limiter, retry=retry,
                                   timeout=timeout)

    def _connect(self, session: aiohttp.ClientSession, *, api_key: SecretStr | str, base_url: str | None,
                 limiter: Limiter, write_limiter: Limiter | None = None,
                 retry: RetryPolicy | None, timeout: float | None) -> VendorHttp:
        return VendorHttp(
            self.name, session, base_url=self.spec.base_url if base_url is None else base_url,
            api_key=api_key, auth=self.auth, limiter=limiter, write_limiter=write_limiter, retry=retry,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._http!r})"

    async def _stats_of(self, campaign_ids: Iterable[str], path: str,
                        parse: Callable[[Any, str], CampaignMetrics | None]) -> list[CampaignMetrics]:
        """One background `GET path` (its `{id}` replaced) per campaign, in `campaign_ids`' order, each answer
        read by `parse(body, campaign_id)`: a campaign gone (404) is skipped and logged at info, an answer
        `parse` cannot use (None) skipped and logged as a warning; any other error propagates."""
        found = []
        for campaign_id in campaign_ids:
            where = path.replace("{id}", campaign_id)
            check_campaign_id(self.name, campaign_id, f"GET {where}")
            try:
                reply = await self._http.request("GET", where, operation="metrics", background=True)
            except VendorNotFound:
                log.info("vendor.metrics_campaign_gone", vendor=self.name, campaign_id=campaign_id)
                continue
            assert reply is not None        # no `settled` callback: request() answers or raises
            item = parse(reply.body, campaign_id)
            if item is None:
                log.warning("vendor.metrics_unusable", vendor=self.name, campaign_id=campaign_id)
                continue
            found.append(item)
        return found


class GuardedVendor(VendorClient):
    """Base for clients that can read campaign state (`GET /campaigns/{id}` by default). Subclasses
    implement `_parse_read`, `_raw_status`, `_reply_status` and `_write`."""

    can_read_state = True

    def _state_path(self, campaign_id: str) -> str:
        return f"/campaigns/{campaign_id}"

    def _parse_read(self, body: Any, campaign_id: str) -> Observation:
        raise NotImplementedError

    def _raw_status(self, body: Any, campaign_id: str) -> str | None:
        """The vendor's own status value, for the log of a status read as UNKNOWN."""
        raise NotImplementedError

    async def _read(self, campaign_id: str, *, operation: str, attempts: int | None = None,
                    background: bool = False) -> Observation:
        path = self._state_path(campaign_id)
        check_campaign_id(self.name, campaign_id, f"GET {path}")
        reply = await self._http.request("GET", path, operation=operation, max_attempts=attempts,
                                         background=background)
        assert reply is not None        # only a `settled` callback can make request() return None
        seen = self._parse_read(reply.body, campaign_id)
        if seen.status is CampaignStatus.UNKNOWN:
            log.warning("vendor.unknown_status", vendor=self.name, campaign_id=campaign_id,
                        raw=str(self._raw_status(reply.body, campaign_id))[:40])
        return seen

    async def _write(self, campaign_id: str, action: Action, settled: Settled, guard: Guard | None) -> Reply | None:
        raise NotImplementedError

    def _reply_status(self, reply: Reply, campaign_id: str) -> CampaignStatus:
        raise NotImplementedError

    async def observe(self, campaign_id: str, *, background: bool = False) -> Observation:
        return await self._read(campaign_id, operation="state", background=background)

    async def state(self, campaign_id: str) -> CampaignStatus:
        return (await self.observe(campaign_id)).status

    async def pause(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                    sent_at: datetime | None = None) -> WriteResult:
        before = _as_observation(current) or await self._read(campaign_id, operation="pause")
        status = before.status
        if status is CampaignStatus.PAUSED or status in _NOT_SENDING:
            detail = ("already paused before campaign-guard acted; nothing sent" if status is CampaignStatus.PAUSED
                      else f"campaign is {status}: nothing is sending; nothing sent")
            log.info("vendor.pause_skipped", vendor=self.name, campaign_id=campaign_id, status=str(status))
            return WriteResult(status, sent=False, proven=False, changed_at=before.changed_at, detail=detail)
        if status is not CampaignStatus.ACTIVE:
            raise VendorRefused(self.name, f"pause of campaign {campaign_id}",
                                f"campaign status is {status}; no automatic action")
        return await self._change(campaign_id, "pause", CampaignStatus.PAUSED, guard)

    async def resume(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                     sent_at: datetime | None = None) -> WriteResult:
        before = _as_observation(current) or await self._read(campaign_id, operation="resume")
        status = before.status
        if status is CampaignStatus.ACTIVE:
            log.info("vendor.resume_skipped", vendor=self.name, campaign_id=campaign_id, status=str(status))
            return WriteResult(status, sent=False, proven=False, changed_at=before.changed_at,
                               detail="already active before campaign-guard acted; nothing sent")
        if status is not CampaignStatus.PAUSED:
            raise VendorRefused(self.name, f"resume of campaign {campaign_id}",
                                f"campaign is {status}; only a paused campaign is resumed")
        return await self._change(campaign_id, "resume", CampaignStatus.ACTIVE, guard)

    async def _change(self, campaign_id: str, action: Action, target: CampaignStatus,
                      guard: Guard | None) -> WriteResult:
        """Send the write (the campaign was just seen at the source status) and prove it by reading again."""
        settled = Settled(self, campaign_id, action, target)
        try:
            reply = await self._write(campaign_id, action, settled, guard)
        except VendorRejected as exc:
            if isinstance(exc, VendorRefused) or exc.status not in _SAME_STATE_ERRORS:
                raise
            rejected = exc
        else:
            if reply is None:           # settled before a retry: an earlier attempt went through
                seen = settled.seen
                changed_at = seen.changed_at if seen else None
                if settled.final is target:
                    return WriteResult(target, sent=True, proven=True, changed_at=changed_at)
                return WriteResult(settled.final, sent=True, proven=False, changed_at=changed_at,
                                   detail=f"campaign became {settled.final} while the {action} was retried")
            return await self._prove(campaign_id, action, target, reply)
        after = await self._read(campaign_id, operation=action)
        if after.status is target:
            log.info("vendor.already_at_target", vendor=self.name, campaign_id=campaign_id,
                     status=rejected.status, detail=rejected.detail)
            return WriteResult(target, sent=True, proven=False, changed_at=after.changed_at,
                               detail=f"the vendor refused the {action} ({rejected.status}) and the campaign was "
                                      f"already {target}: someone else changed it first")
        raise rejected

    async def _prove(self, campaign_id: str, action: Action, target: CampaignStatus, reply: Reply) -> WriteResult:
        """The read after a 2xx write: proven when it shows the target."""
        try:
            after = await self._read(campaign_id, operation=action)
        except VendorError as exc:
            answered = self._reply_status(reply, campaign_id)
            log.warning("vendor.read_after_write_failed", vendor=self.name, campaign_id=campaign_id,
                        action=action, error=str(exc))
            return WriteResult(answered, sent=True, proven=False,
                               detail=f"the {action} was accepted but the read after it failed: {exc}")
        if after.status is target:
            return WriteResult(target, sent=True, proven=True, changed_at=after.changed_at)
        return WriteResult(after.status, sent=True, proven=False, changed_at=after.changed_at,
                           detail=f"the {action} was accepted but the campaign reads {after.status} after it")


class Settled:
    """Re-read before a retry: True (and `final` set) when there is nothing left to send."""

    def __init__(self, vendor: GuardedVendor, campaign_id: str, action: Action, target: CampaignStatus) -> None:
        self._vendor = vendor
        self._campaign_id = campaign_id
        self._action = action
        self._target = target
        self.final = target
        self.seen: Observation | None = None       # the last re-read

    async def __call__(self) -> bool:
        try:
            self.seen = await self._vendor._read(self._campaign_id, operation=self._action, attempts=1)
        except VendorUnavailable:
            if self._action == "pause":
                return False            # pausing again is harmless: keep retrying the write
            raise                       # never repeat a resume without knowing the state
        now = self.seen.status
        if now is self._target:
            return True
        if self._action == "resume" and now is not CampaignStatus.PAUSED:
            raise VendorRefused(self._vendor.name, f"resume of campaign {self._campaign_id}",
                                f"campaign became {now} while retrying; not resumed")
        if self._action == "pause" and now in _NOT_SENDING:
            self.final = now            # it stopped sending some other way: nothing to pause
            return True
        return False
