"""SmartleadClient against the vendor simulator: status mapping, idempotency, errors, retries, limits."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
import structlog

from bot.errors import VendorAuthError, VendorError, VendorNotFound, VendorRejected, VendorUnavailable
from bot.testing import VendorSimulator, max_in_window
from bot.vendors import RetryPolicy, SmartleadClient, VendorRefused
from bot.vendors.base import CampaignStatus, Observation, WriteResult
from bot.vendors.smartlead.client import ALLOWED_STATUS_VALUES
from tests.vendors.conftest import FAST_RETRY, assert_secret_absent

REF = "smartlead:123"


def posts(sim: VendorSimulator) -> list[Any]:
    return [c.body for c in sim.calls_for("smartlead", "POST")]


@pytest.mark.parametrize("shape", ["data", "flat"])
@pytest.mark.parametrize(
    ("native", "common"),
    [("DRAFTED", "draft"), ("ACTIVE", "active"), ("PAUSED", "paused"), ("STOPPED", "stopped"),
     ("COMPLETED", "completed"), ("ARCHIVED", "archived")],
)
async def test_state_maps_vendor_statuses(
    sim: VendorSimulator, smartlead: SmartleadClient, shape: str, native: str, common: str
) -> None:
    sim.smartlead_get_shape = shape  # type: ignore[assignment]
    sim.add_campaign(REF, native)
    assert await smartlead.state("123") == CampaignStatus(common)


async def test_unknown_status_is_unknown_and_pause_refuses(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.set_status(REF, "WARMING_UP", raw=True)
    assert await smartlead.state("123") is CampaignStatus.UNKNOWN
    with pytest.raises(VendorRefused):
        await smartlead.pause("123")
    assert posts(sim) == []


async def test_pause_sends_paused_once_and_proves_it(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    before = await smartlead.observe("123")
    assert before == Observation(CampaignStatus.ACTIVE, sim.campaign(REF).updated_at)
    result = await smartlead.pause("123")
    assert sim.status_of(REF) == "PAUSED"
    assert result == WriteResult(CampaignStatus.PAUSED, sent=True, proven=True, changed_at=sim.campaign(REF).updated_at)
    assert result.changed_at != before.changed_at                    # the vendor's stamp moved with the pause
    again = await smartlead.pause("123")                             # already paused: GET, no POST
    assert (again.status, again.sent, again.proven) == (CampaignStatus.PAUSED, False, False)
    assert "already paused" in again.detail
    assert posts(sim) == [{"status": "PAUSED"}]
    assert [(c.method, c.path) for c in sim.calls] == [
        ("GET", "/campaigns/123"), ("GET", "/campaigns/123"), ("POST", "/campaigns/123/status"),
        ("GET", "/campaigns/123"), ("GET", "/campaigns/123"),
    ]


async def test_pause_with_a_fresh_read_skips_the_read_before(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    result = await smartlead.pause("123", current=Observation(CampaignStatus.ACTIVE, "x"))
    assert result.proven
    assert [c.method for c in sim.calls] == ["POST", "GET"]         # the write, and the read that proves it
    skipped = await smartlead.pause("123", current=Observation(CampaignStatus.PAUSED, "stamp-1"))
    assert skipped == WriteResult(CampaignStatus.PAUSED, sent=False, proven=False, changed_at="stamp-1",
                                  detail=skipped.detail)
    assert len(sim.calls) == 2


async def test_resume_sends_start_once(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "PAUSED")
    result = await smartlead.resume("123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus.ACTIVE, True, True)
    assert result.changed_at == sim.campaign(REF).updated_at
    again = await smartlead.resume("123")
    assert (again.status, again.sent, again.proven) == (CampaignStatus.ACTIVE, False, False)
    assert sim.status_of(REF) == "ACTIVE"
    assert posts(sim) == [{"status": "START"}]


async def test_resume_never_goes_to_an_unknown_status(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "PAUSED")
    sim.set_status(REF, "WARMING_UP", raw=True)
    with pytest.raises(VendorRefused, match="only a paused campaign"):
        await smartlead.resume("123")
    with pytest.raises(VendorRefused):
        await smartlead.resume("123", current=Observation(CampaignStatus.UNKNOWN))
    with pytest.raises(VendorRefused):
        await smartlead.resume("123", current=Observation(CampaignStatus.DRAFT))
    assert posts(sim) == []


@pytest.mark.parametrize("native", ["DRAFTED", "STOPPED", "COMPLETED", "ARCHIVED"])
async def test_resume_refuses_anything_but_paused(
    sim: VendorSimulator, smartlead: SmartleadClient, native: str
) -> None:
    sim.add_campaign(REF, native)
    with pytest.raises(VendorRefused) as caught:
        await smartlead.resume("123")
    assert isinstance(caught.value, VendorRejected) and caught.value.status is None
    assert "only a paused campaign" in str(caught.value)
    assert posts(sim) == []
    assert sim.status_of(REF) == native                              # the draft was NOT launched


@pytest.mark.parametrize(
    ("native", "common"),
    [("DRAFTED", "draft"), ("STOPPED", "stopped"), ("COMPLETED", "completed"), ("ARCHIVED", "archived")],
)
async def test_pause_leaves_non_sending_campaigns_alone(
    sim: VendorSimulator, smartlead: SmartleadClient, native: str, common: str
) -> None:
    sim.add_campaign(REF, native)
    result = await smartlead.pause("123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus(common), False, False)
    assert common in result.detail
    assert posts(sim) == []
    assert sim.status_of(REF) == native


@pytest.mark.parametrize("value", ["STOPPED", "ACTIVE", "PAUSE", "STOP", "paused", "start", ""])
async def test_stopped_and_other_values_are_impossible_to_send(
    sim: VendorSimulator, smartlead: SmartleadClient, value: str
) -> None:
    sim.add_campaign(REF, "ACTIVE")
    with pytest.raises(VendorRefused, match="never sent"):
        await smartlead._post_status("123", value, "pause")
    assert sim.calls == []
    assert sim.status_of(REF) == "ACTIVE"
    assert frozenset({"PAUSED", "START"}) == ALLOWED_STATUS_VALUES


async def test_only_paused_and_start_ever_reach_the_wire(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Any
) -> None:
    sim.set_limit("smartlead", None)
    smartlead = SmartleadClient(session, api_key="sim-smartlead-key", base_url=base("smartlead"),
                                rate_limit=(1000, 1.0), retry=FAST_RETRY)
    for number, native in enumerate(("DRAFTED", "ACTIVE", "PAUSED", "STOPPED", "COMPLETED", "ARCHIVED"), 1):
        sim.add_campaign(f"smartlead:{number}", native)
        for action in (smartlead.pause, smartlead.resume, smartlead.pause, smartlead.state):
            try:
                await action(str(number))
            except VendorError:
                pass
    assert posts(sim) and all(body in ({"status": "PAUSED"}, {"status": "START"}) for body in posts(sim))


async def test_wrong_key_is_an_auth_error(sim: VendorSimulator, session: aiohttp.ClientSession, base: Any) -> None:
    sim.add_campaign(REF, "ACTIVE")
    client = SmartleadClient(session, api_key="wrong-key-0000", base_url=base("smartlead"), retry=FAST_RETRY)
    with pytest.raises(VendorAuthError) as caught:
        await client.pause("123")
    assert caught.value.status == 401
    assert "UNAUTHORIZED" in str(caught.value)
    assert len(sim.calls) == 1                                       # never retried


async def test_unknown_campaign_is_not_found(smartlead: SmartleadClient) -> None:
    with pytest.raises(VendorNotFound) as caught:
        await smartlead.pause("999")
    assert caught.value.status == 404
    assert str(caught.value).startswith("smartlead answered 404 to GET /campaigns/999")


async def test_invalid_id_is_refused_before_any_call(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    with pytest.raises(VendorRefused):
        await smartlead.pause("12/../../email-accounts")
    assert sim.calls == []


async def test_422_on_a_real_conflict_is_rejected(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "race", method="POST", set_status="STOPPED")   # someone stops it meanwhile
    with pytest.raises(VendorRejected) as caught:
        await smartlead.pause("123")
    assert caught.value.status == 422
    assert "INVALID_STATUS_TRANSITION" in caught.value.detail


async def test_422_on_a_same_state_transition_is_not_ours(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "race", method="POST", set_status="PAUSED")    # paused in the UI meanwhile
    result = await smartlead.pause("123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus.PAUSED, True, False)
    assert "someone else" in result.detail
    statuses = [c.status for c in sim.calls]
    assert statuses == [200, 422, 200]


async def test_a_write_that_does_not_stick_is_not_proven(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "race", method="POST", set_status="ACTIVE", after_apply=True)   # resumed right after
    result = await smartlead.pause("123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus.ACTIVE, True, False)
    assert "reads active" in result.detail


async def test_a_failed_read_after_the_write_is_not_proof(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "slow", method="GET", delay=0)                 # lets the read before through
    sim.inject("smartlead", "error", status=503, method="GET", forever=True)
    result = await smartlead.pause("123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus.PAUSED, True, False)
    assert "read after it failed" in result.detail
    assert sim.status_of(REF) == "PAUSED"


async def test_503_is_retried_then_succeeds(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "error", status=503, times=2, method="POST")
    result = await smartlead.pause("123")
    assert (result.status, result.proven) == (CampaignStatus.PAUSED, True)
    assert [c.status for c in sim.calls_for(method="POST")] == [503, 503, 200]
    assert sim.status_of(REF) == "PAUSED"


async def test_lost_answer_is_not_repeated(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "PAUSED")
    sim.inject("smartlead", "error", status=502, method="POST", after_apply=True)
    result = await smartlead.resume("123")
    assert (result.status, result.sent, result.proven) == (CampaignStatus.ACTIVE, True, True)   # seen PAUSED before
    assert result.changed_at == sim.campaign(REF).updated_at
    assert posts(sim) == [{"status": "START"}]                        # re-GET saw ACTIVE: no second START


async def test_resume_retry_stops_if_campaign_changed(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "PAUSED")
    sim.inject("smartlead", "error", status=500, method="POST")
    first_get = sim.inject("smartlead", "slow", method="GET", delay=0)      # lets the first GET through
    sim.inject("smartlead", "race", method="GET", set_status="STOPPED")     # the re-GET sees STOPPED
    with pytest.raises(VendorRefused, match="became stopped"):
        await smartlead.resume("123")
    assert first_get.hits == 1
    assert posts(sim) == [{"status": "START"}]


async def test_429_honours_retry_after(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "rate_limit", retry_after=0.2)
    assert await smartlead.state("123") is CampaignStatus.ACTIVE
    limited, ok = sim.calls
    assert (limited.status, ok.status) == (429, 200)
    assert ok.at - limited.at >= 0.2


async def test_retry_after_is_kept_when_giving_up(sim: VendorSimulator, session: aiohttp.ClientSession,
                                                  base: Any) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "rate_limit", retry_after=30, forever=True)
    client = SmartleadClient(session, api_key="sim-smartlead-key", base_url=base("smartlead"),
                             retry=RetryPolicy(max_attempts=4, base_delay=0.001, max_retry_after=5))
    with pytest.raises(VendorUnavailable) as caught:
        await client.state("123")
    assert (caught.value.status, caught.value.retry_after) == (429, 30)
    assert len(sim.calls) == 1                                       # 30 s is beyond max_retry_after


async def test_long_outage_ends_unavailable_after_max_attempts(sim: VendorSimulator,
                                                               smartlead: SmartleadClient) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "error", status=503, forever=True)
    with pytest.raises(VendorUnavailable) as caught:
        await smartlead.pause("123")
    assert caught.value.status == 503
    assert len(sim.calls) == FAST_RETRY.max_attempts
    assert sim.status_of(REF) == "ACTIVE"


async def test_timeout_is_retried(sim: VendorSimulator, session: aiohttp.ClientSession, base: Any) -> None:
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "timeout", delay=30)
    client = SmartleadClient(session, api_key="sim-smartlead-key", base_url=base("smartlead"),
                             retry=FAST_RETRY, timeout=0.2)
    assert await client.state("123") is CampaignStatus.ACTIVE
    sim.release_hangs()
    await sim.wait_for_calls(count=2)


async def test_rate_limit_is_never_exceeded(session: aiohttp.ClientSession, base: Any, sim: VendorSimulator) -> None:
    sim.set_limit("smartlead", (5, 0.5))
    for number in range(1, 31):
        sim.add_campaign(f"smartlead:{number}", "ACTIVE")
    client = SmartleadClient(session, api_key="sim-smartlead-key", base_url=base("smartlead"),
                             rate_limit=(5, 0.5), retry=RetryPolicy(max_attempts=1))
    results = await asyncio.gather(*(client.state(str(n)) for n in range(1, 31)))
    assert set(results) == {CampaignStatus.ACTIVE}
    assert [c.status for c in sim.calls] == [200] * 30
    assert max_in_window(sim.calls, 0.5) <= 5


async def test_api_key_never_leaks(sim: VendorSimulator, session: aiohttp.ClientSession, base: Any) -> None:
    secret = "sl-SECRET-9f8e7d6c5b4a"
    sim.keys["smartlead"].add(secret)
    sim.add_campaign(REF, "ACTIVE")
    with socket.socket() as sock:                                    # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1"
    fast = RetryPolicy(max_attempts=2, base_delay=0.001)
    good = SmartleadClient(session, api_key=secret, base_url=base("smartlead"), retry=fast)
    wrong = SmartleadClient(session, api_key=secret + "-wrong", base_url=base("smartlead"), retry=fast)
    down = SmartleadClient(session, api_key=secret, base_url=dead, retry=fast)
    errors: list[BaseException] = []
    with structlog.testing.capture_logs() as logs:
        for client, campaign in ((wrong, "123"), (down, "123"), (good, "77"), (good, "123")):
            if client is good and campaign == "123":
                sim.inject("smartlead", "error", status=503, forever=True)
            try:
                await client.pause(campaign)
            except VendorError as exc:
                errors.append(exc)
    assert [type(e) for e in errors] == [VendorAuthError, VendorUnavailable, VendorNotFound, VendorUnavailable]
    assert "ClientConnectorError" in str(errors[1])
    assert_secret_absent(secret, *errors, good, down, repr(logs))
    assert logs and all(secret not in repr(entry) for entry in logs)
    assert secret not in repr(sim.calls)


async def test_calls_are_counted_and_retries_logged(sim: VendorSimulator, smartlead: SmartleadClient) -> None:
    from bot.metrics import REGISTRY

    def count(result: str) -> float:
        labels = {"vendor": "smartlead", "operation": "pause", "result": result}
        return REGISTRY.get_sample_value("campaign_guard_vendor_calls_total", labels) or 0.0

    before_ok, before_503 = count("ok"), count("503")
    sim.add_campaign(REF, "ACTIVE")
    sim.inject("smartlead", "error", status=503, method="POST")
    with structlog.testing.capture_logs() as logs:
        await smartlead.pause("123")
    assert (count("ok") - before_ok, count("503") - before_503) == (4, 1)     # GET, re-GET, POST, GET; one 503
    retrying = [e for e in logs if e["event"] == "vendor.retrying"]
    assert len(retrying) == 1
    assert {"vendor": "smartlead", "where": "POST /campaigns/123/status", "status": 503,
            "log_level": "warning"}.items() <= retrying[0].items()
    assert any(e["event"] == "vendor.called" and e.get("status") == 200 for e in logs)
