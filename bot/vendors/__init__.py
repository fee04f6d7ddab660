"""Vendors: one package each (`bot/vendors/<name>/`), listed in `bot.vendors.registry`.

Shared machinery: `base` (the protocol and the common status model), `http` (requests, retries,
typed errors), `ratelimit`, `guarded` (read-then-write with evidence), `dryrun`, `build` (clients
from settings). This package module imports nothing itself, so that reading the registry (the web
edge, `bot.config`, `bot.events`) never pulls in an HTTP client; the names below are imported on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

__all__ = [
    "CampaignStatus",
    "CampaignVendor",
    "DryRunVendor",
    "Guard",
    "InboxClient",
    "InventorySource",
    "LeadterraClient",
    "Observation",
    "RetryPolicy",
    "SlidingWindowLimiter",
    "SmartleadClient",
    "VendorRefused",
    "WriteResult",
    "build_vendors",
]

_WHERE: Final = {
    "CampaignStatus": "bot.vendors.base", "CampaignVendor": "bot.vendors.base", "Guard": "bot.vendors.base",
    "InventorySource": "bot.vendors.base", "Observation": "bot.vendors.base", "WriteResult": "bot.vendors.base",
    "DryRunVendor": "bot.vendors.dryrun", "RetryPolicy": "bot.vendors.http", "VendorRefused": "bot.vendors.http",
    "SlidingWindowLimiter": "bot.vendors.ratelimit", "build_vendors": "bot.vendors.build",
    "SmartleadClient": "bot.vendors.smartlead.client", "LeadterraClient": "bot.vendors.leadterra.client",
    "InboxClient": "bot.vendors.inbox.client",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bot.vendors' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
