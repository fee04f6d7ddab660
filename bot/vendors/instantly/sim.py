"""The simulated Instantly (bot.testing), API v2 (Bearer): GET /campaigns/{id}; POST /campaigns/{id}/pause
and /activate, answering the Campaign object as it is after the call; GET /campaigns/analytics,
/campaigns/analytics/daily and /accounts (`bot.vendors.instantly.sim_analytics`: their numbers and accounts
are set with its `set_daily` and `add_account`).

Statuses are numeric (served as JSON numbers; `SimCampaign.status` holds them as decimal strings):
0 draft, 1 active, 2 paused, 3 completed, 4 running subsequences, -1 accounts unhealthy, -2 bounce
protect, -99 account suspended. `timestamp_updated` is the campaign's change stamp.
pause: 1/4 → 2. activate: 2 → 1, and 0 (draft) → 1: it STARTS a draft (needs leads and a sequence,
else 400). Chosen, undocumented: a same-state call (pause on 2, activate on 1/4) → 400 when
`strict_same_state`, else a 200 no-op; pause on a draft or completed campaign, activate on a completed
one, and either on a vendor hold (-1/-2/-99: whether activate clears them is not documented) → 400.
Limits per WORKSPACE across keys: every accepted key belongs to the simulated workspace `WORKSPACE` unless
`VendorSimulator(workspaces={key: "ws-1"})` puts it in another, and a request must fit both the per-second
and the per-minute window of its key's workspace (429 with `Retry-After` otherwise; a refused request
counts against the window that admitted it, as a server-side counter would). A campaign owned by a key
(`add_campaign(..., key=)`) belongs to that key's workspace: a key of another workspace gets 404
"Campaign not found", as for a missing one; `organization` is the workspace of the key that asked.
Errors have Fastify's shape `{"statusCode", "error", "message"}` [G].
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.testing.sim_core import SimCampaign
from bot.testing.sim_spec import SimRequest, SimVendor, authenticate, bearer, limit, phrase
from bot.vendors.instantly import CAMPAIGN_ID, STATUSES
from bot.vendors.instantly.sim_analytics import handle_analytics

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["SIM", "WORKSPACE"]

#: The simulated workspace every accepted key belongs to unless `VendorSimulator(workspaces=...)` says otherwise.
WORKSPACE: Final = "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
_CAMPAIGN: Final = re.compile(r"/campaigns/([^/]+)/?")
_ACTION: Final = re.compile(r"/campaigns/([^/]+)/(pause|activate)/?")
_ACTIVE: Final = ("1", "4")
_HELD: Final = ("-1", "-2", "-99")
_NUMERIC: Final = re.compile(r"-?[0-9]+")


def _error_body(status: int, code: str | None, message: str) -> dict[str, Any]:
    return {"statusCode": status, "error": code or phrase(status), "message": message}


def _error(status: int, message: str = "") -> web.Response:
    return SIM.error(status, None, message)


def _rate_limited(retry_after: str) -> web.Response:
    return SIM.error(429, None, f"Rate limit exceeded, retry in {retry_after} seconds",
                     {"Retry-After": retry_after})


def _campaign(c: SimCampaign, workspace: str) -> dict[str, Any]:
    status: int | str = int(c.status) if _NUMERIC.fullmatch(c.status) else c.status
    return {"id": c.id, "name": c.name, "status": status, "pl_value": None, "is_evergreen": False,
            "campaign_schedule": {"schedules": []}, "sequences": [{"steps": [{}] * c.sequence_steps}],
            "email_list": [], "daily_limit": 50, "stop_on_reply": True, "text_only": False,
            "organization": workspace, "timestamp_created": c.created_at, "timestamp_updated": c.updated_at}


def _handle(sim: VendorSimulator, req: SimRequest) -> web.Response:
    token = authenticate(sim, req, bearer(req))
    if token is None:
        return _error(401, "Invalid API key")
    for bucket in ("instantly_second", "instantly_minute"):        # both windows, per workspace (sim.scope)
        if (limited := limit(sim, SIM, bucket, token, req.now)) is not None:
            return limited
    polled = handle_analytics(sim, req, token, _error, lambda cid: sim.visible(f"instantly:{cid}", token))
    if polled is not None:
        return polled
    action = _ACTION.fullmatch(req.path) if req.method == "POST" else None
    read = _CAMPAIGN.fullmatch(req.path) if req.method == "GET" else None
    m = action or read
    if m is None:
        return _error(404, f"Route {req.method}:{req.path} not found")
    if not CAMPAIGN_ID.fullmatch(m[1]):
        return _error(400, "params/id must match format \"uuid\"")
    c = sim.visible(f"instantly:{m[1]}", token)
    if c is None:
        return _error(404, "Campaign not found")
    if action is not None:
        problem = _transition(sim, c, action[2])
        if problem is not None:
            return _error(400, problem)
    return web.json_response(_campaign(c, sim.scope("instantly", token)))


def _transition(sim: VendorSimulator, c: SimCampaign, action: str) -> str | None:
    """Apply pause/activate; the reason it is refused, else None."""
    if c.status in _HELD:
        return f"Campaign is held by Instantly (status {c.status}); fix the cause first"
    if action == "pause":
        if c.status == "2":
            return "Campaign is already paused" if sim.strict_same_state else None
        if c.status not in _ACTIVE:
            return f"Campaign cannot be paused from status {c.status}"
        sim.set_status(c.ref, "2")
        return None
    if c.status in _ACTIVE:
        return "Campaign is already active" if sim.strict_same_state else None
    if c.status not in ("0", "2"):
        return f"Campaign cannot be activated from status {c.status}"
    if c.leads < 1 or c.sequence_steps < 1:
        return "Campaign needs leads and at least one sequence step before it can be activated"
    sim.set_status(c.ref, "1")               # a draft is started; moves timestamp_updated
    return None


SIM: Final = SimVendor(
    name="instantly",
    prefix="/instantly/api/v2",
    key="sim-instantly-key",
    # per workspace: 100 per second and 6,000 per minute, both enforced
    limits={"instantly_second": (100, 1.0), "instantly_minute": (6000, 60.0)},
    statuses=tuple(STATUSES),
    common={"draft": "0", "active": "1", "paused": "2", "completed": "3", "vendor_held": "-1"},
    paused="2", running="1", completed="3",
    handle=_handle, error_body=_error_body, rate_limited=_rate_limited,
    workspace=WORKSPACE,
    controls="bot.vendors.instantly.sim_control:add_control_routes",
    forget="bot.vendors.instantly.sim_analytics:clear_accounts",
)
