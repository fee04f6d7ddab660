"""lemlist: read, pause and start a campaign with HTTP Basic auth (empty user, the key as password), its
webhooks, settings and simulator.

`client` (read, pause, start, `campaign_metrics`), `stats` (the campaign list's and stats' pure parsers),
`webhooks` (token check and normalizer), `sim` (the simulator's handlers). This module is pure metadata:
importing it imports no HTTP client. Facts: docs/vendors.md §5 ([C] confirmed, [G] guessed).
"""

from __future__ import annotations

import re
from typing import Final

from bot.vendors.base import CampaignStatus
from bot.vendors.lemlist import webhooks
from bot.vendors.spec import Setting, VendorSpec

__all__ = ["BASE_URL", "CAMPAIGN_ID", "SPEC", "STATUSES"]

#: docs/vendors.md §0 [C]
BASE_URL: Final = "https://api.lemlist.com/api"
#: `cam_` and lemlist's random part (17 alphanumerics in every example; a little leeway)
CAMPAIGN_ID: Final = re.compile(r"cam_[A-Za-z0-9]{1,64}")
#: lemlist's `status` words (lower-cased) → the common model (docs/vendors.md §5, §6). `ended` → completed
#: and `errors` → a vendor hold are [G]: campaign-guard never pauses over `errors` nor resumes it.
STATUSES: Final = {
    "draft": CampaignStatus.DRAFT,
    "running": CampaignStatus.ACTIVE,
    "paused": CampaignStatus.PAUSED,
    "ended": CampaignStatus.COMPLETED,
    "archived": CampaignStatus.ARCHIVED,
    "errors": CampaignStatus.VENDOR_HELD,
}

SPEC: Final = VendorSpec(
    name="lemlist",
    display_name="lemlist",
    campaign_id=CAMPAIGN_ID,
    statuses=STATUSES,
    base_url=BASE_URL,
    rate_limits={"rate_limit": (20, 2.0)},      # "20 requests per 2 seconds", per API key [C]
    normalize=webhooks.normalize,
    authenticate=webhooks.authenticate,
    client="bot.vendors.lemlist.client:make_client",
    simulator="bot.vendors.lemlist.sim:SIM",
    webhook_secrets=("webhook_secret",),
    extra_settings={
        "webhook_secret": Setting("secret", description=f"token of /webhooks/lemlist, in "
                                                        f"{webhooks.TOKEN_HEADER} or ?token="),
        # polled campaign metrics (bot.vendors.lemlist.stats): the paths are documented, the stats fields [3P]
        "campaigns_path": Setting("text", "/campaigns", "campaign list (?version=v2, offset-paginated)"),
        "stats_path": Setting("path", "/v2/campaigns/{id}/stats", "campaign stats (lifetime numbers)"),
    },
)
