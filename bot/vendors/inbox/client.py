"""Inbox (inboxapp.com) client: read, disable (pause) and enable (resume) a campaign with a Bearer token.

Contract (docs/vendors.md §3, the vendor's API reference): `GET /campaigns/{id}` reads `status` (draft|active|paused|completed)
and `updatedAt` (the campaign's last-change stamp, kept verbatim as `Observation.changed_at`);
`POST /campaigns/v2/{id}/enable` with body `{}` resumes (and would launch a draft);
`POST /campaigns/v2/{id}/disable` pauses — that path is a guess [G], so all three paths come from
settings. Limits are per token: 100 reads/min and 30 writes/min, hence two limiters.
A draft is never disabled: the docs say disabling *any* campaign makes it paused, and a later enable
would then launch it. 409/422 on a write → read again, success if already at the target.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp
from pydantic import SecretStr

from bot.vendors.base import CampaignStatus, Guard, Observation
from bot.vendors.budget import MakeLimiter, limiter_of
from bot.vendors.guarded import Action, GuardedVendor, Settled
from bot.vendors.http import Reply, RetryPolicy, check_campaign_id, find_stamp, find_status
from bot.vendors.inbox import BASE_URL, SPEC, STATUSES
from bot.vendors.ratelimit import Limiter, SlidingWindowLimiter
from bot.vendors.spec import VendorConfig

__all__ = ["InboxClient", "make_client", "parse_observation", "parse_status"]

_TO_COMMON: Final = STATUSES


def parse_status(body: Any, campaign_id: str) -> tuple[CampaignStatus, str | None]:
    """(common status, raw vendor value); unknown values → UNKNOWN."""
    raw = find_status(body, campaign_id)
    return _TO_COMMON.get(raw.lower() if raw else "", CampaignStatus.UNKNOWN), raw


def parse_observation(body: Any, campaign_id: str) -> Observation:
    """Status and `updatedAt` (verbatim) of a campaign read."""
    return Observation(parse_status(body, campaign_id)[0], find_stamp(body, campaign_id, "updatedAt"))


class InboxClient(GuardedVendor):
    """Inbox campaign API: pause (disable), resume (enable), read status."""

    name = "inbox"
    auth = "bearer"
    spec = SPEC

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: SecretStr | str,
        base_url: str = BASE_URL,
        read_rate_limit: tuple[int, float] = SPEC.rate_limits["read_rate_limit"],
        write_rate_limit: tuple[int, float] = SPEC.rate_limits["write_rate_limit"],
        pause_path: str = "/campaigns/v2/{id}/disable",
        resume_path: str = "/campaigns/v2/{id}/enable",
        state_path: str = "/campaigns/{id}",
        read_limiter: Limiter | None = None,
        write_limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        for template in (pause_path, resume_path, state_path):
            if not template.startswith("/") or template.count("{id}") != 1:
                raise ValueError(f"path template must start with / and contain {{id}} once: {template!r}")
        self._paths: dict[str, str] = {"pause": pause_path, "resume": resume_path, "state": state_path}
        self._http = self._connect(
            session, api_key=api_key, base_url=base_url,
            limiter=read_limiter or SlidingWindowLimiter(*read_rate_limit),
            write_limiter=write_limiter or SlidingWindowLimiter(*write_rate_limit),
            retry=retry, timeout=timeout,
        )

    def _path(self, which: str, campaign_id: str) -> str:
        return self._paths[which].replace("{id}", campaign_id)

    def _state_path(self, campaign_id: str) -> str:
        return self._path("state", campaign_id)

    def _parse_read(self, body: Any, campaign_id: str) -> Observation:
        return parse_observation(body, campaign_id)

    def _raw_status(self, body: Any, campaign_id: str) -> str | None:
        return find_status(body, campaign_id)

    def _reply_status(self, reply: Reply, campaign_id: str) -> CampaignStatus:
        return parse_status(reply.body, campaign_id)[0]

    async def _write(self, campaign_id: str, action: Action, settled: Settled, guard: Guard | None) -> Reply | None:
        path = self._path(action, campaign_id)
        check_campaign_id(self.name, campaign_id, f"POST {path}")
        return await self._http.request("POST", path, operation=action, json_body={}, settled=settled, guard=guard)


def make_client(session: aiohttp.ClientSession, config: VendorConfig, retry: RetryPolicy, timeout: float, *,
                limiters: MakeLimiter | None = None) -> InboxClient:
    """`SPEC.client`: a client from the Inbox settings block (its paths included). `limiters`: the fleet's
    shared budgets (bot.vendors.budget), reads and writes apart (`<budget>/read`, `<budget>/write`); without
    it, limiters of its own."""
    assert config.api_key is not None
    return InboxClient(
        session, api_key=config.api_key, base_url=config.base_url,
        read_rate_limit=config.rate("read_rate_limit"), write_rate_limit=config.rate("write_rate_limit"),
        read_limiter=limiter_of(limiters, config, "read_rate_limit", part="/read"),
        write_limiter=limiter_of(limiters, config, "write_rate_limit", part="/write"),
        pause_path=config.text("pause_path"), resume_path=config.text("resume_path"),
        state_path=config.text("state_path"), retry=retry, timeout=timeout,
    )
