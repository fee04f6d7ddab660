"""Inbox (inboxapp.com): read, disable and enable with a Bearer token; webhooks; settings; simulator.

`client`, `webhooks` (token check and normalizer), `sim` (the simulator's handlers). This module is
pure metadata: importing it imports no HTTP client.
"""

from __future__ import annotations

import re
from typing import Final

from bot.vendors.base import CampaignStatus
from bot.vendors.inbox import webhooks
from bot.vendors.spec import Setting, VendorSpec

__all__ = ["BASE_URL", "CAMPAIGN_ID", "SPEC", "STATUSES"]

#: docs/vendors.md §0 [C]
BASE_URL: Final = "https://inboxapp.com/api/v1"
CAMPAIGN_ID: Final = re.compile(r"[0-9a-z]{1,64}")
#: Inbox's status words (lower-cased) → the common model
STATUSES: Final = {
    "draft": CampaignStatus.DRAFT,
    "active": CampaignStatus.ACTIVE,
    "paused": CampaignStatus.PAUSED,
    "completed": CampaignStatus.COMPLETED,
}

SPEC: Final = VendorSpec(
    name="inbox",
    display_name="Inbox",
    campaign_id=CAMPAIGN_ID,
    statuses=STATUSES,
    base_url=BASE_URL,
    # per token: 100 reads and 30 writes per minute
    rate_limits={"read_rate_limit": (100, 60.0), "write_rate_limit": (30, 60.0)},
    normalize=webhooks.normalize,
    authenticate=webhooks.authenticate,
    client="bot.vendors.inbox.client:make_client",
    simulator="bot.vendors.inbox.sim:SIM",
    extra_settings={
        # the disable path is a guess [G]: all three come from settings
        "pause_path": Setting("path", "/campaigns/v2/{id}/disable"),
        "resume_path": Setting("path", "/campaigns/v2/{id}/enable"),
        "state_path": Setting("path", "/campaigns/{id}"),
    },
)
