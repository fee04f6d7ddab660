"""Leadterra's campaign stats answer → `CampaignMetrics` (a pure function).

`GET /v1/campaigns/:id/stats` [C] (docs/vendors.md §2.4, https://docs.leadterra.co/api-reference/campaigns-stats):
`{campaignId, totalEnrolled, sent, delivered, bounced, replied, queued, openRate, replyRate}`. `sent`
counts emails submitted for delivery (whatever came of them), `bounced` hard and soft bounces, `replied`
LEADS who replied at least once; `replyRate` is replied / DELIVERED and `openRate` unique opens /
delivered, both fractions 0-1. There is no open count (only its rate: an opened count is never derived
from it), no unsubscribe count, no bounce rate (the rules compute one from the counts) and no start time.
A flat object [C]; `{"data": {...}}` is read too [G]. Counts and rates are read by `bot.vendors.numbers`
(`count`; `fraction`, where a bare number is a fraction and `"8%"` a percent).
"""

from __future__ import annotations

from typing import Any

from bot.vendors.base import CampaignMetrics
from bot.vendors.numbers import count, fraction

__all__ = ["count", "fraction", "parse_stats"]


def parse_stats(body: Any, campaign_id: str) -> CampaignMetrics | None:
    """The campaign's numbers; None when the answer is not an object or names another campaign (its
    `campaignId`), so that no campaign is given another's numbers."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    if not isinstance(body, dict):
        return None
    named = body.get("campaignId")
    if named is not None and str(named).strip() != campaign_id:
        return None
    return CampaignMetrics(campaign_id=campaign_id, sent=count(body.get("sent")),
                           bounced=count(body.get("bounced")), replied=count(body.get("replied")),
                           reply_rate=fraction(body.get("replyRate")))
