"""The simulated Instantly's analytics and accounts (bot.testing), served by `bot.vendors.instantly.sim`:

  GET /campaigns/analytics[?id=|ids=&start_date=&end_date=&exclude_total_leads_count=]: a bare array, one
  object per campaign of the key's workspace (filtered by `id`/`ids`), its daily numbers summed over the
  range (lifetime without one [G]): `campaign_id`, `campaign_name`, `campaign_status`, `emails_sent_count`,
  `contacted_count`, `open_count`, `reply_count`, `link_click_count`, `bounced_count`,
  `unsubscribed_count`, `leads_count` (left out with `exclude_total_leads_count=true`), ... [C fields].
  GET /campaigns/analytics/daily[?campaign_id=&start_date=&end_date=]: a bare array of the days with any
  activity in the range, oldest first: `date`, `sent`, `contacted`, `opened`, `replies`, `clicks`, ... (no
  campaign id, no `bounced`/`unsubscribed`: the documented row). Without `start_date` the last 30 days of
  `sim.wall()` [G: what Instantly documents for its account daily analytics], `end_date` defaults to that
  day; a start after the end → 400 "Start Date must be earlier than End Date" [C]. Without `campaign_id`,
  the workspace's campaigns summed per day; a campaign the key cannot see → [] [G].
  GET /accounts[?limit=&starting_after=&status=]: `{"items": [Account], "next_starting_after"}`, cursor
  pagination: `limit` 1-100 (default 100 [G]), the cursor is the last item's email [G: opaque], given
  only when the page is full (the next page may then be empty); an unknown cursor → 400 [G].

Numbers come from `set_daily(sim, ref, {"2026-11-02": {"sent": 40, "replies": 1, "bounced": 2}})` (by day;
`bounced` and `unsubscribed` only reach the overview, as documented), accounts from
`add_account(sim, email, status=, warmup_status=, warmup_score=, key=)` (or the control routes of
`bot.vendors.instantly.sim_control`). Both live beside the simulator,
not in it: `sim.reset()` does not forget accounts (`clear_accounts(sim)` does), and a campaign replaced by
`add_campaign` starts with no numbers. An account owned by a key is seen by every key of its workspace only.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.testing.sim_core import SimCampaign
from bot.testing.sim_spec import SimRequest
from bot.vendors.instantly import CAMPAIGN_ID

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["DAILY_FIELDS", "SimAccount", "accounts_of", "add_account", "clear_accounts", "handle_analytics",
           "set_daily"]

#: What a day can hold; the daily endpoint serves all but the last two (documented row).
DAILY_FIELDS: Final = ("sent", "contacted", "new_leads_contacted", "opened", "unique_opened", "replies",
                       "unique_replies", "replies_automatic", "unique_replies_automatic", "clicks",
                       "unique_clicks", "opportunities", "unique_opportunities", "bounced", "unsubscribed")
_SERVED_DAILY: Final = DAILY_FIELDS[:-2]
#: overview field → the day field it sums
_OVERVIEW: Final = {"emails_sent_count": "sent", "contacted_count": "contacted",
                    "new_leads_contacted_count": "new_leads_contacted", "open_count": "opened",
                    "open_count_unique": "unique_opened", "reply_count": "replies",
                    "reply_count_unique": "unique_replies", "reply_count_automatic": "replies_automatic",
                    "link_click_count": "clicks", "link_click_count_unique": "unique_clicks",
                    "bounced_count": "bounced", "unsubscribed_count": "unsubscribed",
                    "total_opportunities": "opportunities"}
_PAGE_MAX: Final = 100
_DEFAULT_DAYS: Final = 30

ErrorFn = Callable[[int, str], web.Response]


@dataclass
class SimAccount:
    """A sending account: `status` 1 active, 2 paused, -1 connection error, -2 soft bounce error, -3 sending
    error; `warmup_status` 0 paused, 1 active, -1 banned, -2 spam folder unknown, -3 permanent suspension."""

    email: str
    status: int = 1
    warmup_status: int = 1
    warmup_score: float | None = 100
    owner: str | None = field(default=None, repr=False)


@dataclass
class _Book:
    #: ref → (the campaign the numbers belong to, day → counts)
    daily: dict[str, tuple[SimCampaign, dict[date, dict[str, int]]]] = field(default_factory=dict)
    accounts: dict[str, SimAccount] = field(default_factory=dict)


_BOOKS: weakref.WeakKeyDictionary[VendorSimulator, _Book] = weakref.WeakKeyDictionary()


def _book(sim: VendorSimulator) -> _Book:
    return _BOOKS.setdefault(sim, _Book())


def set_daily(sim: VendorSimulator, ref: str, days: Mapping[str | date, Mapping[str, int]]) -> None:
    """Replace the daily numbers of campaign `ref` (which must exist): day (`YYYY-MM-DD`) → counts of
    `DAILY_FIELDS` (a field left out is 0)."""
    campaign = sim.campaign(ref)
    table: dict[date, dict[str, int]] = {}
    for day, counts in days.items():
        unknown = set(counts) - set(DAILY_FIELDS)
        if unknown:
            raise ValueError(f"unknown daily fields {sorted(unknown)}; use {DAILY_FIELDS}")
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in counts.values()):
            raise ValueError("daily counts must be non-negative integers")
        table[day if isinstance(day, date) else date.fromisoformat(day)] = {f: counts.get(f, 0) for f in DAILY_FIELDS}
    _book(sim).daily[ref] = (campaign, table)


def add_account(sim: VendorSimulator, email: str, *, status: int = 1, warmup_status: int = 1,
                warmup_score: float | None = 100, key: str | None = None) -> SimAccount:
    """Add (or replace) a sending account; `key`: the key that owns it (its workspace sees it), accepted by
    Instantly from now on; None: every key sees it."""
    account = SimAccount(email, status, warmup_status, warmup_score, owner=key)
    if key is not None:
        sim.keys["instantly"].add(key)
    _book(sim).accounts[email.lower()] = account
    return account


def clear_accounts(sim: VendorSimulator) -> None:
    _book(sim).accounts.clear()


def accounts_of(sim: VendorSimulator) -> list[SimAccount]:
    """Every added account, in the order added."""
    return list(_book(sim).accounts.values())


def _days(sim: VendorSimulator, c: SimCampaign) -> dict[date, dict[str, int]]:
    entry = _book(sim).daily.get(c.ref)
    return entry[1] if entry is not None and entry[0] is c else {}


def _all(req: SimRequest, name: str) -> list[str]:
    """Every value of a repeated query parameter (`ids=a&ids=b`)."""
    getall = getattr(req.query, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(name, [])]
    value = req.query.get(name)
    return [] if value is None else [value]


def _date(req: SimRequest, name: str) -> date | None:
    """The query's date `name`; ValueError when it is given but not YYYY-MM-DD."""
    text = req.query.get(name)
    return None if text is None else date.fromisoformat(text)


def handle_analytics(sim: VendorSimulator, req: SimRequest, key: str, error: ErrorFn,
                     visible: Callable[[str], SimCampaign | None]) -> web.Response | None:
    """The analytics and accounts routes (GET); None for any other request."""
    if req.method != "GET":
        return None
    route = req.path.rstrip("/")
    if route == "/campaigns/analytics":
        return _overview(sim, req, key, error)
    if route == "/campaigns/analytics/daily":
        return _daily(sim, req, key, error, visible)
    if route == "/accounts":
        return _accounts(sim, req, key, error)
    return None


def _range(sim: VendorSimulator, req: SimRequest, default_days: int | None) -> tuple[date | None, date | None]:
    start, end = _date(req, "start_date"), _date(req, "end_date")
    if default_days is not None:
        end = end or sim.wall().date()
        start = start or end - timedelta(days=default_days)
    return start, end


def _overview(sim: VendorSimulator, req: SimRequest, key: str, error: ErrorFn) -> web.Response:
    wanted = [i.strip() for v in _all(req, "id") + _all(req, "ids") for i in v.split(",") if i.strip()]
    if any(not CAMPAIGN_ID.fullmatch(i) for i in wanted):
        return error(400, 'querystring/id must match format "uuid"')
    try:
        start, end = _range(sim, req, None)
    except ValueError:
        return error(400, 'querystring/start_date must match format "date"')
    if start and end and start > end:
        return error(400, "Start Date must be earlier than End Date")
    rows = []
    for c in sim.visible_campaigns("instantly", key):
        if wanted and c.id not in wanted:
            continue
        days = [n for day, n in _days(sim, c).items()
                if (start is None or day >= start) and (end is None or day <= end)]
        row: dict[str, Any] = {"campaign_name": c.name, "campaign_id": c.id,
                               "campaign_status": int(c.status) if c.status.lstrip("-").isdigit() else c.status,
                               "campaign_is_evergreen": False}
        if req.query.get("exclude_total_leads_count") != "true":
            row["leads_count"] = c.leads
        row |= {name: sum(n[day_field] for n in days) for name, day_field in _OVERVIEW.items()}
        row |= {"completed_count": 0, "total_opportunity_value": 0}
        rows.append(row)
    return web.json_response(rows)


def _daily(sim: VendorSimulator, req: SimRequest, key: str, error: ErrorFn,
           visible: Callable[[str], SimCampaign | None]) -> web.Response:
    campaign_id = req.query.get("campaign_id")
    if campaign_id is not None and not CAMPAIGN_ID.fullmatch(campaign_id):
        return error(400, 'querystring/campaign_id must match format "uuid"')
    try:
        start, end = _range(sim, req, _DEFAULT_DAYS)
    except ValueError:
        return error(400, 'querystring/start_date must match format "date"')
    assert start is not None and end is not None
    if start > end:
        return error(400, "Start Date must be earlier than End Date")
    if campaign_id is not None:
        one = visible(campaign_id)
        campaigns = [one] if one is not None else []
    else:
        campaigns = sim.visible_campaigns("instantly", key)
    by_day: dict[date, dict[str, int]] = {}
    active: set[date] = set()
    for c in campaigns:
        for day, counts in _days(sim, c).items():
            if start <= day <= end:
                total = by_day.setdefault(day, dict.fromkeys(_SERVED_DAILY, 0))
                for name in _SERVED_DAILY:
                    total[name] += counts[name]
                if any(counts.values()):        # bounces or unsubscribes alone are activity too
                    active.add(day)
    return web.json_response([{"date": day.isoformat(), **counts} for day, counts in sorted(by_day.items())
                              if day in active])


def _account(a: SimAccount, workspace: str) -> dict[str, Any]:
    """An Account object as the documented example shows it (no credentials)."""
    user, _, domain = a.email.partition("@")
    obj: dict[str, Any] = {
        "email": a.email, "timestamp_created": "2026-01-01T00:00:00.000Z",
        "timestamp_updated": "2026-01-01T00:00:00.000Z", "first_name": user.title(), "last_name": "Sim",
        "organization": workspace, "warmup_status": a.warmup_status, "provider_code": 2, "setup_pending": False,
        "is_managed_account": False,
        "warmup": {"limit": 100, "warmup_custom_ftag": "warmup", "increment": "disabled", "reply_rate": 0.1},
        "daily_limit": 100, "tracking_domain_name": domain, "tracking_domain_status": "active",
        "status": a.status, "enable_slow_ramp": False, "inbox_placement_test_limit": 10,
        "timestamp_last_used": "2026-01-01T00:00:00.000Z", "timestamp_warmup_start": "2026-01-01T00:00:00.000Z",
        "stat_warmup_score": a.warmup_score, "sending_gap": 10, "signature": f"Best regards, {user.title()}",
    }
    if a.status < 0:
        obj["status_message"] = {"code": "EAUTH", "command": "AUTH PLAIN",
                                 "response": "535 5.7.8 Username and Password not accepted",
                                 "e_message": "Invalid login: 535 5.7.8 Username and Password not accepted",
                                 "responseCode": 535}
    return obj


def _accounts(sim: VendorSimulator, req: SimRequest, key: str, error: ErrorFn) -> web.Response:
    try:
        limit = int(req.query.get("limit", str(_PAGE_MAX)))
        status = int(req.query["status"]) if "status" in req.query else None
    except ValueError:
        return error(400, "querystring/limit must be integer")
    if not 1 <= limit <= _PAGE_MAX:
        return error(400, f"querystring/limit must be >= 1 and <= {_PAGE_MAX}")
    workspace = sim.scope("instantly", key)
    listed = [a for a in _book(sim).accounts.values()
              if (a.owner is None or sim.scope("instantly", a.owner) == workspace)
              and (status is None or a.status == status)]
    start = 0
    cursor = req.query.get("starting_after")
    if cursor is not None:
        emails = [a.email for a in listed]
        if cursor not in emails:
            return error(400, "querystring/starting_after is not a valid cursor")
        start = emails.index(cursor) + 1
    page = listed[start:start + limit]
    body: dict[str, Any] = {"items": [_account(a, workspace) for a in page]}
    if len(page) == limit:
        body["next_starting_after"] = page[-1].email
    return web.json_response(body)
