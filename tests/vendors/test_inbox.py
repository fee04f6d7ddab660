"""InboxClient against the vendor simulator: enable/disable, 409/422 handling, two rate limits."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import structlog

from bot.errors import VendorAuthError, VendorError, VendorNotFound, VendorRejected, VendorUnavailable
from bot.testing import VendorSimulator, max_in_window
from bot.vendors import InboxClient, RetryPolicy, VendorRefused
from bot.vendors.base import CampaignStatus, Observation, WriteResult
from tests.vendors.conftest import FAST_RETRY, assert_secret_absent

REF = "inbox:usdjpdql3f90"
CID = "usdjpdql3f90"


def writes(sim: VendorSimulator) -> list[tuple[str, Any]]:
    return [(c.path, c.body) for c in sim.calls_for("inbox", "POST")]


@pytest.mark.parametrize("status", ["draft", "active", "paused", "completed"])
async def test_state(sim: VendorSimulator, inbox: InboxClient, status: str) -> None:
    sim.add_campaign(REF, status)
    assert await inbox.state(CID) == CampaignStatus(status)
    assert await inbox.observe(CID) == Observation(CampaignStatus(status), sim.campaign(REF).updated_at)


async def test_pause_disables_once_and_proves_it(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "active")
    before = await inbox.observe(CID)
    result = await inbox.pause(CID)
    assert result == WriteResult(CampaignStatus.PAUSED, sent=True, proven=True, changed_at=sim.campaign(REF).updated_at)
    assert result.changed_at != before.changed_at
    again = await inbox.pause(CID)
    assert (again.status, again.sent, again.proven) == (CampaignStatus.PAUSED, False, False)
    assert writes(sim) == [(f"/campaigns/v2/{CID}/disable", {})]
    assert sim.status_of(REF) == "paused"
    assert [c.method for c in sim.calls] == ["GET", "GET", "POST", "GET", "GET"]


async def test_a_person_resuming_in_the_ui_moves_the_stamp(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "active")
    ours = await inbox.pause(CID)
    sim.ui(REF, "resume")
    sim.ui(REF, "pause")                                             # paused again, by a person
    seen = await inbox.observe(CID, background=True)
    assert seen.status is CampaignStatus.PAUSED and seen.changed_at != ours.changed_at


async def test_resume_enables_once(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "paused")
    result = await inbox.resume(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.ACTIVE, True, True)
    again = await inbox.resume(CID)
    assert (again.status, again.sent, again.proven) == (CampaignStatus.ACTIVE, False, False)
    assert writes(sim) == [(f"/campaigns/v2/{CID}/enable", {})]


@pytest.mark.parametrize("status", ["draft", "completed", "bogus"])
async def test_resume_refuses_a_draft_or_unknown_status(sim: VendorSimulator, inbox: InboxClient, status: str) -> None:
    sim.add_campaign(REF, "draft")
    sim.set_status(REF, status, raw=True)
    with pytest.raises(VendorRefused, match="only a paused campaign"):
        await inbox.resume(CID)
    assert writes(sim) == []
    assert sim.status_of(REF) == status


async def test_pause_never_disables_a_draft(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "draft")
    result = await inbox.pause(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.DRAFT, False, False)
    assert writes(sim) == []
    assert sim.status_of(REF) == "draft"


async def test_pause_refuses_an_unknown_status(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "active")
    sim.set_status(REF, "archiving", raw=True)
    with pytest.raises(VendorRefused, match="no automatic action"):
        await inbox.pause(CID)
    assert writes(sim) == []


async def test_409_on_same_state_is_not_ours(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "active")
    sim.inject("inbox", "race", method="POST", set_status="paused")
    result = await inbox.pause(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.PAUSED, True, False)
    assert [c.status for c in sim.calls] == [200, 409, 200]


async def test_409_on_a_real_conflict_is_rejected(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "active")
    sim.inject("inbox", "race", method="POST", set_status="completed")
    with pytest.raises(VendorRejected) as caught:
        await inbox.pause(CID)
    assert caught.value.status == 409
    assert caught.value.detail.startswith("STATE_CONFLICT")


async def test_422_unmet_preconditions_is_rejected(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "paused", leads=0)
    with pytest.raises(VendorRejected, match="VALIDATION_ERROR") as caught:
        await inbox.resume(CID)
    assert caught.value.status == 422
    assert sim.status_of(REF) == "paused"


async def test_paths_come_from_settings(sim: VendorSimulator, session: aiohttp.ClientSession, base: Any) -> None:
    sim.add_campaign(REF, "active")
    client = InboxClient(session, api_key="sim-inbox-token", base_url=base("inbox"),
                         pause_path="/campaigns/{id}/pause", retry=FAST_RETRY)
    assert (await client.pause(CID)).proven
    assert writes(sim) == [(f"/campaigns/{CID}/pause", {})]
    with pytest.raises(ValueError, match="contain"):
        InboxClient(session, api_key="x", state_path="/campaigns")


async def test_wrong_token_and_unknown_campaign(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                base: Any, inbox: InboxClient) -> None:
    with pytest.raises(VendorNotFound, match="CAMPAIGN_NOT_FOUND"):
        await inbox.state("nosuchcampaign")
    wrong = InboxClient(session, api_key="nope", base_url=base("inbox"), retry=FAST_RETRY)
    with pytest.raises(VendorAuthError, match="UNAUTHORIZED"):
        await wrong.state("nosuchcampaign")
    with pytest.raises(VendorRefused):
        await inbox.state("Not-Valid")                              # ^[0-9a-z]+$ checked before the call
    assert len(sim.calls) == 2


async def test_lost_answer_is_not_repeated(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "active")
    sim.inject("inbox", "timeout", delay=0, method="POST", after_apply=True)    # applied, answered 504
    result = await inbox.pause(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.PAUSED, True, True)
    assert result.changed_at == sim.campaign(REF).updated_at
    assert len(writes(sim)) == 1


async def test_429_then_503_then_success(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "paused")
    sim.inject("inbox", "rate_limit", method="POST", retry_after=0.05)
    sim.inject("inbox", "error", status=503, method="POST")
    assert (await inbox.resume(CID)).proven
    assert [c.status for c in sim.calls_for(method="POST")] == [429, 503, 200]


async def test_long_outage_ends_unavailable(sim: VendorSimulator, inbox: InboxClient) -> None:
    sim.add_campaign(REF, "active")
    sim.inject("inbox", "error", status=500, forever=True)
    with pytest.raises(VendorUnavailable):
        await inbox.state(CID)
    assert len(sim.calls) == FAST_RETRY.max_attempts


async def test_read_and_write_limits_are_separate(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                  base: Any) -> None:
    sim.set_limit("inbox_read", (6, 0.5))
    sim.set_limit("inbox_write", (3, 0.5))
    ids = [f"camp{n}" for n in range(12)]
    for cid in ids:
        sim.add_campaign(f"inbox:{cid}", "active")
    client = InboxClient(session, api_key="sim-inbox-token", base_url=base("inbox"), read_rate_limit=(6, 0.5),
                         write_rate_limit=(3, 0.5), retry=RetryPolicy(max_attempts=1))
    results = await asyncio.gather(*(client.pause(cid) for cid in ids))
    assert {(r.status, r.proven) for r in results} == {(CampaignStatus.PAUSED, True)}
    assert all(c.status == 200 for c in sim.calls)
    assert max_in_window(sim.calls_for(method="GET"), 0.5) <= 6
    assert max_in_window(sim.calls_for(method="POST"), 0.5) <= 3


async def test_api_key_never_leaks(sim: VendorSimulator, session: aiohttp.ClientSession, base: Any) -> None:
    secret = "inbox-SECRET-token-77aa88bb"
    sim.keys["inbox"].add(secret)
    sim.add_campaign(REF, "active")
    good = InboxClient(session, api_key=secret, base_url=base("inbox"), retry=FAST_RETRY)
    wrong = InboxClient(session, api_key=secret + "z", base_url=base("inbox"), retry=FAST_RETRY)
    errors: list[BaseException] = []
    with structlog.testing.capture_logs() as logs:
        for client in (wrong, good):
            if client is good:
                sim.inject("inbox", "error", status=503, forever=True)
            try:
                await client.pause(CID)
            except VendorError as exc:
                errors.append(exc)
    assert [type(e) for e in errors] == [VendorAuthError, VendorUnavailable]
    assert_secret_absent(secret, *errors, good, repr(logs))
