"""Leadterra: pause and start with a Bearer key (no read endpoint), campaign stats polls, signed webhooks,
settings, simulator.

`client` (pause, start, `campaign_metrics` of the campaigns it is told to watch), `stats` (the stats
answer's pure parser), `webhooks` (signature check and normalizer), `sim` (the simulator's handlers).
This module is pure metadata: importing it imports no HTTP client.
"""

from __future__ import annotations

import re
from typing import Final

from bot.vendors.base import CampaignStatus
from bot.vendors.leadterra import webhooks
from bot.vendors.spec import Setting, VendorSpec

__all__ = ["BASE_URL", "CAMPAIGN_ID", "SPEC", "STATUSES"]

#: docs/vendors.md §0 [C]
BASE_URL: Final = "https://app.leadterra.co/v1"
CAMPAIGN_ID: Final = re.compile(r"camp_[A-Za-z0-9_-]{1,64}")
#: Leadterra's status words (lower-cased) → the common model
STATUSES: Final = {
    "draft": CampaignStatus.DRAFT,
    "running": CampaignStatus.ACTIVE,
    "paused": CampaignStatus.PAUSED,
}

SPEC: Final = VendorSpec(
    name="leadterra",
    display_name="Leadterra",
    campaign_id=CAMPAIGN_ID,
    statuses=STATUSES,
    base_url=BASE_URL,
    rate_limits={"rate_limit": (60, 60.0)},     # documents none; a cautious default
    normalize=webhooks.normalize,
    authenticate=webhooks.authenticate,
    client="bot.vendors.leadterra.client:make_client",
    simulator="bot.vendors.leadterra.sim:SIM",
    can_read_state=False,
    webhook_token=False,
    webhook_secrets=("webhook_secret",),
    extra_settings={
        "webhook_secret": Setting("secret", description="HMAC secret of X-Leadterra-Signature"),
        "stats_path": Setting("path", "/campaigns/{id}/stats", "campaign stats (polled campaign metrics) [C]"),
    },
)
