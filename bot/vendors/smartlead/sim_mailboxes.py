"""The simulated Smartlead's email-account reads (docs/vendors.md §1.5), credentials included as the real
one serves them (fake values containing `ACCOUNT_SECRET`, so tests can prove a client keeps none):

  GET /email-accounts/?offset=&limit= (limit 1-100, default 100; filters `emailWarmupStatus=ACTIVE|INACTIVE`
  and `isSmtpSuccess=true|false`): a bare array, by id, of every mailbox the key sees, each with
  `warmup_details.warmup_reputation` as a percent STRING ("95%") and `password`/`imap_password`.
  GET /email-accounts/{id}/[?fetch_campaigns=true]: one account, `warmup_reputation` as the NUMBER 95 and
  `warmup_details` adding `is_warmup_blocked, warmup_max_count, warmup_min_count, max_email_per_day` (the
  documented contradiction [X]); with `fetch_campaigns=true` also `campaigns: [{id, name, status}]` [G: the
  field's name was not captured]. 404 "Email account not found" for a mailbox the key does not see.
  `account_json` is also what `GET /campaigns/{id}/email-accounts` lists (as the list endpoint does).
The mailboxes themselves (who sees which, health values) are `bot.vendors.smartlead.sim_data`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.testing.sim_core import ACCOUNT_SECRET
from bot.vendors.smartlead.sim_data import SimMailbox, visible_mailboxes
from bot.vendors.smartlead.sim_query import BadQuery, error, query_int

if TYPE_CHECKING:
    from bot.testing.sim_core import SimCampaign
    from bot.testing.sim_spec import SimRequest
    from bot.testing.simulator import VendorSimulator

__all__ = ["account_json", "route"]

_LIST: Final = re.compile(r"/email-accounts/?")
_ONE: Final = re.compile(r"/email-accounts/([^/]+)/?")
_CREATED: Final = "2026-01-01T00:00:00Z"


def account_json(mailbox: SimMailbox, campaign_count: int, *, detail: bool = False) -> dict[str, Any]:
    """An email account as §1.5 shows it: the list's shape, or (`detail`) get-by-id's."""
    account_id = mailbox.id
    user, _, domain = mailbox.email.partition("@")
    warmup: dict[str, Any] = {
        "status": mailbox.warmup_status, "total_sent_count": mailbox.warmup_sent,
        "total_spam_count": mailbox.warmup_spam,
        "warmup_reputation": mailbox.reputation if detail else f"{mailbox.reputation}%",
        "reply_rate": mailbox.warmup_reply_rate, "blocked_reason": mailbox.blocked_reason,
    }
    if detail:
        warmup.update(is_warmup_blocked=mailbox.warmup_blocked, warmup_max_count=40, warmup_min_count=10,
                      max_email_per_day=mailbox.message_per_day)
    return {
        "id": account_id, "created_at": _CREATED, "updated_at": _CREATED, "user_id": 1,
        "from_name": mailbox.from_name or user.title(), "from_email": mailbox.email, "username": mailbox.email,
        "password": f"{ACCOUNT_SECRET}-smtp-{account_id}", "smtp_host": f"smtp.{domain}", "smtp_port": 587,
        "smtp_port_type": "TLS", "imap_username": mailbox.email,
        "imap_password": f"{ACCOUNT_SECRET}-imap-{account_id}", "imap_host": f"imap.{domain}", "imap_port": 993,
        "type": mailbox.type, "message_per_day": mailbox.message_per_day,
        "daily_sent_count": mailbox.daily_sent_count, "is_smtp_success": mailbox.smtp_ok,
        "is_imap_success": mailbox.imap_ok, "smtp_failure_error": mailbox.smtp_failure_error,
        "imap_failure_error": mailbox.imap_failure_error, "client_id": None, "campaign_count": campaign_count,
        "warmup_details": warmup,
    }


def _flag(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise BadQuery(f"{name} must be true or false")
    return bool(raw == "true")


def _list(sim: VendorSimulator, req: SimRequest, key: str) -> web.Response:
    offset = query_int(req.query, "offset", 0, 0)
    limit = query_int(req.query, "limit", 100, 1, 100)
    warmup = req.query.get("emailWarmupStatus")
    if warmup not in (None, "ACTIVE", "INACTIVE"):
        raise BadQuery("emailWarmupStatus must be ACTIVE or INACTIVE")
    smtp = _flag(req.query, "isSmtpSuccess")
    found = [account_json(m, len(campaigns)) for m, campaigns in visible_mailboxes(sim, key)
             if (warmup is None or m.warmup_status == warmup) and (smtp is None or m.smtp_ok is smtp)]
    return web.json_response(found[offset:offset + limit])


def _one(sim: VendorSimulator, req: SimRequest, key: str, wanted: str) -> web.Response:
    fetch = _flag(req.query, "fetch_campaigns")
    for mailbox, campaigns in visible_mailboxes(sim, key):
        if str(mailbox.id) == wanted:
            body = account_json(mailbox, len(campaigns), detail=True)
            if fetch:
                body["campaigns"] = [_campaign_json(c) for c in campaigns]
            return web.json_response(body)
    return error(404, "NOT_FOUND", "Email account not found")


def _campaign_json(campaign: SimCampaign) -> dict[str, Any]:
    return {"id": int(campaign.id), "name": campaign.name, "status": campaign.status}


def route(sim: VendorSimulator, req: SimRequest, key: str) -> web.Response | None:
    """The answer to an email-account read of an authenticated, admitted request; None: not such a read."""
    if req.method != "GET":
        return None
    try:
        if _LIST.fullmatch(req.path):
            return _list(sim, req, key)
        if m := _ONE.fullmatch(req.path):
            return _one(sim, req, key, m[1])
    except BadQuery as exc:
        return error(400, "VALIDATION_ERROR", str(exc))
    return None
