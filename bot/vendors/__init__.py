"""Vendor clients behind one protocol, and `build_vendors()` that makes them from settings."""

from __future__ import annotations

import aiohttp

from bot.config import Settings
from bot.log import register_secret
from bot.vendors.base import CampaignStatus, CampaignVendor, Guard, InventorySource, Observation, WriteResult
from bot.vendors.dryrun import DryRunVendor
from bot.vendors.http import RetryPolicy, VendorRefused
from bot.vendors.inbox import InboxClient
from bot.vendors.leadterra import LeadterraClient
from bot.vendors.ratelimit import SlidingWindowLimiter
from bot.vendors.smartlead import SmartleadClient

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
    "register_vendor_secrets",
]


def register_vendor_secrets(settings: Settings) -> None:
    """Tell the log scrubber every configured vendor key, so none can ever be printed."""
    for vendor in ("smartlead", "leadterra", "inbox"):
        key = settings.api_key(vendor)
        if key is not None:
            register_secret(key.get_secret_value())


def build_vendors(settings: Settings, session: aiohttp.ClientSession) -> dict[str, CampaignVendor]:
    """One client per vendor, sharing `session`; a `DryRunVendor` where there is no key or in dry-run."""
    retry = RetryPolicy(max_attempts=settings.vendor_max_attempts)
    timeout = settings.vendor_timeout
    vendors: dict[str, CampaignVendor] = {}
    for name in ("smartlead", "leadterra", "inbox"):
        key = settings.api_key(name)
        if settings.dry_run or key is None:
            vendors[name] = DryRunVendor(name, reason="dry_run" if settings.dry_run else "no_api_key")
        elif name == "smartlead":
            vendors[name] = SmartleadClient(session, api_key=key, base_url=settings.base_url(name),
                                            rate_limit=settings.rate_limit("smartlead"), retry=retry, timeout=timeout)
        elif name == "leadterra":
            vendors[name] = LeadterraClient(session, api_key=key, base_url=settings.base_url(name),
                                            rate_limit=settings.rate_limit("leadterra"), retry=retry, timeout=timeout)
        else:
            vendors[name] = InboxClient(
                session, api_key=key, base_url=settings.base_url(name),
                read_rate_limit=settings.rate_limit("inbox_read"), write_rate_limit=settings.rate_limit("inbox_write"),
                pause_path=settings.inbox_pause_path, resume_path=settings.inbox_resume_path,
                state_path=settings.inbox_state_path, retry=retry, timeout=timeout,
            )
    return vendors
