"""Smartlead: the v1 campaign API (key in the query string), its webhooks, settings and simulator.

`client` (read, pause, resume, inventory, campaign metrics and mailbox health polls), `analytics` (the
polls' pure parsers, docs/vendors.md §1.4, §1.5), `webhooks` (authentication and normalizer), `sim` (the
simulator's handlers, with `sim_analytics`, `sim_mailboxes`, their data `sim_data` and its control routes
`sim_control`). This module is pure metadata: importing it imports no HTTP client.
"""

from __future__ import annotations

import re
from typing import Final

from bot.vendors.base import CampaignStatus
from bot.vendors.smartlead import webhooks
from bot.vendors.spec import Setting, VendorSpec

__all__ = ["BASE_URL", "CAMPAIGN_ID", "SPEC", "STATUSES"]

#: docs/vendors.md §0 [C]
BASE_URL: Final = "https://server.smartlead.ai/api/v1"
CAMPAIGN_ID: Final = re.compile(r"[1-9][0-9]{0,17}")
#: Smartlead's status words (upper-cased) → the common model
STATUSES: Final = {
    "DRAFTED": CampaignStatus.DRAFT,
    "ACTIVE": CampaignStatus.ACTIVE,
    "PAUSED": CampaignStatus.PAUSED,
    "STOPPED": CampaignStatus.STOPPED,
    "COMPLETED": CampaignStatus.COMPLETED,
    "ARCHIVED": CampaignStatus.ARCHIVED,
}

SPEC: Final = VendorSpec(
    name="smartlead",
    display_name="Smartlead",
    campaign_id=CAMPAIGN_ID,
    statuses=STATUSES,
    base_url=BASE_URL,
    rate_limits={"rate_limit": (10, 2.0)},      # "10 requests every 2 seconds", per key
    normalize=webhooks.normalize,
    authenticate=webhooks.authenticate,
    client="bot.vendors.smartlead.client:make_client",
    simulator="bot.vendors.smartlead.sim:SIM",
    webhook_secrets=("webhook_secret",),
    extra_settings={"webhook_secret": Setting("secret", description="HMAC secret of X-Smartlead-Signature "
                                                                     "and the legacy body secret_key")},
)
