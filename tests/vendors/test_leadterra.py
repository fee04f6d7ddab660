"""LeadterraClient against the vendor simulator: pause/start semantics, no read endpoint, errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import structlog

from bot.errors import VendorAuthError, VendorError, VendorNotFound, VendorRejected, VendorUnavailable
from bot.testing import VendorSimulator, max_in_window
from bot.vendors import LeadterraClient, RetryPolicy, VendorRefused
from bot.vendors.base import CampaignStatus, Observation, WriteResult
from bot.vendors.http import error_detail
from bot.vendors.leadterra.client import evidence, parse_stamp, parse_status
from tests.vendors.conftest import FAST_RETRY, assert_secret_absent

REF = "leadterra:camp_123"


class Wall:
    """A UTC wall clock moved by hand, shared by the simulator's stamps and the client's request time."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, 0, 400_000, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def wall(sim: VendorSimulator) -> Wall:
    clock = Wall()
    sim.wall = clock
    return clock


@pytest.fixture
def walled(session: aiohttp.ClientSession, base: Any, wall: Wall) -> LeadterraClient:
    return LeadterraClient(session, api_key="sk_live_sim_leadterra", base_url=base("leadterra"), retry=FAST_RETRY,
                           timeout=5, clock=wall)


async def test_state_is_unknown_without_a_call(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    assert leadterra.can_read_state is False
    assert await leadterra.state("camp_123") is CampaignStatus.UNKNOWN
    assert await leadterra.observe("camp_123", background=True) == Observation(CampaignStatus.UNKNOWN, None)
    assert sim.calls == []


async def test_pause_posts_without_body_and_is_proven(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    result = await leadterra.pause("camp_123")
    assert result == WriteResult(CampaignStatus.PAUSED, sent=True, proven=True, changed_at=sim.campaign(REF).paused_at)
    [call] = sim.calls
    assert (call.method, call.path, call.body, call.status) == ("POST", "/campaigns/camp_123/pause", None, 200)
    assert sim.status_of(REF) == "paused"


async def test_pause_of_a_campaign_paused_long_ago_is_not_proven(sim: VendorSimulator,
                                                                  leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "paused")                                  # paused at its creation, long ago
    result = await leadterra.pause("camp_123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus.PAUSED, True, False)
    assert result.changed_at == sim.campaign(REF).paused_at == "2026-01-01T00:00:00Z"
    assert "pausedAt 2026-01-01T00:00:00Z is earlier than the request" in result.detail


async def test_repeated_pause_answers_the_original_paused_at(sim: VendorSimulator, wall: Wall,
                                                             walled: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    first = await walled.pause("camp_123")
    assert first.proven and first.changed_at == "2026-11-30T12:00:00Z"      # whole seconds, request at .4
    paused_at = sim.campaign(REF).paused_at
    wall.now += timedelta(seconds=1)
    # No read endpoint, so the client cannot skip the call; the vendor documents it as a no-op.
    again = await walled.pause("camp_123")
    assert (again.status, again.sent, again.proven) == (CampaignStatus.PAUSED, True, False)
    assert again.changed_at == paused_at == sim.campaign(REF).paused_at
    assert "already paused" in again.detail


async def test_a_person_pausing_in_the_ui_is_not_our_pause(sim: VendorSimulator, wall: Wall,
                                                           walled: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    sim.ui(REF, "pause")                                             # 12:00:00.4, by a person
    wall.now += timedelta(seconds=3)
    result = await walled.pause("camp_123")
    assert not result.proven and result.changed_at == "2026-11-30T12:00:00Z"


async def test_sent_at_of_a_resent_pause_is_the_bar(sim: VendorSimulator, wall: Wall,
                                                    walled: LeadterraClient) -> None:
    """A pause resent after a crash: the first attempt landed; its pausedAt is not earlier than sent_at."""
    sim.add_campaign(REF, "running")
    sent_at = wall.now
    sim.inject("leadterra", "error", status=502, after_apply=True)   # the vendor paused; the answer was lost
    wall.now += timedelta(seconds=5)
    result = await walled.pause("camp_123", sent_at=sent_at)
    assert result.proven and result.changed_at == "2026-11-30T12:00:05Z"
    assert sim.calls_for(method="POST")[0].status == 502
    old = await walled.pause("camp_123", sent_at=wall.now + timedelta(seconds=1))
    assert not old.proven                                            # a later bar: that pausedAt predates it


async def test_a_retry_after_a_lost_answer_is_still_proven(sim: VendorSimulator, wall: Wall,
                                                           walled: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    sim.inject("leadterra", "timeout", delay=0, after_apply=True)    # applied, answered 504
    result = await walled.pause("camp_123")
    assert result.proven                                             # pausedAt is from our first attempt
    assert [c.status for c in sim.calls] == [504, 200]


async def test_pause_on_draft_leaves_it_a_draft(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "draft")
    result = await leadterra.pause("camp_123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus.DRAFT, True, False)
    assert "draft" in result.detail
    assert sim.status_of(REF) == "draft"


async def test_an_empty_200_answer_is_not_a_pause(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "running")
    sim.inject("leadterra", "empty", after_apply=True)               # the vendor did it, but said nothing
    result = await leadterra.pause("camp_123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus.UNKNOWN, True, False)
    assert result.detail == "the answer carries no campaign status"
    sim.inject("leadterra", "empty")
    result = await leadterra.resume("camp_123")
    assert (result.status, result.proven) == (CampaignStatus.UNKNOWN, False)


async def test_resume_starts_a_paused_campaign_once(sim: VendorSimulator, leadterra: LeadterraClient) -> None:
    sim.add_campaign(REF, "paused")
    result = await leadterra.resume("camp_123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus.ACTIVE, True, True)
    assert result.changed_at == sim.campaign(REF).started_at
    sim.add_campaign(REF, "running")                                 # running since long ago
    again = await leadterra.resume("camp_123")                       # running: documented no-op
    assert (again.status, again.proven) == (CampaignStatus.ACTIVE, False)
    assert "startedAt" in again.detail
    assert sim.status_of(REF) == "running"
    assert [c.path for c in sim.calls] == ["/campaigns/camp_123/start"] * 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [({"id": "camp_1", "status": "paused", "pausedAt": "x"}, CampaignStatus.PAUSED),
     ({"status": "running"}, CampaignStatus.ACTIVE), ({"status": "draft"}, CampaignStatus.DRAFT),
     ({"status": "archived"}, CampaignStatus.UNKNOWN), ({}, CampaignStatus.UNKNOWN), ("", CampaignStatus.UNKNOWN)],
)
def test_answer_statuses(body: Any, expected: CampaignStatus) -> None:
    assert parse_status(body, "camp_1") is expected


REQUEST = datetime(2026, 11, 30, 12, 0, 0, 456_789, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "why"),
    [({"status": "paused", "pausedAt": "2026-11-30T12:00:00Z"}, ""),                 # same second
     ({"status": "paused", "pausedAt": "2026-11-30T11:59:59Z"}, "earlier than the request"),
     ({"status": "paused", "pausedAt": "2026-11-30T12:00:00.456Z"}, ""),             # millisecond precision
     ({"status": "paused", "pausedAt": "2026-11-30T12:00:00.455Z"}, "earlier than the request"),
     ({"status": "paused", "pausedAt": "2026-11-30T12:00:00.456789+00:00"}, ""),
     ({"status": "paused", "pausedAt": "2026-11-30T13:00:00+01:00"}, ""),            # other zone, same second
     ({"status": "paused", "pausedAt": "2026-11-30T12:00:00"}, ""),                  # no zone: UTC
     ({"status": "paused", "pausedAt": 1796040000}, "not an ISO 8601 time"),
     ({"status": "paused", "pausedAt": None}, "no pausedAt"),
     ({"status": "paused"}, "no pausedAt"),
     ({"status": "draft", "pausedAt": None}, "is a draft"),
     ({"status": "running", "startedAt": "2026-11-30T12:00:01Z"}, "not paused"),
     ({}, "no campaign status")],
)
def test_pause_evidence(body: Any, why: str) -> None:
    status, _, detail = evidence(body, "camp_1", CampaignStatus.PAUSED, "pausedAt", REQUEST)
    assert (detail == "") if not why else (why in detail), detail
    if not why:
        assert status is CampaignStatus.PAUSED
    assert parse_stamp("2026-11-30T12:00:00.5Z") == (datetime(2026, 11, 30, 12, 0, 0, 500_000, tzinfo=UTC), 1)


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
    assert (await leadterra.pause("camp_123")).proven
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
    assert {(r.status, r.proven) for r in results} == {(CampaignStatus.PAUSED, True)}
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
