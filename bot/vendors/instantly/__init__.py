"""Instantly (API v2): read, pause and activate with a Bearer key; analytics and account health polls;
webhooks; settings; simulator.

`client` (read, pause, activate, `campaign_metrics`, `mailbox_health`), `analytics` (the pure parsers of
the polled answers), `webhooks` (header-token check and normalizer), `sim` (the simulator's handlers).
This module is pure metadata: importing it imports no HTTP client.
"""

from __future__ import annotations

import re
from typing import Final

from bot.vendors.base import CampaignStatus
from bot.vendors.instantly import webhooks
from bot.vendors.spec import Setting, VendorSpec

__all__ = ["BASE_URL", "CAMPAIGN_ID", "SPEC", "STATUSES"]

#: docs/vendors.md §0, §4 [C]: paths under /api/v2, so the base URL ends there (as for Smartlead)
BASE_URL: Final = "https://api.instantly.ai/api/v2"
#: campaign ids are UUIDs
CAMPAIGN_ID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: Instantly's numeric statuses (written as decimal strings) → the common model (docs/vendors.md §4, §6).
#: 4 is "running subsequences": still sending. -1 accounts unhealthy, -2 bounce protect, -99 account
#: suspended: the vendor's own holds, never paused over and never activated by campaign-guard.
STATUSES: Final = {
    "0": CampaignStatus.DRAFT,
    "1": CampaignStatus.ACTIVE,
    "2": CampaignStatus.PAUSED,
    "3": CampaignStatus.COMPLETED,
    "4": CampaignStatus.ACTIVE,
    "-1": CampaignStatus.VENDOR_HELD,
    "-2": CampaignStatus.VENDOR_HELD,
    "-99": CampaignStatus.VENDOR_HELD,
}

SPEC: Final = VendorSpec(
    name="instantly",
    display_name="Instantly",
    campaign_id=CAMPAIGN_ID,
    statuses=STATUSES,
    base_url=BASE_URL,
    # per WORKSPACE, across keys and across v1/v2: both windows hold at once [C]
    rate_limits={"rate_limit": (100, 1.0), "minute_rate_limit": (6000, 60.0)},
    normalize=webhooks.normalize,
    authenticate=webhooks.authenticate,
    client="bot.vendors.instantly.client:make_client",
    simulator="bot.vendors.instantly.sim:SIM",
    webhook_secrets=("webhook_secret",),
    extra_settings={
        "webhook_secret": Setting(
            "secret", description=f"token Instantly sends in the {webhooks.TOKEN_HEADER} header of its webhooks"),
        # the polled reads (bot.vendors.instantly.analytics): documented paths [C], configurable all the same
        "analytics_path": Setting("text", "/campaigns/analytics",
                                  "campaign analytics overview (one row per campaign, lifetime totals)"),
        "daily_analytics_path": Setting("text", "/campaigns/analytics/daily",
                                        "daily campaign analytics (?campaign_id=): the first day with sends"),
        "accounts_path": Setting("text", "/accounts", "sending accounts list (cursor-paginated): mailbox health"),
        # [G] the daily series is asked from this day on (YYYY-MM-DD): before any campaign of the workspace
        "analytics_since": Setting("text", "2017-01-01", "first day asked of the daily campaign analytics"),
    },
)
