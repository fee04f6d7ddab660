"""DryRunVendor, and build_vendors() choosing real or dry-run clients from settings."""

from __future__ import annotations

from typing import Any

import aiohttp
import structlog

from bot.config import Settings
from bot.log import register_secret, scrub
from bot.testing import VendorSimulator
from bot.vendors import (
    DryRunVendor,
    InboxClient,
    LeadterraClient,
    SmartleadClient,
    build_vendors,
)
from bot.vendors.base import CampaignStatus, Observation, WriteResult


async def test_dry_run_answers_without_calling() -> None:
    vendor = DryRunVendor("smartlead")
    with structlog.testing.capture_logs() as logs:
        assert await vendor.pause("123") == WriteResult(CampaignStatus.PAUSED, sent=False, proven=False,
                                                        detail="dry run")
        assert await vendor.resume("123", guard=None) == WriteResult(CampaignStatus.ACTIVE, sent=False,
                                                                     proven=False, detail="dry run")
        assert await vendor.state("123") is CampaignStatus.UNKNOWN
    assert vendor.can_read_state is False
    assert await vendor.observe("123", background=True) == Observation(CampaignStatus.UNKNOWN)
    assert [(e["event"], e["action"], e["vendor"]) for e in logs] == [
        ("vendor.dry_run", "pause", "smartlead"), ("vendor.dry_run", "resume", "smartlead"),
        ("vendor.dry_run", "state", "smartlead"),
    ]


def _settings(sim_base: Any = None, **overrides: Any) -> Settings:
    urls = {} if sim_base is None else {f"{v}_base_url": sim_base(v) for v in ("smartlead", "leadterra", "inbox")}
    return Settings(**urls, **overrides)  # type: ignore[arg-type]


async def test_vendors_without_keys_are_dry_run(session: aiohttp.ClientSession) -> None:
    vendors = build_vendors(_settings(smartlead_api_key="k1-smartlead"), session)
    assert isinstance(vendors["smartlead"], SmartleadClient)
    assert isinstance(vendors["leadterra"], DryRunVendor) and vendors["leadterra"].reason == "no_api_key"
    assert isinstance(vendors["inbox"], DryRunVendor)


async def test_dry_run_setting_wins_over_keys(session: aiohttp.ClientSession) -> None:
    settings = _settings(dry_run=True, smartlead_api_key="a1234", leadterra_api_key="b1234", inbox_api_key="c1234")
    vendors = build_vendors(settings, session)
    assert all(isinstance(v, DryRunVendor) and v.reason == "dry_run" for v in vendors.values())


async def test_built_clients_talk_to_the_configured_base_urls(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Any
) -> None:
    settings = _settings(
        base, smartlead_api_key="sim-smartlead-key", leadterra_api_key="sk_live_sim_leadterra",
        inbox_api_key="sim-inbox-token", inbox_pause_path="/campaigns/{id}/pause",
    )
    vendors = build_vendors(settings, session)
    assert isinstance(vendors["leadterra"], LeadterraClient) and isinstance(vendors["inbox"], InboxClient)
    for ref in ("smartlead:1", "leadterra:camp_1", "inbox:abc"):
        sim.add_campaign(ref, "active")
    for vendor, cid in (("smartlead", "1"), ("leadterra", "camp_1"), ("inbox", "abc")):
        result = await vendors[vendor].pause(cid)
        assert (result.status, result.sent, result.proven) == (CampaignStatus.PAUSED, True, True)
    assert [(c.vendor, c.method, c.path) for c in sim.calls_for(method="POST")] == [
        ("smartlead", "POST", "/campaigns/1/status"), ("leadterra", "POST", "/campaigns/camp_1/pause"),
        ("inbox", "POST", "/campaigns/abc/pause"),
    ]


def test_vendor_keys_are_registered_for_scrubbing() -> None:
    settings = _settings(smartlead_api_key="zz-smartlead-secret-1", inbox_api_key="zz-inbox-secret-2")
    register_secret(*settings.secrets())      # each vendor names its own (VendorSpec.secrets)
    assert scrub("key zz-smartlead-secret-1 and zz-inbox-secret-2") == "key *** and ***"
