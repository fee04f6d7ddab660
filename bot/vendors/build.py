"""Clients from settings: one per account of each registered vendor, each made by its package's factory.

A fleet (PostgreSQL state) passes the rate budgets all its processes share (`budgets`, a
`bot.vendors.budget.SharedBudget`): each client's limiter then counts the fleet's requests per account (per
workspace: Instantly), not this process's alone. A lone worker (SQLite) passes none: its own limiters are the
whole count, and the factories are called as they always were."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol, cast

import aiohttp

from bot.accounts import Accounts, load_accounts
from bot.config import Settings
from bot.vendors import registry
from bot.vendors.base import CampaignVendor
from bot.vendors.budget import DEFAULT_BACKGROUND_SHARE, MakeLimiter, SharedBudget, SharedLimiters
from bot.vendors.dryrun import DryRunVendor
from bot.vendors.http import RetryPolicy
from bot.vendors.spec import VendorConfig, VendorSpec, resolve

__all__ = ["ClientFactory", "build_vendors", "client_factory", "dry_routes"]

class ClientFactory(Protocol):
    """What `VendorSpec.client` names: (shared session, the vendor's settings block, retry policy, timeout) →
    client; `limiters` (given only when the fleet shares budgets): what makes the client's limiters."""

    def __call__(self, session: aiohttp.ClientSession, config: VendorConfig, retry: RetryPolicy, timeout: float,
                 /, *, limiters: MakeLimiter | None = None) -> CampaignVendor: ...


def client_factory(spec: VendorSpec) -> ClientFactory:
    return cast(ClientFactory, resolve(spec.client))


def build_vendors(settings: Settings, session: aiohttp.ClientSession, accounts: Accounts | None = None, *,
                  budgets: SharedBudget | None = None,
                  background_share: float = DEFAULT_BACKGROUND_SHARE) -> dict[str, CampaignVendor]:
    """One client per account, by route (`smartlead`, `smartlead@acme`), sharing `session`; a `DryRunVendor`
    where the account has no key or in dry-run. `accounts`: those the settings configure by default.
    `budgets`: the fleet's shared rate budgets, one per `Account.budget` (background requests taking at most
    `background_share` of each window); None: each client's own limiters."""
    retry = RetryPolicy(max_attempts=settings.vendor_max_attempts)
    shared = {} if budgets is None else {"limiters": SharedLimiters(budgets, background_share=background_share)}
    vendors: dict[str, CampaignVendor] = {}
    for account in accounts if accounts is not None else load_accounts(settings):
        spec = registry.get(account.vendor)
        assert spec is not None
        if settings.dry_run or account.config.api_key is None:
            vendors[account.route] = DryRunVendor(account.vendor, reason="dry_run" if settings.dry_run else "no_api_key")
        else:
            config = replace(account.config, budget=account.budget)
            vendors[account.route] = client_factory(spec)(session, config, retry, settings.vendor_timeout, **shared)
    return vendors


def dry_routes(vendors: Mapping[str, CampaignVendor]) -> frozenset[str]:
    """The routes `build_vendors` made a `DryRunVendor` for."""
    return frozenset(route for route, vendor in vendors.items() if isinstance(vendor, DryRunVendor))
