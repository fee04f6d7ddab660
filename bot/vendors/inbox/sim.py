"""The simulated Inbox (bot.testing): Inbox (Bearer): GET /campaigns/{id}; POST /campaigns/v2/{id}/enable|disable with a JSON object body;
  POST /campaigns/{id}/pause (the v1 "pause an active campaign" page: active only, else 409).
  enable: draft/paused → active (needs leads/sequence, else 422). disable: active or draft → paused
  (the vendor's API reference: "disabling any campaign transitions it to paused"); completed → 409 STATE_CONFLICT;
  same-state → 409 when `strict_same_state`, else 200. Limits per token: reads and writes apart.
  A campaign owned by another token (`add_campaign(..., key=)`) is 404 CAMPAIGN_NOT_FOUND, as a missing one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.testing.sim_core import SimCampaign
from bot.testing.sim_spec import SimRequest, SimVendor, authenticate, bearer, limit
from bot.vendors.inbox import STATUSES

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["SIM"]

_CAMPAIGN: Final = re.compile(r"/campaigns/([^/]+)/?")
_IN_ACTION: Final = re.compile(r"/campaigns/v2/([^/]+)/(enable|disable)/?")
_IN_PAUSE: Final = re.compile(r"/campaigns/([^/]+)/pause/?")
_INBOX_ID: Final = re.compile(r"[0-9a-z]+")


def _error_body(status: int, code: str | None, message: str) -> dict[str, Any]:
    return {"error": {"code": code or f"HTTP_{status}", "message": message, "status": status}}


def _error(status: int, code: str | None = None, message: str = "",
           headers: dict[str, str] | None = None) -> web.Response:
    return SIM.error(status, code, message, headers)


def _rate_limited(retry_after: str) -> web.Response:
    return SIM.error(429, "RATE_LIMITED", "Too many requests", {"Retry-After": retry_after})


def _in_campaign(c: SimCampaign, *, v2: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": c.id, "name": c.name, "description": None, "status": c.status, "dryRun": False,
        "targetsCount": c.leads, "contactedCount": 0, "repliesCount": 0, "completionRate": 0, "replyRate": 0,
        "hourlyMessageRate": 8, "scheduleTimezone": "UTC", "accountLinkIds": ["simaccount1"],
        "createdAt": c.created_at, "updatedAt": c.updated_at, "pausedAt": c.paused_at,
        "completedAt": c.completed_at, "lastStartedAt": c.started_at,
    }
    if v2:
        data |= {"enabled": c.status == "active", "isBuildingPlan": False, "isSyncing": False}
    else:
        data |= {"type": "sequence", "isHydrating": False, "isBuildingPlan": False}
    return data


def _handle(sim: VendorSimulator, req: SimRequest) -> web.Response:
    token = authenticate(sim, req, bearer(req))
    if token is None:
        return _error(401, "UNAUTHORIZED", "Missing or invalid API token")
    bucket = "inbox_read" if req.method == "GET" else "inbox_write"
    if (limited := limit(sim, SIM, bucket, token, req.now)) is not None:
        return limited
    headers = sim.limit_headers(bucket, token, req.now)
    v2 = _IN_ACTION.fullmatch(req.path)
    v1 = _IN_PAUSE.fullmatch(req.path) if req.method == "POST" else _CAMPAIGN.fullmatch(req.path)
    m = v2 if req.method == "POST" and v2 else v1
    if m is None or req.method not in ("GET", "POST"):
        return _error(404, "NOT_FOUND", "Route not found", headers)
    if not _INBOX_ID.fullmatch(m[1]):
        return _error(400, "BAD_REQUEST", "campaignId must match ^[0-9a-z]+$", headers)
    c = sim.visible(f"inbox:{m[1]}", token)
    if c is None:
        return _error(404, "CAMPAIGN_NOT_FOUND", "Campaign not found", headers)
    if req.method == "GET":
        return web.json_response(_in_campaign(c, v2=False), headers=headers)
    if not isinstance(req.body, dict):
        return _error(400, "BAD_REQUEST", "Body must be a JSON object", headers)
    action = m[2] if m is v2 else "pause"
    problem = _in_transition(sim, c, action)
    if problem is not None:
        return _error(*problem, headers=headers)
    return web.json_response(_in_campaign(c, v2=m is v2), headers=headers)


def _in_transition(sim: VendorSimulator, c: SimCampaign, action: str) -> tuple[int, str, str] | None:
    conflict = (409, "STATE_CONFLICT", f"Campaign is {c.status}")
    if c.status == "completed" or (action == "pause" and c.status != "active"):
        return conflict
    target = "active" if action == "enable" else "paused"
    if c.status == target:
        return conflict if sim.strict_same_state else None
    if action == "enable" and (c.leads < 1 or c.sequence_steps < 1):
        return 422, "VALIDATION_ERROR", "Campaign needs at least one lead, one linked account and a valid sequence"
    sim.set_status(c.ref, target)
    return None


SIM: Final = SimVendor(
    name="inbox",
    prefix="/inbox/api/v1",
    key="sim-inbox-token",
    limits={"inbox_read": (100, 60.0), "inbox_write": (30, 60.0)},     # per token, reads and writes apart
    statuses=tuple(STATUSES),
    common={common.value: native for native, common in STATUSES.items()},
    paused="paused", running="active", completed="completed",
    handle=_handle, error_body=_error_body, rate_limited=_rate_limited,
)
