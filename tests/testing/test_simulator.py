"""The vendor simulator follows the documented contracts, injects faults, logs calls and is drivable."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.testing import VendorSimulator
from tests.testing.conftest import MonoClock

SL = "/smartlead/api/v1"
LT = "/leadterra/v1"
IN = "/inbox/api/v1"
SL_KEY = {"api_key": "sim-smartlead-key"}
LT_AUTH = {"Authorization": "Bearer sk_live_sim_leadterra"}
IN_AUTH = {"Authorization": "Bearer sim-inbox-token"}


async def sl_status(client: TestClient, cid: str, value: Any) -> tuple[int, Any]:
    resp = await client.post(f"{SL}/campaigns/{cid}/status", params=SL_KEY, json={"status": value})
    return resp.status, await resp.json()


# ------------------------------------------------------------------ Smartlead

async def test_smartlead_auth(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    for params in ({}, {"api_key": "wrong"}):
        resp = await client.get(f"{SL}/campaigns/1", params=params)
        assert resp.status == 401
        assert await resp.json() == {"success": False, "error": {"code": "UNAUTHORIZED",
                                                                  "message": "Invalid or missing API key"}}
    resp = await client.post(f"{SL}/campaigns/1/status", json={"status": "PAUSED", "api_key": "sim-smartlead-key"})
    assert resp.status == 200                                       # the key may ride in a POST body too
    assert sim.calls[-1].body == {"status": "PAUSED"}                # ... and is not logged


async def test_smartlead_read_shapes(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("smartlead:7", "DRAFTED")
    sim.add_campaign("smartlead:9", "ACTIVE")
    body = await (await client.get(f"{SL}/campaigns/7", params=SL_KEY)).json()
    assert body["success"] is True and body["data"]["status"] == "DRAFTED" and body["data"]["id"] == 7
    sim.smartlead_get_shape = "flat"
    assert (await (await client.get(f"{SL}/campaigns/7", params=SL_KEY)).json())["status"] == "DRAFTED"
    listed = await (await client.get(f"{SL}/campaigns/", params=SL_KEY)).json()
    assert [c["id"] for c in listed] == [9, 7]                       # bare array, newest first
    assert (await client.get(f"{SL}/campaigns/8", params=SL_KEY)).status == 404
    assert (await client.get(f"{SL}/nothing", params=SL_KEY)).status == 404


@pytest.mark.parametrize(
    ("start", "value", "code", "end"),
    [
        ("DRAFTED", "START", 200, "ACTIVE"),             # START launches a draft
        ("PAUSED", "START", 200, "ACTIVE"),
        ("ACTIVE", "PAUSED", 200, "PAUSED"),
        ("ACTIVE", "STOPPED", 200, "STOPPED"),           # accepted, like the real vendor
        ("PAUSED", "STOPPED", 200, "STOPPED"),
        ("STOPPED", "START", 422, "STOPPED"),            # terminal
        ("STOPPED", "PAUSED", 422, "STOPPED"),
        ("DRAFTED", "PAUSED", 422, "DRAFTED"),
        ("COMPLETED", "START", 422, "COMPLETED"),
        ("ARCHIVED", "PAUSED", 422, "ARCHIVED"),
        ("ACTIVE", "START", 422, "ACTIVE"),              # same state (strict)
        ("PAUSED", "PAUSED", 422, "PAUSED"),
        ("ACTIVE", "ACTIVE", 422, "ACTIVE"),             # not a request value
        ("ACTIVE", "PAUSE", 422, "ACTIVE"),
        ("ACTIVE", "STOP", 422, "ACTIVE"),
        ("ACTIVE", "paused", 422, "ACTIVE"),
        ("ACTIVE", None, 422, "ACTIVE"),
    ],
)
async def test_smartlead_state_machine(
    sim: VendorSimulator, client: TestClient, start: str, value: Any, code: int, end: str
) -> None:
    sim.add_campaign("smartlead:5", start)
    status, body = await sl_status(client, "5", value)
    assert status == code
    assert sim.status_of("smartlead:5") == end
    if code == 200:
        assert body == {"success": True, "message": "Campaign status updated successfully",
                        "campaign": {"id": 5, "status": end}}
    else:
        assert body["success"] is False and body["error"]["code"] in ("VALIDATION_ERROR", "INVALID_STATUS_TRANSITION")


async def test_smartlead_start_validates_the_campaign(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("smartlead:5", "DRAFTED", leads=0)
    status, body = await sl_status(client, "5", "START")
    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")
    assert sim.status_of("smartlead:5") == "DRAFTED"
    resp = await client.post(f"{SL}/campaigns/5/status", params=SL_KEY, data=b"not json")
    assert resp.status == 400


async def test_lenient_same_state(mono: MonoClock, aiohttp_client: Any) -> None:
    sim = VendorSimulator(strict_same_state=False, clock=mono)
    client = await aiohttp_client(sim.app)
    sim.add_campaign("smartlead:5", "PAUSED")
    sim.add_campaign("inbox:abc", "active")
    assert (await sl_status(client, "5", "PAUSED"))[0] == 200
    resp = await client.post(f"{IN}/campaigns/v2/abc/enable", headers=IN_AUTH, json={})
    assert resp.status == 200 and (await resp.json())["status"] == "active"


async def test_smartlead_rate_limit_sliding_window(sim: VendorSimulator, client: TestClient, mono: MonoClock) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    for _ in range(10):
        assert (await client.get(f"{SL}/campaigns/1", params=SL_KEY)).status == 200
        mono.advance(0.1)
    resp = await client.get(f"{SL}/campaigns/1", params=SL_KEY)
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1"
    assert await resp.json() == {"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "Rate limit exceeded",
                                           "retry_after": 1}}
    sim.keys["smartlead"].add("second-key")                          # limits are per key
    assert (await client.get(f"{SL}/campaigns/1", params={"api_key": "second-key"})).status == 200
    mono.advance(1.0)                                                # the first request left the window
    assert (await client.get(f"{SL}/campaigns/1", params=SL_KEY)).status == 200
    assert (await client.get(f"{SL}/campaigns/1", params=SL_KEY)).status == 429


# ------------------------------------------------------------------ Leadterra

async def test_leadterra_contract(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    sim.add_campaign("leadterra:camp_2", "draft")
    resp = await client.post(f"{LT}/campaigns/camp_1/pause")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "authentication_failed"
    first = await (await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH)).json()
    assert first["id"] == "camp_1" and first["status"] == "paused" and first["pausedAt"]
    again = await (await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH)).json()
    assert again == first                                            # no-op, current state
    draft = await (await client.post(f"{LT}/campaigns/camp_2/pause", headers=LT_AUTH)).json()
    assert draft["status"] == "draft"
    launched = await (await client.post(f"{LT}/campaigns/camp_2/start", headers=LT_AUTH)).json()
    assert launched["status"] == "running" and launched["startedAt"]  # start on a draft launches it
    again = await (await client.post(f"{LT}/campaigns/camp_2/start", headers=LT_AUTH)).json()
    assert again == launched
    resp = await client.post(f"{LT}/campaigns/camp_404/start", headers=LT_AUTH)
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "campaign_not_found")
    assert (await client.get(f"{LT}/campaigns/camp_1", headers=LT_AUTH)).status == 404   # no read endpoint
    stats = await (await client.get(f"{LT}/campaigns/camp_1/stats", headers=LT_AUTH)).json()
    assert stats["campaignId"] == "camp_1" and "status" not in stats


@pytest.mark.parametrize(("leads", "steps", "code"), [(0, 1, "no_leads_enrolled"), (1, 0, "no_sequence_steps")])
async def test_leadterra_start_preconditions(
    sim: VendorSimulator, client: TestClient, leads: int, steps: int, code: str
) -> None:
    sim.add_campaign("leadterra:camp_1", "draft", leads=leads, sequence_steps=steps)
    resp = await client.post(f"{LT}/campaigns/camp_1/start", headers=LT_AUTH)
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, code)
    assert sim.status_of("leadterra:camp_1") == "draft"


async def test_leadterra_rejects_a_body_and_has_no_limit_by_default(
    sim: VendorSimulator, client: TestClient
) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    resp = await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH, json={"force": True})
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_request")
    for _ in range(70):
        assert (await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH)).status == 200
    sim.set_limit("leadterra", (1, 60))
    assert (await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH)).status == 200
    resp = await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH)
    assert resp.status == 429 and resp.headers["Retry-After"] == "60"


# ------------------------------------------------------------------ Inbox

async def test_inbox_contract(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("inbox:abc", "draft")
    sim.add_campaign("inbox:done", "completed")
    resp = await client.get(f"{IN}/campaigns/abc")
    assert (resp.status, await resp.json()) == (401, {"error": {"code": "UNAUTHORIZED", "status": 401,
                                                                "message": "Missing or invalid API token"}})
    got = await (await client.get(f"{IN}/campaigns/abc", headers=IN_AUTH)).json()
    assert got["status"] == "draft" and "enabled" not in got            # v1 shape
    resp = await client.post(f"{IN}/campaigns/v2/abc/enable", headers=IN_AUTH, json={})
    body = await resp.json()
    assert (resp.status, body["status"], body["enabled"]) == (200, "active", True)   # enable launches a draft
    resp = await client.post(f"{IN}/campaigns/v2/abc/enable", headers=IN_AUTH, json={})
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "STATE_CONFLICT")
    resp = await client.post(f"{IN}/campaigns/v2/done/disable", headers=IN_AUTH, json={})
    assert resp.status == 409
    resp = await client.post(f"{IN}/campaigns/v2/abc/disable", headers=IN_AUTH)
    assert resp.status == 400                                        # body must be an object
    assert (await client.get(f"{IN}/campaigns/Bad-Id", headers=IN_AUTH)).status == 400
    resp = await client.get(f"{IN}/campaigns/zzz", headers=IN_AUTH)
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "CAMPAIGN_NOT_FOUND")


async def test_inbox_disabling_a_draft_pauses_it(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("inbox:abc", "draft")
    resp = await client.post(f"{IN}/campaigns/v2/abc/disable", headers=IN_AUTH, json={})
    assert (await resp.json())["status"] == "paused"                 # "disabling any campaign" → paused
    sim.add_campaign("inbox:new", "draft")
    resp = await client.post(f"{IN}/campaigns/new/pause", headers=IN_AUTH, json={})
    assert resp.status == 409                                        # v1 pause: active campaigns only
    sim.add_campaign("inbox:empty", "paused", leads=0)
    resp = await client.post(f"{IN}/campaigns/v2/empty/enable", headers=IN_AUTH, json={})
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "VALIDATION_ERROR")


async def test_inbox_limits_per_token_reads_and_writes_apart(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("inbox:abc", "active")
    sim.set_limit("inbox_write", (2, 60))
    for action in ("disable", "enable"):
        assert (await client.post(f"{IN}/campaigns/v2/abc/{action}", headers=IN_AUTH, json={})).status == 200
    resp = await client.post(f"{IN}/campaigns/v2/abc/disable", headers=IN_AUTH, json={})
    assert resp.status == 429 and resp.headers["Retry-After"] == "60"
    assert await resp.json() == {"error": {"code": "RATE_LIMITED", "message": "Too many requests", "status": 429}}
    read = await client.get(f"{IN}/campaigns/abc", headers=IN_AUTH)
    assert read.status == 200
    assert (read.headers["X-RateLimit-Limit"], read.headers["X-RateLimit-Remaining"]) == ("100", "99")


# ------------------------------------------------------------------ faults

async def test_error_fault_n_times_then_normal(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    sim.inject("smartlead", "error", status=500, times=2, method="GET", path="/campaigns/*")
    statuses = [(await client.get(f"{SL}/campaigns/1", params=SL_KEY)).status for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert (await sl_status(client, "1", "PAUSED"))[0] == 200        # other methods untouched
    assert sim.faults == []


async def test_fault_for_the_next_seconds(sim: VendorSimulator, client: TestClient, mono: MonoClock) -> None:
    sim.add_campaign("inbox:abc", "active")
    sim.inject("inbox", "rate_limit", seconds=30, retry_after=5)
    for _ in range(3):
        resp = await client.get(f"{IN}/campaigns/abc", headers=IN_AUTH)
        assert resp.status == 429 and resp.headers["Retry-After"] == "5"
    mono.advance(30)
    assert (await client.get(f"{IN}/campaigns/abc", headers=IN_AUTH)).status == 200


async def test_slow_and_timeout_faults(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    sim.inject("leadterra", "slow", delay=0.05)
    started = time.perf_counter()
    assert (await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH)).status == 200
    assert time.perf_counter() - started >= 0.05
    sim.inject("leadterra", "timeout", delay=30)
    with pytest.raises(TimeoutError):
        await client.post(f"{LT}/campaigns/camp_1/start", headers=LT_AUTH, timeout=aiohttp.ClientTimeout(total=0.1))
    sim.release_hangs()
    [hung] = await sim.wait_for_calls(lambda c: c.status == 504)
    assert hung.path == "/campaigns/camp_1/start"
    assert sim.status_of("leadterra:camp_1") == "paused"            # a timeout before applying changes nothing


async def test_after_apply_and_race_faults(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    sim.inject("smartlead", "error", status=503, after_apply=True)
    assert (await sl_status(client, "1", "PAUSED"))[0] == 503
    assert sim.status_of("smartlead:1") == "PAUSED"                 # done, but the answer was lost
    assert (sim.calls[-1].status, sim.calls[-1].decided) == (503, 200)
    sim.inject("smartlead", "error", status=503)
    assert (await sl_status(client, "1", "ACTIVE"))[0] == 503
    assert (sim.calls[-1].status, sim.calls[-1].decided) == (503, None)     # refused before the vendor's logic
    sim.inject("smartlead", "race", set_status="STOPPED")
    assert (await sl_status(client, "1", "START"))[0] == 422         # someone stopped it first
    with pytest.raises(ValueError, match="set_status"):
        sim.inject("smartlead", "race")
    with pytest.raises(ValueError, match="unknown vendor"):
        sim.inject("mailchimp")


# ------------------------------------------------------------------ call log and waiting

async def test_call_log_has_no_credentials(sim: VendorSimulator, client: TestClient, mono: MonoClock) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    await sl_status(client, "1", "PAUSED")
    await client.post(f"{IN}/campaigns/v2/abc/enable", headers=IN_AUTH, json={})
    sl_call, in_call = sim.calls
    assert (sl_call.vendor, sl_call.method, sl_call.path, sl_call.body, sl_call.status, sl_call.at) == (
        "smartlead", "POST", "/campaigns/1/status", {"status": "PAUSED"}, 200, mono.now)
    assert (in_call.vendor, in_call.status) == ("inbox", 404)
    text = repr(sim.calls)
    assert "sim-smartlead-key" not in text and "sim-inbox-token" not in text


async def test_wait_for_calls_wakes_on_a_request(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    task = asyncio.create_task(sl_status(client, "1", "PAUSED"))
    [call] = await sim.wait_for_calls(lambda c: c.method == "POST", timeout=5)
    assert call.status == 200
    await sim.wait_for_status("smartlead:1", "paused", timeout=5)
    await task
    with pytest.raises(TimeoutError, match="2 matching call"):
        await sim.wait_for_calls(lambda c: c.method == "POST", count=2, timeout=0.05)


# ------------------------------------------------------------------ change stamps, UI actions, held writes

async def test_every_status_change_moves_the_stamps(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    sim.add_campaign("inbox:abc", "active")

    async def sl_stamp() -> str:
        return str((await (await client.get(f"{SL}/campaigns/1", params=SL_KEY)).json())["data"]["updated_at"])

    first = await sl_stamp()
    assert first == "2026-01-01T00:00:00Z" and await sl_stamp() == first        # a read changes nothing
    seen = [first]
    for value in ("PAUSED", "START", "PAUSED"):                                 # several changes within a ms
        assert (await sl_status(client, "1", value))[0] == 200
        seen.append(await sl_stamp())
    assert len(set(seen)) == 4 and seen == sorted(seen)                          # new and increasing each time
    assert sim.campaign("smartlead:1").paused_at == seen[-1]
    sim.ui("smartlead:1", "resume")
    assert await sl_stamp() > seen[-1]
    before = (await (await client.get(f"{IN}/campaigns/abc", headers=IN_AUTH)).json())["updatedAt"]
    await client.post(f"{IN}/campaigns/v2/abc/disable", headers=IN_AUTH, json={})
    after = await (await client.get(f"{IN}/campaigns/abc", headers=IN_AUTH)).json()
    assert after["updatedAt"] > before and after["pausedAt"] == after["updatedAt"]


async def test_leadterra_answers_the_original_paused_at(sim: VendorSimulator, client: TestClient) -> None:
    moments = iter([datetime(2026, 11, 30, 12, 0, 0, 700_000, tzinfo=UTC)])
    sim.wall = lambda: next(moments)
    sim.add_campaign("leadterra:camp_old", "paused")                 # paused at its creation
    sim.add_campaign("leadterra:camp_1", "running")
    sim.add_campaign("leadterra:camp_2", "draft")
    old = await (await client.post(f"{LT}/campaigns/camp_old/pause", headers=LT_AUTH)).json()
    assert old == {"id": "camp_old", "status": "paused", "pausedAt": "2026-01-01T00:00:00Z"}
    paused = await (await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH)).json()
    assert paused["pausedAt"] == "2026-11-30T12:00:00Z"              # whole seconds
    again = await (await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH)).json()
    assert again == paused                                           # the wall clock is not read again
    draft = await (await client.post(f"{LT}/campaigns/camp_2/pause", headers=LT_AUTH)).json()
    assert draft == {"id": "camp_2", "status": "draft", "pausedAt": None}


async def test_a_person_acts_in_the_vendor_ui(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    sim.add_campaign("leadterra:camp_1", "draft")
    stamp = sim.campaign("smartlead:1").updated_at
    assert sim.ui("smartlead:1", "pause").status == "PAUSED"
    assert sim.campaign("smartlead:1").updated_at != stamp
    assert sim.ui("smartlead:1", "resume").status == "ACTIVE"
    with pytest.raises(ValueError, match="cannot pause a draft"):
        sim.ui("leadterra:camp_1", "pause")
    with pytest.raises(ValueError, match="unknown UI action"):
        sim.ui("smartlead:1", "stop")
    assert sim.calls == []                                           # not an API call
    resp = await client.post("/_sim/campaigns/smartlead:1/ui", json={"action": "pause"})
    assert resp.status == 200 and (await resp.json())["status"] == "PAUSED"
    assert (await client.post("/_sim/campaigns/smartlead:1/ui", json={"action": "pause"})).status == 409
    assert (await client.post("/_sim/campaigns/smartlead:1/ui", json={"action": "launch"})).status == 400
    assert (await client.post("/_sim/campaigns/smartlead:9/ui", json={"action": "pause"})).status == 404


@pytest.mark.parametrize("after_apply", [False, True])
async def test_a_write_held_in_flight(sim: VendorSimulator, client: TestClient, after_apply: bool) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    sim.inject("smartlead", "hold", method="POST", after_apply=after_apply)
    task = asyncio.create_task(sl_status(client, "1", "PAUSED"))
    await sim.wait_until(lambda: bool(sim.held), what="a held request")
    [held] = sim.held
    assert (held.method, held.path, held.status) == ("POST", "/campaigns/1/status", None)
    assert sim.status_of("smartlead:1") == ("PAUSED" if after_apply else "ACTIVE")
    sim.ui("smartlead:1", "pause" if not after_apply else "resume")   # a person acts meanwhile
    listed = await (await client.get("/_sim/held")).json()
    assert [(c["method"], c["path"]) for c in listed] == [("POST", "/campaigns/1/status")]
    assert (await (await client.get("/_sim")).json())["held"] == 1
    assert (await client.post("/_sim/release")).status == 204
    status, _ = await task
    assert sim.held == []
    assert status == (200 if after_apply else 422)                   # before applying: it is paused already


async def test_empty_answer_fault(sim: VendorSimulator, client: TestClient) -> None:
    sim.add_campaign("leadterra:camp_1", "running")
    sim.inject("leadterra", "empty", after_apply=True)
    resp = await client.post(f"{LT}/campaigns/camp_1/pause", headers=LT_AUTH)
    assert (resp.status, await resp.read()) == (200, b"")
    assert sim.status_of("leadterra:camp_1") == "paused"
    resp = await client.post("/_sim/faults", json={"vendor": "inbox", "kind": "hold", "method": "POST"})
    assert resp.status == 201 and (await resp.json())["kind"] == "hold"
