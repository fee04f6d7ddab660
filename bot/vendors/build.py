"""Clients from settings: one per registered vendor, each made by its package's factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import aiohttp

from bot.config import Settings
from bot.vendors.base import CampaignVendor
from bot.vendors.dryrun import DryRunVendor
from bot.vendors.http import RetryPolicy
from bot.vendors.spec import VendorConfig, VendorSpec, resolve

__all__ = ["ClientFactory", "build_vendors", "client_factory"]

#: What `VendorSpec.client` names: (shared session, the vendor's settings block, retry policy, timeout) → client.
ClientFactory = Callable[[aiohttp.ClientSession, VendorConfig, RetryPolicy, float], CampaignVendor]


def client_factory(spec: VendorSpec) -> ClientFactory:
    return cast(ClientFactory, resolve(spec.client))


def build_vendors(settings: Settings, session: aiohttp.ClientSession) -> dict[str, CampaignVendor]:
    """One client per vendor, sharing `session`; a `DryRunVendor` where there is no key or in dry-run."""
    retry = RetryPolicy(max_attempts=settings.vendor_max_attempts)
    vendors: dict[str, CampaignVendor] = {}
    for spec in settings.vendors():
        config = settings.vendor(spec.name)
        if settings.dry_run or config.api_key is None:
            vendors[spec.name] = DryRunVendor(spec.name, reason="dry_run" if settings.dry_run else "no_api_key")
        else:
            vendors[spec.name] = client_factory(spec)(session, config, retry, settings.vendor_timeout)
    return vendors
