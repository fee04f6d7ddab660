"""Leadterra's campaign stats answer → `CampaignMetrics` (a pure function).

`GET /v1/campaigns/:id/stats` [C] (docs/vendors.md §2.4, https://docs.leadterra.co/api-reference/campaigns-stats):
`{campaignId, totalEnrolled, sent, delivered, bounced, replied, queued, openRate, replyRate}`. `sent`
counts emails submitted for delivery (whatever came of them), `bounced` hard and soft bounces, `replied`
LEADS who replied at least once; `replyRate` is replied / DELIVERED and `openRate` unique opens /
delivered, both fractions 0-1. There is no open count (only its rate: an opened count is never derived
from it), no unsubscribe count, no bounce rate (the rules compute one from the counts) and no start time.
A flat object [C]; `{"data": {...}}` is read too [G].
"""

from __future__ import annotations

import math
from typing import Any

from bot.vendors.base import CampaignMetrics

__all__ = ["count", "fraction", "parse_stats"]


def count(value: Any) -> int | None:
    """A count from a number or a numeric string (`12`, `"12"`, `12.0`); None for null, booleans, negative or
    fractional numbers and anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    return None


def fraction(value: Any) -> float | None:
    """A 0-1 rate from a number or a numeric string (`0.08`, `"0.08"`), or a percent string (`"8%"` → 0.08);
    None outside 0-1 or when not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            value = float(text.removesuffix("%").strip())
        except ValueError:
            return None
        if percent:
            value /= 100
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1:
        return float(value)
    return None


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
