"""The simulator's `/_sim/` control API and `run_simulator()` (what `campaign-guard simulate` runs)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.testing import VendorSimulator, run_simulator

SL = "/smartlead/api/v1"
SL_KEY = {"api_key": "sim-smartlead-key"}
IN_AUTH = {"Authorization": "Bearer sim-inbox-token"}


async def test_control_api(sim: VendorSimulator, client: TestClient) -> None:
    resp = await client.post("/_sim/campaigns", json={"campaign": "smartlead:42", "status": "paused"})
    assert resp.status == 201 and (await resp.json())["status"] == "PAUSED"
    assert (await client.post("/_sim/campaigns", json={"campaign": "smartlead:x"})).status == 400
    assert (await client.post("/_sim/campaigns", json={"campaign": "inbox:a", "status": "nope"})).status == 400
    resp = await client.put("/_sim/campaigns/smartlead:42", json={"status": "ACTIVE"})
    assert (await resp.json())["status"] == "ACTIVE" and sim.status_of("smartlead:42") == "ACTIVE"
    assert (await (await client.get("/_sim/campaigns/smartlead:42")).json())["campaign"] == "smartlead:42"
    assert (await client.get("/_sim/campaigns/smartlead:1")).status == 404
    resp = await client.post("/_sim/faults", json={"vendor": "smartlead", "kind": "error", "status": 500, "times": 1})
    assert resp.status == 201
    assert (await client.post("/_sim/faults", json={"vendor": "smartlead", "bogus": 1})).status == 400
    assert len(await (await client.get("/_sim/faults")).json()) == 1
    assert (await client.get(f"{SL}/campaigns/42", params=SL_KEY)).status == 500
    calls = await (await client.get("/_sim/calls", params={"vendor": "smartlead"})).json()
    assert [(c["method"], c["path"], c["status"]) for c in calls] == [("GET", "/campaigns/42", 500)]
    assert await (await client.get("/_sim/calls", params={"since": "1"})).json() == []
    assert (await client.put("/_sim/limits", json={"smartlead": [3, 1], "leadterra": None})).status == 200
    assert sim.limits["smartlead"] == (3, 1.0) and sim.limits["leadterra"] is None
    assert (await client.put("/_sim/limits", json={"nope": [1, 1]})).status == 400
    info = await (await client.get("/_sim")).json()
    assert info["vendors"]["inbox"] == "/inbox/api/v1" and info["campaigns"] == 1
    assert (await client.delete("/_sim/faults")).status == 204
    assert (await client.delete("/_sim/campaigns/smartlead:42")).status == 204
    assert (await client.post("/_sim/reset")).status == 204
    assert sim.calls == [] and sim.campaigns == {}


async def test_run_simulator_serves_and_prints_base_urls() -> None:
    lines: list[str] = []
    ready = asyncio.Event()

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith("control:"):
            ready.set()

    sim = VendorSimulator()
    sim.add_campaign("inbox:abc", "paused")
    task = asyncio.create_task(run_simulator("127.0.0.1", 0, sim=sim, echo=echo))
    async with asyncio.timeout(5):
        await ready.wait()
    urls = dict(line.split(": ", 1) for line in lines)
    assert urls["smartlead"].endswith("/smartlead/api/v1") and urls["leadterra"].endswith("/leadterra/v1")
    async with aiohttp.ClientSession() as session, session.get(urls["inbox"] + "/campaigns/abc",
                                                               headers=IN_AUTH) as resp:
        assert (await resp.json())["status"] == "paused"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
