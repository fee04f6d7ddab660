"""Vendor simulator: the three vendors' HTTP contracts (auth, rate limits, campaign state machines).

Faithful to docs/vendors.md where it is documented; where it is silent the simulator chooses, and says so:

Smartlead (`?api_key=`, or `api_key` in a POST body):
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
Leadterra (Bearer): POST /campaigns/{id}/pause|start, GET /campaigns/{id}/stats; no read endpoint.
  Pause on paused/draft and start on running are no-ops returning the current state (documented):
  the ORIGINAL pausedAt/startedAt (null for a draft), status `draft` for a draft;
  start on draft launches; start without leads/steps → 400 no_leads_enrolled / no_sequence_steps;
  a non-empty body → 400 invalid_request. Error body (undocumented) `{"error": {"code", "message"}}`.
Inbox (Bearer): GET /campaigns/{id}; POST /campaigns/v2/{id}/enable|disable with a JSON object body;
  POST /campaigns/{id}/pause (the v1 "pause an active campaign" page: active only, else 409).
  enable: draft/paused → active (needs leads/sequence, else 422). disable: active or draft → paused
  (the vendor's API reference: "disabling any campaign transitions it to paused"); completed → 409 STATE_CONFLICT;
  same-state → 409 when `strict_same_state`, else 200. Limits per token: reads and writes apart.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.testing.sim_core import ACCOUNT_SECRET, SimCampaign, format_retry_after

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["HANDLERS", "SimRequest", "error_response", "rate_limited"]

_CAMPAIGN: Final = re.compile(r"/campaigns/([^/]+)/?")
_SL_STATUS: Final = re.compile(r"/campaigns/([^/]+)/status/?")
_SL_ACCOUNTS: Final = re.compile(r"/campaigns/([^/]+)/email-accounts/?")
_LT_ACTION: Final = re.compile(r"/campaigns/([^/]+)/(pause|start|stats)/?")
_IN_ACTION: Final = re.compile(r"/campaigns/v2/([^/]+)/(enable|disable)/?")
_IN_PAUSE: Final = re.compile(r"/campaigns/([^/]+)/pause/?")
_INBOX_ID: Final = re.compile(r"[0-9a-z]+")


@dataclass(frozen=True, slots=True)
class SimRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any                  # decoded JSON, the raw text when not JSON, None when empty
    now: float


def error_response(vendor: str, status: int, code: str | None = None, message: str = "",
                   headers: Mapping[str, str] | None = None) -> web.Response:
    """An error in the vendor's own body shape."""
    try:
        message = message or HTTPStatus(status).phrase
    except ValueError:
        message = message or "Error"
    if vendor == "smartlead":
        body: dict[str, Any] = {"success": False, "error": {"code": code or f"HTTP_{status}", "message": message}}
    elif vendor == "leadterra":
        body = {"error": {"code": code or f"http_{status}", "message": message}}
    else:
        body = {"error": {"code": code or f"HTTP_{status}", "message": message, "status": status}}
    return web.json_response(body, status=status, headers=headers)


def rate_limited(vendor: str, retry_after: str) -> web.Response:
    """429 with `Retry-After`; Smartlead also puts `retry_after` in the body."""
    headers = {"Retry-After": retry_after}
    if vendor == "smartlead":
        body = {"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "Rate limit exceeded",
                          "retry_after": float(retry_after) if "." in retry_after else int(retry_after)}}
        return web.json_response(body, status=429, headers=headers)
    if vendor == "inbox":
        return error_response(vendor, 429, "RATE_LIMITED", "Too many requests", headers)
    return error_response(vendor, 429, "rate_limited", "Too many requests", headers)


def _bearer(req: SimRequest) -> str | None:
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _limit(sim: VendorSimulator, vendor: str, bucket: str, credential: str, now: float) -> web.Response | None:
    wait = sim.check_limit(bucket, credential, now)
    return None if wait is None else rate_limited(vendor, format_retry_after(wait))


# ---------------------------------------------------------------- Smartlead

def _sl_campaign(c: SimCampaign) -> dict[str, Any]:
    return {"id": int(c.id), "user_id": 1, "name": c.name, "status": c.status, "created_at": c.created_at,
            "updated_at": c.updated_at, "client_id": None, "parent_campaign_id": None}


def _sl_account(c: SimCampaign, email: str) -> dict[str, Any]:
    """An email account as §1.5 lists them, credentials included (fake, marked with ACCOUNT_SECRET)."""
    account_id = zlib.crc32(email.lower().encode()) % 900_000 + 100_000
    user, _, domain = email.partition("@")
    return {"id": account_id, "created_at": c.created_at, "updated_at": c.updated_at, "user_id": 1,
            "from_name": user.title(), "from_email": email, "username": email,
            "password": f"{ACCOUNT_SECRET}-smtp-{account_id}", "smtp_host": f"smtp.{domain}", "smtp_port": 587,
            "smtp_port_type": "TLS", "imap_username": email, "imap_password": f"{ACCOUNT_SECRET}-imap-{account_id}",
            "imap_host": f"imap.{domain}", "imap_port": 993, "type": "SMTP", "message_per_day": 40,
            "daily_sent_count": 0, "is_smtp_success": True, "is_imap_success": True, "smtp_failure_error": None,
            "imap_failure_error": None, "client_id": None, "campaign_count": 1,
            "warmup_details": {"status": "ACTIVE", "total_sent_count": 0, "total_spam_count": 0,
                               "warmup_reputation": "100%", "reply_rate": 0, "blocked_reason": None}}


def smartlead(sim: VendorSimulator, req: SimRequest) -> web.Response:
    body_key = req.body.get("api_key") if isinstance(req.body, dict) else None
    key = req.query.get("api_key") or (body_key if isinstance(body_key, str) else None)
    if key is None or key not in sim.keys["smartlead"]:
        return error_response("smartlead", 401, "UNAUTHORIZED", "Invalid or missing API key")
    if (limited := _limit(sim, "smartlead", "smartlead", key, req.now)) is not None:
        return limited
    if req.method == "GET" and req.path in ("/campaigns", "/campaigns/"):
        found = [_sl_campaign(c) for c in sim.campaigns.values() if c.vendor == "smartlead"]
        return web.json_response(sorted(found, key=lambda c: -c["id"]))
    if req.method == "GET" and (m := _SL_ACCOUNTS.fullmatch(req.path)):
        c = sim.campaigns.get(f"smartlead:{m[1]}")
        if c is None:
            return error_response("smartlead", 404, "NOT_FOUND", "Campaign not found")
        return web.json_response([_sl_account(c, email) for email in c.accounts])
    if req.method == "GET" and (m := _CAMPAIGN.fullmatch(req.path)):
        c = sim.campaigns.get(f"smartlead:{m[1]}")
        if c is None:
            return error_response("smartlead", 404, "NOT_FOUND", "Campaign not found")
        data = _sl_campaign(c)
        return web.json_response(data if sim.smartlead_get_shape == "flat" else {"success": True, "data": data})
    if req.method == "POST" and (m := _SL_STATUS.fullmatch(req.path)):
        c = sim.campaigns.get(f"smartlead:{m[1]}")
        if c is None:
            return error_response("smartlead", 404, "NOT_FOUND", "Campaign not found")
        return _sl_status(sim, c, req.body)
    return error_response("smartlead", 404, "NOT_FOUND", "Route not found")


def _sl_status(sim: VendorSimulator, c: SimCampaign, body: Any) -> web.Response:
    if not isinstance(body, dict):
        return error_response("smartlead", 400, "BAD_REQUEST", "Request body must be a JSON object")
    value = body.get("status")
    if value not in ("START", "PAUSED", "STOPPED"):
        return error_response("smartlead", 422, "VALIDATION_ERROR", "status must be one of START, PAUSED, STOPPED")
    bad = _sl_transition(sim, c, value)
    if bad is not None:
        return error_response("smartlead", 422, *bad)
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


# ---------------------------------------------------------------- Leadterra

def leadterra(sim: VendorSimulator, req: SimRequest) -> web.Response:
    token = _bearer(req)
    if token is None or token not in sim.keys["leadterra"]:
        return error_response("leadterra", 401, "authentication_failed",
                              "The Authorization header is missing, malformed, or the key is invalid.")
    if (limited := _limit(sim, "leadterra", "leadterra", token, req.now)) is not None:
        return limited
    m = _LT_ACTION.fullmatch(req.path)
    if m is None or (req.method, m[2]) not in {("POST", "pause"), ("POST", "start"), ("GET", "stats")}:
        return error_response("leadterra", 404, "not_found", "No such endpoint")
    c = sim.campaigns.get(f"leadterra:{m[1]}")
    if c is None:
        return error_response("leadterra", 404, "campaign_not_found",
                              "No campaign with the given id exists in your workspace.")
    if m[2] == "stats":
        return web.json_response({"campaignId": c.id, "totalEnrolled": c.leads, "sent": 0, "delivered": 0,
                                  "bounced": 0, "replied": 0, "queued": 0, "openRate": 0.0, "replyRate": 0.0})
    if req.body not in (None, {}, ""):
        return error_response("leadterra", 400, "invalid_request", "This endpoint accepts no request body.")
    if m[2] == "pause":
        if c.status == "running":
            sim.set_status(c.ref, "paused")  # stamps pausedAt; on paused/draft: the original one, unchanged
        return web.json_response({"id": c.id, "status": c.status, "pausedAt": c.paused_at})
    if c.status != "running":
        if c.leads < 1:
            return error_response("leadterra", 400, "no_leads_enrolled",
                                  "The campaign has no enrolled leads and cannot be started.")
        if c.sequence_steps < 1:
            return error_response("leadterra", 400, "no_sequence_steps", "The campaign has no sequence steps defined.")
        sim.set_status(c.ref, "running")
    return web.json_response({"id": c.id, "status": c.status, "startedAt": c.started_at})


# ---------------------------------------------------------------- Inbox

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


def inbox(sim: VendorSimulator, req: SimRequest) -> web.Response:
    token = _bearer(req)
    if token is None or token not in sim.keys["inbox"]:
        return error_response("inbox", 401, "UNAUTHORIZED", "Missing or invalid API token")
    bucket = "inbox_read" if req.method == "GET" else "inbox_write"
    if (limited := _limit(sim, "inbox", bucket, token, req.now)) is not None:
        return limited
    headers = sim.limit_headers(bucket, token, req.now)
    v2 = _IN_ACTION.fullmatch(req.path)
    v1 = _IN_PAUSE.fullmatch(req.path) if req.method == "POST" else _CAMPAIGN.fullmatch(req.path)
    m = v2 if req.method == "POST" and v2 else v1
    if m is None or req.method not in ("GET", "POST"):
        return error_response("inbox", 404, "NOT_FOUND", "Route not found", headers)
    if not _INBOX_ID.fullmatch(m[1]):
        return error_response("inbox", 400, "BAD_REQUEST", "campaignId must match ^[0-9a-z]+$", headers)
    c = sim.campaigns.get(f"inbox:{m[1]}")
    if c is None:
        return error_response("inbox", 404, "CAMPAIGN_NOT_FOUND", "Campaign not found", headers)
    if req.method == "GET":
        return web.json_response(_in_campaign(c, v2=False), headers=headers)
    if not isinstance(req.body, dict):
        return error_response("inbox", 400, "BAD_REQUEST", "Body must be a JSON object", headers)
    action = m[2] if m is v2 else "pause"
    problem = _in_transition(sim, c, action)
    if problem is not None:
        return error_response("inbox", *problem, headers=headers)
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


HANDLERS: Final[dict[str, Callable[[VendorSimulator, SimRequest], web.Response]]] = {
    "smartlead": smartlead,
    "leadterra": leadterra,
    "inbox": inbox,
}
