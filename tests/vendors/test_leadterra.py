"""LeadterraClient against the vendor simulator: pause/start semantics, no read endpoint, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import structlog

from bot.errors import VendorAuthError, VendorError, VendorNotFound, VendorRejected, VendorUnavailable
from bot.testing import VendorSimulator, max_in_window
from bot.vendors import LeadterraClient, RetryPolicy, VendorRefused
from bot.vendors.base import CampaignStatus
from bot.vendors.http import error_detail
from bot.vendors.leadterra import parse_status
from tests.vendors.conftest import FAST_RETRY, assert_secret_absent

REF = "leadterra:camp_123"


async def test_state_is_unknown_without_a_call(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    assert leadterra.can_read_state is False
    assert await leadterra.state("camp_123") is CampaignStatus.UNKNOWN
    assert sim.calls == []


async def test_pause_posts_without_body(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    assert await leadterra.pause("camp_123") is CampaignStatus.PAUSED
    [call] = sim.calls
    assert (call.method, call.path, call.body, call.status) == ("POST", "/campaigns/camp_123/pause", None, 200)
    assert sim.status_of(REF) == "paused"


async def test_repeated_pause_is_a_vendor_no_op(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    await leadterra.pause("camp_123")
    paused_at = sim.campaign(REF).paused_at
    # No read endpoint, so the client cannot skip the call; the vendor documents it as a no-op.
    assert await leadterra.pause("camp_123") is CampaignStatus.PAUSED
    assert sim.campaign(REF).paused_at == paused_at
    assert sim.status_of(REF) == "paused"


async def test_pause_on_draft_leaves_it_a_draft(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "draft")
    assert await leadterra.pause("camp_123") is CampaignStatus.DRAFT
    assert sim.status_of(REF) == "draft"


async def test_resume_starts_a_paused_campaign_once(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "paused")
    assert await leadterra.resume("camp_123") is CampaignStatus.ACTIVE
    assert await leadterra.resume("camp_123") is CampaignStatus.ACTIVE    # running: documented no-op
    assert sim.status_of(REF) == "running"
    assert [c.path for c in sim.calls] == ["/campaigns/camp_123/start"] * 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [({"id": "camp_1", "status": "paused", "pausedAt": "x"}, CampaignStatus.PAUSED),
     ({"status": "running"}, CampaignStatus.ACTIVE), ({"status": "draft"}, CampaignStatus.DRAFT),
     ({"status": "archived"}, CampaignStatus.UNKNOWN), ({}, CampaignStatus.PAUSED)],
)
def test_answer_statuses(body: Any, expected: CampaignStatus) -> None:
    assert parse_status(body, "camp_1", CampaignStatus.PAUSED) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [({"error": {"code": "no_leads_enrolled", "message": "No leads"}}, "no_leads_enrolled: No leads"),
     ({"code": "campaign_not_found", "message": "Nope"}, "campaign_not_found: Nope"),
     ({"error": "authentication_failed"}, "authentication_failed"),
     ("<html>Bad   gateway</html>", "<html>Bad gateway</html>")],
)
def test_error_codes_are_read_from_every_shape(body: Any, expected: str) -> None:
    text = body if isinstance(body, str) else ""
    assert error_detail(body if not isinstance(body, str) else {}, text) == expected


async def test_no_leads_is_rejected_with_its_code(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "paused", leads=0)
    with pytest.raises(VendorRejected) as caught:
        await leadterra.resume("camp_123")
    assert caught.value.status == 400
    assert caught.value.detail.startswith("no_leads_enrolled")
    assert len(sim.calls) == 1


async def test_no_sequence_steps_is_rejected(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "draft", sequence_steps=0)
    with pytest.raises(VendorRejected, match="no_sequence_steps"):
        await leadterra.resume("camp_123")


async def test_wrong_key_and_unknown_campaign(sim: VendorSimulator, session: aiohttp.ClientSession,
                                              base: Any, leadterra: LeadterraClient) -> None:
    with pytest.raises(VendorNotFound, match="campaign_not_found"):
        await leadterra.pause("camp_404")
    wrong = LeadterraClient(session, api_key="sk_live_wrong", base_url=base("leadterra"), retry=FAST_RETRY)
    with pytest.raises(VendorAuthError, match="authentication_failed") as caught:
        await wrong.pause("camp_404")
    assert caught.value.status == 401
    assert len(sim.calls) == 2


async def test_invalid_id_is_refused(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    for call in (leadterra.state, leadterra.pause, leadterra.resume):
        with pytest.raises(VendorRefused):
            await call("123")
    assert sim.calls == []


async def test_503_and_429_are_retried(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    sim.inject("leadterra", "error", status=503)
    sim.inject("leadterra", "rate_limit", retry_after=0.05)
    assert await leadterra.pause("camp_123") is CampaignStatus.PAUSED
    assert [c.status for c in sim.calls] == [503, 429, 200]
    assert sim.calls[2].at - sim.calls[1].at >= 0.05


async def test_long_outage_ends_unavailable(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    sim.inject("leadterra", "error", status=500, forever=True)
    with pytest.raises(VendorUnavailable) as caught:
        await leadterra.pause("camp_123")
    assert caught.value.status == 500
    assert len(sim.calls) == FAST_RETRY.max_attempts


async def test_rate_limit_is_never_exceeded(sim: VendorSimulator, session: aiohttp.ClientSession, base: Any) -> None:
    sim.set_limit("leadterra", (5, 0.5))
    for number in range(20):
        sim.add_campaign(f"leadterra:camp_{number}", "running")
    client = LeadterraClient(session, api_key="sk_live_sim_leadterra", base_url=base("leadterra"),
                             rate_limit=(5, 0.5), retry=RetryPolicy(max_attempts=1))
    results = await asyncio.gather(*(client.pause(f"camp_{n}") for n in range(20)))
    assert set(results) == {CampaignStatus.PAUSED}
    assert [c.status for c in sim.calls] == [200] * 20
    assert max_in_window(sim.calls, 0.5) <= 5


async def test_api_key_never_leaks(sim: VendorSimulator, session: aiohttp.ClientSession, base: Any) -> None:
    secret = "sk_live_SECRET_0a1b2c3d4e"
    sim.keys["leadterra"].add(secret)
    good = LeadterraClient(session, api_key=secret, base_url=base("leadterra"), retry=FAST_RETRY)
    wrong = LeadterraClient(session, api_key=secret + "x", base_url=base("leadterra"), retry=FAST_RETRY)
    errors: list[BaseException] = []
    with structlog.testing.capture_logs() as logs:
        for client, campaign in ((wrong, "camp_1"), (good, "camp_404")):
            try:
                await client.pause(campaign)
            except VendorError as exc:
                errors.append(exc)
        sim.add_campaign("leadterra:camp_1", "running")
        sim.inject("leadterra", "timeout", delay=0, forever=True)
        try:
            await good.pause("camp_1")
        except VendorError as exc:
            errors.append(exc)
    assert [type(e) for e in errors] == [VendorAuthError, VendorNotFound, VendorUnavailable]
    assert_secret_absent(secret, *errors, good, repr(logs))
