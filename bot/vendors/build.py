"""Clients from settings: one per account of each registered vendor, each made by its package's factory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import cast

import aiohttp

from bot.accounts import Accounts, load_accounts
from bot.config import Settings
from bot.vendors import registry
from bot.vendors.base import CampaignVendor
from bot.vendors.dryrun import DryRunVendor
from bot.vendors.http import RetryPolicy
from bot.vendors.spec import VendorConfig, VendorSpec, resolve

__all__ = ["ClientFactory", "build_vendors", "client_factory", "dry_routes"]

#: What `VendorSpec.client` names: (shared session, the vendor's settings block, retry policy, timeout) → client.
ClientFactory = Callable[[aiohttp.ClientSession, VendorConfig, RetryPolicy, float], CampaignVendor]


def client_factory(spec: VendorSpec) -> ClientFactory:
    return cast(ClientFactory, resolve(spec.client))


def build_vendors(settings: Settings, session: aiohttp.ClientSession,
                  accounts: Accounts | None = None) -> dict[str, CampaignVendor]:
    """One client per account, by route (`smartlead`, `smartlead@acme`), sharing `session`; a `DryRunVendor`
    where the account has no key or in dry-run. `accounts`: those the settings configure by default."""
    retry = RetryPolicy(max_attempts=settings.vendor_max_attempts)
    vendors: dict[str, CampaignVendor] = {}
    for account in accounts if accounts is not None else load_accounts(settings):
        spec = registry.get(account.vendor)
        assert spec is not None
        if settings.dry_run or account.config.api_key is None:
            vendors[account.route] = DryRunVendor(account.vendor, reason="dry_run" if settings.dry_run else "no_api_key")
        else:
            config = replace(account.config, budget=account.budget)
            vendors[account.route] = client_factory(spec)(session, config, retry, settings.vendor_timeout)
    return vendors


def dry_routes(vendors: Mapping[str, CampaignVendor]) -> frozenset[str]:
    """The routes `build_vendors` made a `DryRunVendor` for."""
    return frozenset(route for route, vendor in vendors.items() if isinstance(vendor, DryRunVendor))
