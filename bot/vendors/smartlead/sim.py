"""The simulated Smartlead (bot.testing): Smartlead (`?api_key=`, or `api_key` in a POST body):
  GET /campaigns/{id} (envelope `{"success": true, "data": {...}}`, or flat with shape "flat"; its
  `updated_at` moves on every status change),
  GET /campaigns (bare array, newest first), GET /campaigns/{id}/email-accounts (the campaign's
  `accounts`, as account objects with fake `password`/`imap_password` values containing ACCOUNT_SECRET),
  POST /campaigns/{id}/status with START|PAUSED|STOPPED.
  START: DRAFTED → ACTIVE (launch), PAUSED → ACTIVE, after checking leads/sequence (else 422).
  PAUSED: ACTIVE → PAUSED. STOPPED: accepted from any state, terminal (then every change → 422).
  Chosen: an invalid transition (PAUSED on DRAFTED, anything on COMPLETED/ARCHIVED) → 422
  INVALID_STATUS_TRANSITION; a same-state request → 422 when `strict_same_state`, else a 200 no-op.
  Any other status value (ACTIVE, PAUSE, STOP, lowercase) → 422 VALIDATION_ERROR.
  Several keys (an agency: one per client): a campaign owned by one key (`add_campaign(..., key=)`) is
  404 "Campaign not found" for every other key, and `GET /campaigns` lists only the key's own campaigns
  and those without an owner.
  Analytics (§1.4, `sim_analytics`): GET /analytics/campaign/overall-stats (rates as percent strings),
  GET /campaigns/{id}/statistics (per sequence step). Email accounts (§1.5, `sim_mailboxes`):
  GET /email-accounts/ (paged, reputation "95%", passwords included), GET /email-accounts/{id}/ (reputation
  95, `is_warmup_blocked`). Their data is set through `sim_data` (`set_campaign_stats`, `add_mailbox`) or
  the `/_sim/smartlead/` control routes (`sim_control`). Authentication, the rate limit and every injected
  fault apply to these routes as to the others.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.testing.sim_core import SimCampaign
from bot.testing.sim_spec import SimRequest, SimVendor, authenticate, limit
from bot.vendors.smartlead import STATUSES, sim_analytics, sim_mailboxes
from bot.vendors.smartlead.sim_data import mailbox, visible_mailboxes
from bot.vendors.smartlead.sim_mailboxes import account_json
from bot.vendors.smartlead.sim_query import error_body

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["SIM"]

_CAMPAIGN: Final = re.compile(r"/campaigns/([^/]+)/?")
_SL_STATUS: Final = re.compile(r"/campaigns/([^/]+)/status/?")
_SL_ACCOUNTS: Final = re.compile(r"/campaigns/([^/]+)/email-accounts/?")


def _error(status: int, code: str | None = None, message: str = "") -> web.Response:
    return SIM.error(status, code, message)


def _rate_limited(retry_after: str) -> web.Response:
    """429 with `Retry-After`, and `retry_after` in the body too."""
    body = {"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "Rate limit exceeded",
                      "retry_after": float(retry_after) if "." in retry_after else int(retry_after)}}
    return web.json_response(body, status=429, headers={"Retry-After": retry_after})


def _sl_campaign(c: SimCampaign) -> dict[str, Any]:
    return {"id": int(c.id), "user_id": 1, "name": c.name, "status": c.status, "created_at": c.created_at,
            "updated_at": c.updated_at, "client_id": None, "parent_campaign_id": None}


def _sl_accounts(sim: VendorSimulator, c: SimCampaign, key: str) -> list[dict[str, Any]]:
    """The campaign's senders as §1.5 lists email accounts, credentials included (fake, ACCOUNT_SECRET)."""
    counts = {m.email.lower(): len(campaigns) for m, campaigns in visible_mailboxes(sim, key)}
    return [account_json(mailbox(sim, email), counts.get(email.lower(), 1)) for email in c.accounts]


def _handle(sim: VendorSimulator, req: SimRequest) -> web.Response:
    body_key = req.body.get("api_key") if isinstance(req.body, dict) else None
    key = authenticate(sim, req, req.query.get("api_key") or (body_key if isinstance(body_key, str) else None))
    if key is None:
        return _error(401, "UNAUTHORIZED", "Invalid or missing API key")
    if (limited := limit(sim, SIM, "smartlead", key, req.now)) is not None:
        return limited
    for route in (sim_analytics.route, sim_mailboxes.route):
        if (answer := route(sim, req, key)) is not None:
            return answer
    if req.method == "GET" and req.path in ("/campaigns", "/campaigns/"):
        found = [_sl_campaign(c) for c in sim.visible_campaigns("smartlead", key)]
        return web.json_response(sorted(found, key=lambda c: -c["id"]))
    if req.method == "GET" and (m := _SL_ACCOUNTS.fullmatch(req.path)):
        c = sim.visible(f"smartlead:{m[1]}", key)
        if c is None:
            return _error(404, "NOT_FOUND", "Campaign not found")
        return web.json_response(_sl_accounts(sim, c, key))
    if req.method == "GET" and (m := _CAMPAIGN.fullmatch(req.path)):
        c = sim.visible(f"smartlead:{m[1]}", key)
        if c is None:
            return _error(404, "NOT_FOUND", "Campaign not found")
        data = _sl_campaign(c)
        return web.json_response(data if sim.smartlead_get_shape == "flat" else {"success": True, "data": data})
    if req.method == "POST" and (m := _SL_STATUS.fullmatch(req.path)):
        c = sim.visible(f"smartlead:{m[1]}", key)
        if c is None:
            return _error(404, "NOT_FOUND", "Campaign not found")
        return _sl_status(sim, c, req.body)
    return _error(404, "NOT_FOUND", "Route not found")


def _sl_status(sim: VendorSimulator, c: SimCampaign, body: Any) -> web.Response:
    if not isinstance(body, dict):
        return _error(400, "BAD_REQUEST", "Request body must be a JSON object")
    value = body.get("status")
    if value not in ("START", "PAUSED", "STOPPED"):
        return _error(422, "VALIDATION_ERROR", "status must be one of START, PAUSED, STOPPED")
    bad = _sl_transition(sim, c, value)
    if bad is not None:
        return _error(422, *bad)
    return web.json_response({"success": True, "message": "Campaign status updated successfully",
                              "campaign": {"id": int(c.id), "status": c.status}})


def _sl_transition(sim: VendorSimulator, c: SimCampaign, value: str) -> tuple[str, str] | None:
    invalid = ("INVALID_STATUS_TRANSITION", f"Cannot change status from {c.status} with {value}")
    if c.status == "STOPPED":
        return "INVALID_STATUS_TRANSITION", "Campaign is STOPPED; a stopped campaign cannot be changed"
    target = {"START": "ACTIVE", "PAUSED": "PAUSED", "STOPPED": "STOPPED"}[value]
    if c.status == target:
        return ("INVALID_STATUS_TRANSITION", f"Campaign is already {c.status}") if sim.strict_same_state else None
    if value == "START":
        if c.status not in ("DRAFTED", "PAUSED"):
            return invalid
        if c.leads < 1 or c.sequence_steps < 1:
            return "VALIDATION_ERROR", "Campaign needs leads and at least one sequence before it can start"
    elif value == "PAUSED" and c.status != "ACTIVE":
        return invalid
    sim.set_status(c.ref, target)            # moves updated_at (and paused_at/started_at)
    return None


SIM: Final = SimVendor(
    name="smartlead",
    prefix="/smartlead/api/v1",
    key="sim-smartlead-key",
    limits={"smartlead": (10, 2.0)},        # "10 requests every 2 seconds"
    statuses=tuple(STATUSES),
    common={common.value: native for native, common in STATUSES.items()},
    paused="PAUSED", running="ACTIVE", completed="COMPLETED",
    handle=_handle, error_body=error_body, rate_limited=_rate_limited,
    controls="bot.vendors.smartlead.sim_control:add_control_routes",
    forget="bot.vendors.smartlead.sim_data:forget",
)
