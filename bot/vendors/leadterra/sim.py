"""The simulated Leadterra (bot.testing): Leadterra (Bearer): POST /campaigns/{id}/pause|start, GET /campaigns/{id}/stats; no read endpoint.
  Pause on paused/draft and start on running are no-ops returning the current state (documented):
  the ORIGINAL pausedAt/startedAt (null for a draft), status `draft` for a draft;
  start on draft launches; start without leads/steps → 400 no_leads_enrolled / no_sequence_steps;
  a non-empty body → 400 invalid_request. Error body (undocumented) `{"error": {"code", "message"}}`.
  A campaign owned by another key (`add_campaign(..., key=)`) is 404 campaign_not_found, as a missing one.
  GET /campaigns/{id}/stats [C]: `{campaignId, totalEnrolled, sent, delivered, bounced, replied, queued,
  openRate, replyRate}`, the numbers set by `set_stats(sim, ref, sent=, delivered=, bounced=, replied=,
  queued=, opened=)` or `PUT /_sim/leadterra/stats/{ref}` (`bot.vendors.leadterra.sim_control`), all 0
  until then; `totalEnrolled` is the campaign's `leads`; the rates are computed as the vendor does:
  unique opens / delivered and replied / delivered, 0 without deliveries. The numbers live beside the
  simulator: a campaign replaced by `add_campaign` starts again from 0.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.testing.sim_core import SimCampaign
from bot.testing.sim_spec import SimRequest, SimVendor, authenticate, bearer, limit
from bot.testing.sim_stats import StatsBook
from bot.vendors.leadterra import STATUSES

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["SIM", "STATS", "STATS_FIELDS", "set_stats"]

#: what `set_stats` takes (`opened`: unique opens, served only as `openRate`)
STATS_FIELDS: Final = ("sent", "delivered", "bounced", "replied", "queued", "opened")
#: the numbers `set_stats` and `PUT /_sim/leadterra/stats/{ref}` set (`bot.testing.sim_stats`)
STATS: Final = StatsBook("leadterra", {name: name for name in STATS_FIELDS})


def set_stats(sim: VendorSimulator, ref: str, **numbers: int) -> None:
    """Set some of campaign `ref`'s numbers (`STATS_FIELDS`; the others keep their value, 0 at first)."""
    STATS.set(sim, ref, **numbers)


def _stats(sim: VendorSimulator, c: SimCampaign) -> dict[str, Any]:
    n = STATS.numbers(sim, c)
    delivered = n["delivered"]
    return {"campaignId": c.id, "totalEnrolled": c.leads, "sent": n["sent"], "delivered": delivered,
            "bounced": n["bounced"], "replied": n["replied"], "queued": n["queued"],
            "openRate": round(n["opened"] / delivered, 4) if delivered else 0.0,
            "replyRate": round(n["replied"] / delivered, 4) if delivered else 0.0}


_LT_ACTION: Final = re.compile(r"/campaigns/([^/]+)/(pause|start|stats)/?")


def _error_body(status: int, code: str | None, message: str) -> dict[str, Any]:
    return {"error": {"code": code or f"http_{status}", "message": message}}


def _error(status: int, code: str | None = None, message: str = "") -> web.Response:
    return SIM.error(status, code, message)


def _rate_limited(retry_after: str) -> web.Response:
    return SIM.error(429, "rate_limited", "Too many requests", {"Retry-After": retry_after})


def _handle(sim: VendorSimulator, req: SimRequest) -> web.Response:
    token = authenticate(sim, req, bearer(req))
    if token is None:
        return _error(401, "authentication_failed",
                              "The Authorization header is missing, malformed, or the key is invalid.")
    if (limited := limit(sim, SIM, "leadterra", token, req.now)) is not None:
        return limited
    m = _LT_ACTION.fullmatch(req.path)
    if m is None or (req.method, m[2]) not in {("POST", "pause"), ("POST", "start"), ("GET", "stats")}:
        return _error(404, "not_found", "No such endpoint")
    c = sim.visible(f"leadterra:{m[1]}", token)
    if c is None:
        return _error(404, "campaign_not_found",
                              "No campaign with the given id exists in your workspace.")
    if m[2] == "stats":
        return web.json_response(_stats(sim, c))
    if req.body not in (None, {}, ""):
        return _error(400, "invalid_request", "This endpoint accepts no request body.")
    if m[2] == "pause":
        if c.status == "running":
            sim.set_status(c.ref, "paused")  # stamps pausedAt; on paused/draft: the original one, unchanged
        return web.json_response({"id": c.id, "status": c.status, "pausedAt": c.paused_at})
    if c.status != "running":
        if c.leads < 1:
            return _error(400, "no_leads_enrolled",
                                  "The campaign has no enrolled leads and cannot be started.")
        if c.sequence_steps < 1:
            return _error(400, "no_sequence_steps", "The campaign has no sequence steps defined.")
        sim.set_status(c.ref, "running")
    return web.json_response({"id": c.id, "status": c.status, "startedAt": c.started_at})


SIM: Final = SimVendor(
    name="leadterra",
    prefix="/leadterra/v1",
    key="sk_live_sim_leadterra",
    limits={"leadterra": None},             # Leadterra documents none: off unless a test sets one
    statuses=tuple(STATUSES),
    common={common.value: native for native, common in STATUSES.items()},
    paused="paused", running="running", completed=None,
    handle=_handle, error_body=_error_body, rate_limited=_rate_limited,
    whole_second_stamps=True,
    controls="bot.vendors.leadterra.sim_control:add_control_routes",
)
