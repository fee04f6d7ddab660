"""The simulated lemlist (bot.testing), served under `/lemlist/api`:

  Auth: `Authorization: Basic base64(":" + key)` with an EMPTY user; anything else → 401. The legacy
  `?access_token=` (real lemlist accepts it) is refused here with 401, so a client that used it fails.
  Limit: 20 requests per 2 s per key; a 429 carries `Retry-After` (whole seconds), `X-RateLimit-Limit`,
  `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset` as a JavaScript date string ("Tue Feb 16 2021
  09:02:42 GMT+0000 (Coordinated Universal Time)"); every admitted answer carries the same headers.
  GET /campaigns/{id}: the Campaign object (`_id`, `name`, `createdAt`, `status`, `hasError`, `errors`,
  `teamId`, `sequenceId`, `scheduleIds`, `creator`, `senders`); no update stamp, like the documented
  object (the simulator still moves its own `updated_at` on every change, for tests).
  POST /campaigns/{id}/pause: running → paused; anything else unchanged (the documented no-op); answers
  `{"_id", "state"}` (`state`, not `status`).
  POST /campaigns/{id}/start: paused → running, draft → running (a launch: needs leads and a sequence,
  else 400), running → 400 "You can't start campaigns that are already running"; ended, archived and
  errors → 400 [G]. Answers `{"_id", "state"}` [G].
  Errors are plain text bodies [G] (an unknown or malformed id: 404 / 400). A campaign owned by another
  key (`add_campaign(..., key=)`) is 404 "Campaign not found", as a missing one.
  GET /campaigns?version=v2&limit=&offset= (or `page=`, 1-based [G]): `{"campaigns": [Campaign objects],
  "pagination": {"totalRecords", "currentPage", "nextPage", "totalPage"}}` [3P shape, G field names];
  without `version=v2` the legacy bare array of `{_id, name, labels}` (no status) [C legacy docs]. `limit`
  100 by default and at most (a larger one is served as 100) [C]; campaigns in insertion order, only the
  key's own and those without an owner.
  GET /v2/campaigns/{id}/stats: lifetime numbers [G], `{nbLeads, nbLeadsLaunched, nbLeadsReached,
  nbLeadsOpened, nbLeadsInteracted, nbLeadsAnswered, nbLeadsInterested, nbLeadsNotInterested,
  nbLeadsUnsubscribed, nbLeadsInterrupted, messagesSent, messagesNotSent, messagesBounced, delivered,
  opened, clicked, replied, invitationAccepted, meetingBooked, steps: []}` [3P], from `set_stats(sim, ref,
  sent=, bounced=, delivered=, opened=, clicked=, replied=, unsubscribed=, ...)` (or `PUT /_sim/lemlist/stats/{ref}`,
  `bot.vendors.lemlist.sim_control`; 0 until set; `nbLeads`
  is the campaign's `leads`). They live beside the simulator: a replaced campaign starts again from 0.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.testing.sim_core import SimCampaign
from bot.testing.sim_spec import SimRequest, SimVendor, authenticate, limit
from bot.testing.sim_stats import StatsBook
from bot.vendors.lemlist import STATUSES

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["ALREADY_RUNNING", "SIM", "STATS", "STATS_FIELDS", "js_date", "set_stats"]

ALREADY_RUNNING: Final = "You can't start campaigns that are already running"
_CAMPAIGN: Final = re.compile(r"/campaigns/([^/]+)/?")
_ACTION: Final = re.compile(r"/campaigns/([^/]+)/(pause|start)/?")
_LEMLIST_ID: Final = re.compile(r"cam_[A-Za-z0-9]+")
_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LIMIT: Final = (20, 2.0)                   # "20 requests per 2 seconds", per API key [C]
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_STATS_PATH: Final = re.compile(r"/v2/campaigns/([^/]+)/stats/?")
_PAGE: Final = 100                          # campaigns per page: default and maximum [C]
#: `set_stats` name → the v2 stats field it sets
STATS_FIELDS: Final = {
    "sent": "messagesSent", "not_sent": "messagesNotSent", "bounced": "messagesBounced", "delivered": "delivered",
    "opened": "opened", "clicked": "clicked", "replied": "replied", "meetings": "meetingBooked",
    "invitations_accepted": "invitationAccepted", "launched": "nbLeadsLaunched", "reached": "nbLeadsReached",
    "leads_opened": "nbLeadsOpened", "interacted": "nbLeadsInteracted", "answered": "nbLeadsAnswered",
    "interested": "nbLeadsInterested", "not_interested": "nbLeadsNotInterested",
    "unsubscribed": "nbLeadsUnsubscribed", "interrupted": "nbLeadsInterrupted",
}
#: the numbers `set_stats` and `PUT /_sim/lemlist/stats/{ref}` set, by v2 field (`bot.testing.sim_stats`)
STATS: Final = StatsBook("lemlist", STATS_FIELDS)


def set_stats(sim: VendorSimulator, ref: str, **numbers: int) -> None:
    """Set some of campaign `ref`'s stats (`STATS_FIELDS` names; the others keep their value, 0 at first)."""
    STATS.set(sim, ref, **numbers)


def _stats(sim: VendorSimulator, c: SimCampaign) -> dict[str, Any]:
    return {"nbLeads": c.leads, **STATS.numbers(sim, c), "steps": []}


def _list(sim: VendorSimulator, req: SimRequest, key: str, headers: dict[str, str]) -> web.Response:
    """GET /campaigns: v2 `{campaigns, pagination}`, or the legacy bare array without `version=v2`."""
    try:
        limit = min(int(req.query.get("limit", str(_PAGE))), _PAGE)
        page = int(req.query["page"]) if "page" in req.query else None
        offset = (page - 1) * limit if page is not None else int(req.query.get("offset", "0"))
    except ValueError:
        return _text(400, "limit, offset and page must be integers", headers)
    if limit < 1 or offset < 0:
        return _text(400, "limit must be positive and offset not negative", headers)
    mine = sim.visible_campaigns("lemlist", key)
    chunk = mine[offset:offset + limit]
    if req.query.get("version") != "v2":
        return web.json_response([{"_id": c.id, "name": c.name, "labels": []} for c in chunk], headers=headers)
    pages = max(1, -(-len(mine) // limit))
    current = offset // limit + 1
    return web.json_response({"campaigns": [_campaign_object(c) for c in chunk],
                              "pagination": {"totalRecords": len(mine), "currentPage": current,
                                             "nextPage": current + 1 if offset + limit < len(mine) else None,
                                             "totalPage": pages}}, headers=headers)


def js_date(moment: datetime) -> str:
    """`moment` as JavaScript's `Date.toString()` writes it in UTC (what lemlist's reset header holds)."""
    m = moment.astimezone(UTC)
    return (f"{_DAYS[m.weekday()]} {_MONTHS[m.month - 1]} {m.day:02d} {m.year} {m:%H:%M:%S} GMT+0000 "
            f"(Coordinated Universal Time)")


def _error_body(status: int, code: str | None, message: str) -> dict[str, Any]:
    return {"error": message, "code": code or status}


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """lemlist answers errors in plain text [G]."""
    return web.Response(status=status, text=message, headers=headers)


def _limit_headers(remaining: int, seconds: float) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(_LIMIT[0]),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": js_date(datetime.now(UTC) + timedelta(seconds=seconds))}


def _rate_limited(retry_after: str) -> web.Response:
    try:
        seconds = float(retry_after)
    except ValueError:
        seconds = 1.0
    return _text(429, "Too many requests", {"Retry-After": retry_after, **_limit_headers(0, seconds)})


def _basic_key(req: SimRequest) -> str | None:
    """The password of `Basic base64(":" + key)`; None unless the scheme is Basic and the user is empty."""
    scheme, _, encoded = req.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, key = decoded.partition(":")
    return key if colon and not user and key else None


def _campaign_object(c: SimCampaign) -> dict[str, Any]:
    held = c.status == "errors"
    return {
        "_id": c.id, "name": c.name, "createdAt": c.created_at, "createdBy": "usr_simcreator0000001",
        "status": c.status, "sequenceId": f"seq_{c.id[4:]}", "scheduleIds": ["skd_simschedule00001"],
        "teamId": "tea_simteam000000001", "hasError": held,
        "errors": ["A sender's mailbox is disconnected"] if held else [],
        "creator": {"userId": "usr_simcreator0000001", "userEmail": "owner@example.com"},
        "senders": [{"id": "usr_simsender00000001", "email": "sender@example.com",
                     "sendUserMailboxId": "usm_simmailbox000001"}],
    }


def _handle(sim: VendorSimulator, req: SimRequest) -> web.Response:
    if "access_token" in req.query:
        return _text(401, "access_token query authentication is not accepted here: use HTTP Basic")
    key = authenticate(sim, req, _basic_key(req))
    if key is None:
        return _text(401, "Unauthorized")
    if (limited := limit(sim, SIM, "lemlist", key, req.now)) is not None:
        return limited
    headers = sim.limit_headers("lemlist", key, req.now)
    if headers:
        headers["X-RateLimit-Reset"] = js_date(datetime.now(UTC) + timedelta(seconds=2))
    if req.method == "GET" and req.path.rstrip("/") == "/campaigns":
        return _list(sim, req, key, headers)
    if req.method == "GET" and (stats := _STATS_PATH.fullmatch(req.path)):
        if not _LEMLIST_ID.fullmatch(stats[1]):
            return _text(400, "Invalid campaignId", headers)
        found = sim.visible(f"lemlist:{stats[1]}", key)
        if found is None:
            return _text(404, "Campaign not found", headers)
        return web.json_response(_stats(sim, found), headers=headers)
    action = _ACTION.fullmatch(req.path) if req.method == "POST" else None
    read = _CAMPAIGN.fullmatch(req.path) if req.method == "GET" else None
    m = action or read
    if m is None:
        return _text(404, "Not found", headers)
    if not _LEMLIST_ID.fullmatch(m[1]):
        return _text(400, "Invalid campaignId", headers)
    c = sim.visible(f"lemlist:{m[1]}", key)
    if c is None:
        return _text(404, "Campaign not found", headers)
    if read is not None:
        return web.json_response(_campaign_object(c), headers=headers)
    if m[2] == "pause":
        if c.status == "running":
            sim.set_status(c.ref, "paused")
        return web.json_response({"_id": c.id, "state": c.status}, headers=headers)
    problem = _start(sim, c)
    if problem is not None:
        return _text(400, problem, headers)
    return web.json_response({"_id": c.id, "state": c.status}, headers=headers)


def _start(sim: VendorSimulator, c: SimCampaign) -> str | None:
    if c.status == "running":
        return ALREADY_RUNNING
    if c.status not in ("paused", "draft"):
        return f"You can't start a campaign that is {c.status}"
    if c.leads < 1 or c.sequence_steps < 1:
        return "The campaign needs leads and a sequence before it can start"
    sim.set_status(c.ref, "running")        # a draft is launched: that is why campaign-guard never starts one
    return None


SIM: Final = SimVendor(
    name="lemlist",
    prefix="/lemlist/api",
    key="sim-lemlist-key",
    limits={"lemlist": _LIMIT},
    statuses=tuple(STATUSES),
    common={common.value: native for native, common in STATUSES.items()},
    paused="paused", running="running", completed="ended",
    handle=_handle, error_body=_error_body, rate_limited=_rate_limited,
    controls="bot.vendors.lemlist.sim_control:add_control_routes",
)
