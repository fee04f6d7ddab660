"""InstantlyClient against the vendor simulator: numeric statuses, pause/activate proven by a read after,
the vendor's holds never touched, a draft never activated, both workspace windows, errors and keys."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import structlog

from bot.errors import VendorAuthError, VendorError, VendorNotFound, VendorRejected, VendorUnavailable
from bot.testing import VendorSimulator, max_in_window
from bot.vendors import RetryPolicy, VendorRefused
from bot.vendors.base import CampaignStatus, Observation, WriteResult
from bot.vendors.build import build_vendors
from bot.vendors.instantly.client import InstantlyClient, make_client, parse_status, workspace_limiter
from bot.vendors.ratelimit import MultiWindowLimiter
from tests.vendors.conftest import FAST_RETRY, assert_secret_absent

CID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
REF = f"instantly:{CID}"
KEY = "sim-instantly-key"


@pytest.fixture
def instantly(session: aiohttp.ClientSession, base: Any) -> InstantlyClient:
    return InstantlyClient(session, api_key=KEY, base_url=base("instantly"), retry=FAST_RETRY, timeout=5)


def writes(sim: VendorSimulator) -> list[tuple[str, Any]]:
    return [(c.path, c.body) for c in sim.calls_for("instantly", "POST")]


def uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


@pytest.mark.parametrize(("native", "common"), [
    ("0", CampaignStatus.DRAFT), ("1", CampaignStatus.ACTIVE), ("2", CampaignStatus.PAUSED),
    ("3", CampaignStatus.COMPLETED), ("4", CampaignStatus.ACTIVE), ("-1", CampaignStatus.VENDOR_HELD),
    ("-2", CampaignStatus.VENDOR_HELD), ("-99", CampaignStatus.VENDOR_HELD), ("7", CampaignStatus.UNKNOWN),
])
async def test_state_maps_the_numeric_statuses(sim: VendorSimulator, instantly: InstantlyClient, native: str,
                                               common: CampaignStatus) -> None:
    sim.add_campaign(REF, "1")
    sim.set_status(REF, native, raw=True)
    assert await instantly.observe(CID) == Observation(common, sim.campaign(REF).updated_at)


def test_status_parsing_tolerates_strings_and_rejects_booleans() -> None:
    assert parse_status({"id": CID, "status": "2"}, CID) == (CampaignStatus.PAUSED, "2")
    assert parse_status({"id": CID, "status": " -99 "}, CID) == (CampaignStatus.VENDOR_HELD, "-99")
    assert parse_status({"id": CID, "status": True}, CID)[0] is CampaignStatus.UNKNOWN
    assert parse_status({"id": CID, "status": "active"}, CID) == (CampaignStatus.UNKNOWN, "active")
    assert parse_status({}, CID) == (CampaignStatus.UNKNOWN, None)


async def test_pause_is_proven_by_a_read_after_and_not_repeated(sim: VendorSimulator,
                                                                instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "1")
    before = await instantly.observe(CID)
    result = await instantly.pause(CID)
    assert result == WriteResult(CampaignStatus.PAUSED, sent=True, proven=True,
                                 changed_at=sim.campaign(REF).updated_at)
    assert result.changed_at != before.changed_at
    again = await instantly.pause(CID)                               # already paused: no write
    assert (again.status, again.sent, again.proven) == (CampaignStatus.PAUSED, False, False)
    assert writes(sim) == [(f"/campaigns/{CID}/pause", {})]
    assert [c.method for c in sim.calls] == ["GET", "GET", "POST", "GET", "GET"]
    assert sim.status_of(REF) == "2"


async def test_running_subsequences_is_active_and_paused(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "4")
    assert (await instantly.pause(CID)).proven
    assert sim.status_of(REF) == "2"


async def test_the_pause_answer_is_never_trusted(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    """The documented pause answer is a generic example: a 200 whose campaign did not move is not proof."""
    sim.add_campaign(REF, "1")
    sim.inject("instantly", "race", method="GET", set_status="1", times=2)   # someone re-activates at once
    sim.inject("instantly", "empty", method="POST")                          # 200, nothing done
    result = await instantly.pause(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.ACTIVE, True, False)
    assert "reads active" in result.detail


async def test_resume_activates_a_paused_campaign_once(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "2")
    result = await instantly.resume(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.ACTIVE, True, True)
    again = await instantly.resume(CID)
    assert (again.status, again.sent, again.proven) == (CampaignStatus.ACTIVE, False, False)
    assert writes(sim) == [(f"/campaigns/{CID}/activate", {})]


async def test_a_draft_is_never_activated_nor_paused(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "0")
    with pytest.raises(VendorRefused, match="only a paused campaign"):
        await instantly.resume(CID)
    result = await instantly.pause(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.DRAFT, False, False)
    assert writes(sim) == []
    assert sim.status_of(REF) == "0"


@pytest.mark.parametrize("hold", ["-1", "-2", "-99"])
async def test_a_vendor_hold_is_never_activated_nor_paused(sim: VendorSimulator, instantly: InstantlyClient,
                                                           hold: str) -> None:
    sim.add_campaign(REF, hold)
    result = await instantly.pause(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.VENDOR_HELD, False, False)
    with pytest.raises(VendorRefused, match="vendor_held"):
        await instantly.resume(CID)
    assert writes(sim) == []
    assert sim.status_of(REF) == hold


async def test_a_hold_placed_while_retrying_a_resume_stops_it(sim: VendorSimulator,
                                                              instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "2")
    sim.inject("instantly", "error", status=503, method="POST")
    sim.inject("instantly", "race", method="GET", set_status="-2", times=2)   # bounce protect kicks in
    with pytest.raises(VendorRefused):
        await instantly.resume(CID, current=Observation(CampaignStatus.PAUSED))
    assert sim.status_of(REF) == "-2"
    assert len(writes(sim)) == 1


async def test_unknown_status_is_refused(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "1")
    sim.set_status(REF, "5", raw=True)
    with pytest.raises(VendorRefused, match="no automatic action"):
        await instantly.pause(CID)
    assert writes(sim) == []


async def test_same_state_400_is_not_ours(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "1")
    sim.inject("instantly", "race", method="POST", set_status="2")   # a person paused it just before
    result = await instantly.pause(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.PAUSED, True, False)
    assert [c.status for c in sim.calls] == [200, 400, 200]


async def test_activate_without_leads_is_rejected(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "2", leads=0)
    with pytest.raises(VendorRejected) as caught:
        await instantly.resume(CID)
    assert caught.value.status == 400 and "leads" in caught.value.detail
    assert sim.status_of(REF) == "2"


async def test_typed_errors_and_the_id_checked_before_the_url(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                              base: Any, instantly: InstantlyClient) -> None:
    with pytest.raises(VendorNotFound, match="Campaign not found"):
        await instantly.state(uuid(9))
    wrong = InstantlyClient(session, api_key="nope", base_url=base("instantly"), retry=FAST_RETRY)
    with pytest.raises(VendorAuthError) as unauthorized:
        await wrong.state(uuid(9))
    assert unauthorized.value.status == 401
    sim.inject("instantly", "error", status=403)
    with pytest.raises(VendorAuthError) as forbidden:
        await instantly.state(uuid(9))
    assert forbidden.value.status == 403
    calls = len(sim.calls)
    for bad in ("123", "../campaigns", f"{CID}/pause", CID + "?x=1", CID.replace("-", "")):
        with pytest.raises(VendorRefused, match="invalid instantly campaign id"):
            await instantly.pause(bad)
        with pytest.raises(VendorRefused):
            await instantly.resume(bad, current=Observation(CampaignStatus.PAUSED))
    assert len(sim.calls) == calls


async def test_429_with_retry_after_is_retried(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "2")
    sim.inject("instantly", "rate_limit", method="POST", retry_after=0.2)
    sim.inject("instantly", "error", status=503, method="POST")
    assert (await instantly.resume(CID, current=Observation(CampaignStatus.PAUSED))).proven
    posts = sim.calls_for(method="POST")
    assert [c.status for c in posts] == [429, 503, 200]
    assert posts[1].at - posts[0].at >= 0.2


async def test_lost_answer_is_not_repeated(sim: VendorSimulator, instantly: InstantlyClient) -> None:
    sim.add_campaign(REF, "1")
    sim.inject("instantly", "timeout", delay=0, method="POST", after_apply=True)    # applied, answered 504
    result = await instantly.pause(CID)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.PAUSED, True, True)
    assert result.changed_at == sim.campaign(REF).updated_at
    assert len(writes(sim)) == 1


async def test_the_simulator_enforces_both_workspace_windows_across_keys(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Any
) -> None:
    sim.keys["instantly"].add("second-key-of-the-workspace")
    sim.set_limit("instantly_second", (3, 0.3))
    sim.set_limit("instantly_minute", (5, 60))
    sim.add_campaign(REF, "1")
    one = InstantlyClient(session, api_key=KEY, base_url=base("instantly"), rate_limits=[(100, 1)],
                          retry=RetryPolicy(max_attempts=1))
    two = InstantlyClient(session, api_key="second-key-of-the-workspace", base_url=base("instantly"),
                          rate_limits=[(100, 1)], retry=RetryPolicy(max_attempts=1))
    outcomes = await asyncio.gather(*(c.state(CID) for c in (one, two, one, two)), return_exceptions=True)
    assert [type(o).__name__ for o in outcomes].count("VendorUnavailable") == 1     # the 4th in 0.3 s: 429
    assert sim.calls[-1].status == 429
    await asyncio.sleep(0.35)
    more = await asyncio.gather(*(c.state(CID) for c in (one, two, one)), return_exceptions=True)
    assert [c.status for c in sim.calls[-3:]].count(429) >= 1                        # the minute is used up
    assert any(isinstance(o, VendorUnavailable) and o.retry_after and o.retry_after > 1 for o in more)


async def test_both_rate_windows_are_never_exceeded(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                    base: Any) -> None:
    sim.set_limit("instantly_second", (4, 0.2))
    sim.set_limit("instantly_minute", (10, 1.0))
    for n in range(8):
        sim.add_campaign(f"instantly:{uuid(n)}", "1")
    shared = MultiWindowLimiter([(4, 0.2), (10, 1.0)])
    clients = [InstantlyClient(session, api_key=KEY, base_url=base("instantly"), limiter=shared,
                               retry=RetryPolicy(max_attempts=1)) for _ in range(2)]     # two keys, one workspace
    results = await asyncio.gather(*(clients[n % 2].pause(uuid(n)) for n in range(8)))   # 24 requests
    assert {(r.status, r.proven) for r in results} == {(CampaignStatus.PAUSED, True)}
    assert [c.status for c in sim.calls] == [200] * 24
    assert max_in_window(sim.calls, 0.2) <= 4
    assert max_in_window(sim.calls, 1.0) <= 10
    assert sim.calls[-1].at - sim.calls[0].at >= 2.0 - 0.05          # 24 requests at 10 per second


async def test_clients_built_on_one_session_share_the_workspace_limiter(session: aiohttp.ClientSession) -> None:
    from bot.config import Settings

    settings = Settings.model_validate({"instantly_api_key": "k1", "instantly_rate_limit": "7/1",
                                        "instantly_minute_rate_limit": "300/60"})
    first = build_vendors(settings, session)["instantly"]
    second = build_vendors(settings, session)["instantly"]
    assert isinstance(first, InstantlyClient) and isinstance(second, InstantlyClient)
    assert first._http._read_limiter is second._http._read_limiter
    limiter = workspace_limiter(session, "instantly")     # the default account's own workspace
    assert limiter.windows == ((7, 1.0), (300, 60.0))
    config = replace(settings.vendor("instantly"), budget="instantly")
    assert make_client(session, config, FAST_RETRY, 5)._http._read_limiter is limiter
    async with aiohttp.ClientSession() as other:
        assert workspace_limiter(other, config.base_url) is not limiter


async def test_api_key_never_leaks(sim: VendorSimulator, session: aiohttp.ClientSession, base: Any) -> None:
    secret = "instantly-SECRET-key-5e6f7a8b"
    sim.keys["instantly"].add(secret)
    sim.add_campaign(REF, "1")
    good = InstantlyClient(session, api_key=secret, base_url=base("instantly"), retry=FAST_RETRY)
    wrong = InstantlyClient(session, api_key=secret + "z", base_url=base("instantly"), retry=FAST_RETRY)
    errors: list[BaseException] = []
    with structlog.testing.capture_logs() as logs:
        for client, campaign in ((wrong, CID), (good, uuid(5)), (good, CID)):
            if client is good and campaign == CID:
                sim.inject("instantly", "error", status=503, forever=True)
            try:
                await client.pause(campaign)
            except VendorError as exc:
                errors.append(exc)
    assert [type(e) for e in errors] == [VendorAuthError, VendorNotFound, VendorUnavailable]
    assert_secret_absent(secret, *errors, good, repr(logs))
    assert logs and all(secret not in repr(entry) for entry in logs)
    assert secret not in repr(sim.calls)
