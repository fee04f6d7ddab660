"""The simulated Smartlead's analytics reads (docs/vendors.md §1.4), for the key's own campaigns only:

  GET /analytics/campaign/overall-stats?start_date=&end_date= (both required, YYYY-MM-DD, start not after
  end) [&campaign_ids=1,2][&limit= 1-100, default 100 [G]][&offset=]:
  `{"ok": true, "data": {"campaign_wise_performance": [{id, campaign_name, sent, opened, replied, bounced,
  open_rate, reply_rate, bounce_rate, positive_reply_rate, positive_replied, unique_lead_count,
  unique_open_count}]}}`, one entry per campaign the key sees (by id), counts as numbers and rates as
  PERCENT STRINGS ("1.6%", "9%"): opened, replied and bounced over sent, positive_replied over replied.
  Only activity between the dates counts: a campaign's activity is spread evenly over the days from its
  first send to today (`sim_data.first_day`, `sim.wall`), so a window that starts after the first send
  sees a share of it (rounded down) and one that covers the campaign's whole life sees all of it.
  `timezone`, `client_ids` and the full-data-set flag are accepted and ignored.
  GET /campaigns/{id}/statistics[?offset=&limit= (1-1000, default 100 [G])&email_sequence_number= (1-20)
  &email_status=opened|clicked|replied|unsubscribed|bounced]: the documented example's shape,
  `{"ok": true, "data": [{campaign_id, sequence_number, sent, opened, clicked, replied, unsubscribed,
  bounced}], "offset", "limit"}`, one row per sequence step with counts; `email_status` and the sent-time
  dates are validated as given and do not filter (the per-lead variant [3P] is not served).
The counts are set with `bot.vendors.smartlead.sim_data.set_campaign_stats`.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.vendors.smartlead.sim_data import COUNTS, CampaignStats, StepCounts, campaign_stats, first_day
from bot.vendors.smartlead.sim_query import BadQuery, error, query_date, query_int

if TYPE_CHECKING:
    from bot.testing.sim_core import SimCampaign
    from bot.testing.sim_spec import SimRequest
    from bot.testing.simulator import VendorSimulator

__all__ = ["percent", "route"]

_OVERALL: Final = re.compile(r"/analytics/campaign/overall-stats/?")
_STATISTICS: Final = re.compile(r"/campaigns/([^/]+)/statistics/?")
_EMAIL_STATUSES: Final = ("opened", "clicked", "replied", "unsubscribed", "bounced")


def percent(part: int, whole: int) -> str:
    """`part` of `whole` as Smartlead writes rates: "1.6%", "9%", "0%" (two decimals at most)."""
    value = round(part * 100 / whole, 2) if whole else 0.0
    return f"{value:.2f}".rstrip("0").rstrip(".") + "%"


def _share(stats: CampaignStats, start: date, end: date, today: date) -> tuple[int, int]:
    """(days of the campaign's activity inside [start, end], days it has been active)."""
    first = first_day(stats)
    last = max(first, today)
    inside = (min(end, last) - max(start, first)).days + 1
    return max(0, inside), (last - first).days + 1


def _performance(c: SimCampaign, stats: CampaignStats | None, share: tuple[int, int]) -> dict[str, Any]:
    inside, lifetime = share

    def part(count: int) -> int:
        return count if inside >= lifetime else count * inside // lifetime

    total = stats.total() if stats is not None else StepCounts()
    sent, opened, replied, bounced = (part(total.sent), part(total.opened), part(total.replied),
                                      part(total.bounced))
    positive = part(stats.positive_replied) if stats is not None else 0
    leads = stats.unique_leads if stats is not None and stats.unique_leads is not None else c.leads
    opens = stats.unique_opens if stats is not None and stats.unique_opens is not None else total.opened
    return {"id": int(c.id), "campaign_name": c.name, "sent": sent, "opened": opened, "replied": replied,
            "bounced": bounced, "open_rate": percent(opened, sent), "reply_rate": percent(replied, sent),
            "bounce_rate": percent(bounced, sent), "positive_reply_rate": percent(positive, replied),
            "positive_replied": positive, "unique_lead_count": leads, "unique_open_count": part(opens)}


def _campaign_ids(raw: str | None) -> set[str] | None:
    if raw is None:
        return None
    ids = {part.strip() for part in raw.split(",") if part.strip()}
    if not all(part.isdigit() for part in ids):
        raise BadQuery("campaign_ids must be comma-separated campaign ids")
    return {str(int(part)) for part in ids}


def _overall(sim: VendorSimulator, req: SimRequest, key: str) -> web.Response:
    start, end = query_date(req.query, "start_date"), query_date(req.query, "end_date")
    if start > end:
        raise BadQuery("start_date must not be after end_date")
    wanted = _campaign_ids(req.query.get("campaign_ids"))
    offset = query_int(req.query, "offset", 0, 0)
    limit = query_int(req.query, "limit", 100, 1, 100)
    today = sim.wall().date()
    rows = []
    for c in sorted(sim.visible_campaigns("smartlead", key), key=lambda c: int(c.id)):
        if wanted is not None and c.id not in wanted:
            continue
        stats = campaign_stats(sim, c)
        share = _share(stats, start, end, today) if stats is not None else (1, 1)
        rows.append(_performance(c, stats, share))
    return web.json_response({"ok": True, "data": {"campaign_wise_performance": rows[offset:offset + limit]}})


def _statistics(sim: VendorSimulator, req: SimRequest, key: str, campaign_id: str) -> web.Response:
    c = sim.visible(f"smartlead:{campaign_id}", key)
    if c is None:
        return error(404, "NOT_FOUND", "Campaign not found")
    offset = query_int(req.query, "offset", 0, 0)
    limit = query_int(req.query, "limit", 100, 1, 1000)
    sequence = query_int(req.query, "email_sequence_number", 0, 1, 20) or None
    if req.query.get("email_status", "opened") not in _EMAIL_STATUSES:
        raise BadQuery(f"email_status must be one of {', '.join(_EMAIL_STATUSES)}")
    for name in ("sent_time_start_date", "sent_time_end_date"):
        if name in req.query:
            query_date(req.query, name)
    stats = campaign_stats(sim, c)
    steps = sorted(stats.steps.items()) if stats is not None else []
    rows = [{"campaign_id": int(c.id), "sequence_number": number, **{n: asdict(counts)[n] for n in COUNTS}}
            for number, counts in steps if sequence is None or number == sequence]
    return web.json_response({"ok": True, "data": rows[offset:offset + limit], "offset": offset, "limit": limit})


def route(sim: VendorSimulator, req: SimRequest, key: str) -> web.Response | None:
    """The answer to an analytics read of an authenticated, admitted request; None: not such a read."""
    if req.method != "GET":
        return None
    try:
        if _OVERALL.fullmatch(req.path):
            return _overall(sim, req, key)
        if m := _STATISTICS.fullmatch(req.path):
            return _statistics(sim, req, key, m[1])
    except BadQuery as exc:
        return error(400, "VALIDATION_ERROR", str(exc))
    return None
