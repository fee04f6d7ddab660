"""lemlist's campaign list and campaign stats answers, parsed (pure functions).

* `GET /campaigns?version=v2&limit=&offset=` [C: "paginated", "set version=v2" (developer.lemlist.com
  get-many-campaigns); `offset`/`limit`, 100 per page at most, from lemlist's own legacy docs]. With
  `version=v2` the answer is `{"campaigns": [...], "pagination": {...}}` [3P: several public clients read
  it so; the pagination fields `totalRecords`, `currentPage`, `nextPage`, `totalPage` are G], without it a
  bare array [C, legacy]; both are read. Each campaign: `_id`, `name`, `status` (running, paused, draft,
  ended, archived, errors) [C].
* `GET /v2/campaigns/{campaignId}/stats` [C: the path, "starts with /v2/"; `startDate`/`endDate`
  optional: without them lifetime numbers, G]. Fields [3P, the same in several public clients]:
  `nbLeads`, `nbLeadsLaunched`, `nbLeadsReached`, `nbLeadsOpened`, `nbLeadsAnswered`, `nbLeadsUnsubscribed`,
  `messagesSent`, `messagesNotSent`, `messagesBounced`, `delivered`, `opened`, `clicked`, `replied`,
  `meetingBooked`, `steps[]`. Taken: sent = `messagesSent`, bounced = `messagesBounced`, replied =
  `replied`, opened = `opened`, unsubscribed = `nbLeadsUnsubscribed`. The legacy `GET /campaigns/{id}/stats`
  (`sentCount`, `openedCount`, `repliedCount`, no bounces) is read too, should `stats_path` point at it.
  lemlist gives no rates and no start time here: None.

Counts are never invented: absent, null, negative, fractional or non-numeric values are None
(`bot.vendors.numbers.count`).
"""

from __future__ import annotations

from typing import Any, Final

from bot.vendors.base import CampaignMetrics
from bot.vendors.lemlist import CAMPAIGN_ID
from bot.vendors.numbers import count

__all__ = ["CampaignPage", "count", "parse_campaign_page", "parse_stats"]

#: CampaignMetrics field → the stats field, v2 first, then the legacy v1 one
_FIELDS: Final = {
    "sent": ("messagesSent", "sentCount"),
    "bounced": ("messagesBounced",),
    "replied": ("replied", "repliedCount"),
    "opened": ("opened", "openedCount"),
    "unsubscribed": ("nbLeadsUnsubscribed",),
}


def _stats_object(body: Any, campaign_id: str) -> dict[str, Any] | None:
    """The stats object: flat, in `data`, or the entry of `results` for this campaign (or its only one)."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        return body["data"]  # type: ignore[no-any-return]
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        entries = [e for e in body["results"] if isinstance(e, dict)]
        mine = [e for e in entries if e.get("campaignId") == campaign_id]
        return mine[0] if mine else entries[0] if len(entries) == 1 else None
    return body if isinstance(body, dict) else None


def parse_stats(body: Any, campaign_id: str) -> CampaignMetrics | None:
    """The campaign's numbers; None when the answer holds no stats object or names another campaign."""
    stats = _stats_object(body, campaign_id)
    if stats is None:
        return None
    named = stats.get("campaignId")
    if named is not None and str(named).strip() != campaign_id:
        return None
    counts = {name: next((n for key in keys if (n := count(stats.get(key))) is not None), None)
              for name, keys in _FIELDS.items()}
    return CampaignMetrics(campaign_id=campaign_id, sent=counts["sent"], bounced=counts["bounced"],
                           replied=counts["replied"], opened=counts["opened"], unsubscribed=counts["unsubscribed"])


class CampaignPage:
    """One page of the campaign list: `campaigns` (id, raw status or None) with valid lemlist ids, `size`
    (how many items the page held, valid or not), `has_more` (what the pagination object says; None when
    it says nothing)."""

    __slots__ = ("campaigns", "has_more", "size")

    def __init__(self, campaigns: list[tuple[str, str | None]], size: int, has_more: bool | None) -> None:
        self.campaigns = campaigns
        self.size = size
        self.has_more = has_more


def _has_more(pagination: Any) -> bool | None:
    if not isinstance(pagination, dict):
        return None
    if "nextPage" in pagination:
        following = pagination["nextPage"]
        return following is not None and following is not False and following != ""
    current, total = count(pagination.get("currentPage")), count(pagination.get("totalPage"))
    return current < total if current is not None and total is not None else None


def parse_campaign_page(body: Any) -> CampaignPage:
    """A `GET /campaigns` page: the v2 `{"campaigns": [...], "pagination"}`, `{"data": [...]}` or a bare array."""
    items: Any = body
    has_more = None
    if isinstance(body, dict):
        items = body.get("campaigns", body.get("data"))
        has_more = _has_more(body.get("pagination"))
    rows = [row for row in items if isinstance(row, dict)] if isinstance(items, list) else []
    campaigns: list[tuple[str, str | None]] = []
    for row in rows:
        campaign_id = row.get("_id", row.get("id"))
        if isinstance(campaign_id, str) and CAMPAIGN_ID.fullmatch(campaign_id.strip()):
            status = row.get("status")
            campaigns.append((campaign_id.strip(), status.strip().lower() if isinstance(status, str) else None))
    return CampaignPage(campaigns, len(rows) if isinstance(items, list) else 0, has_more)
