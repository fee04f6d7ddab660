"""Several credentials per vendor in the simulator (an agency: one key per client): a campaign owned by a key
is "not found" for every other key (Instantly: every key of another workspace), lists show a key's own
campaigns only, the call log names the key by label or fingerprint (never the key), and Instantly counts its
rate limit per workspace across keys."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.testing import VendorSimulator, fingerprint
from bot.vendors.instantly.sim import WORKSPACE
from tests.testing.conftest import MonoClock

A = "client-a-key-0001"
B = "client-b-key-0002"
UUID_OWNED = "0c0ffee0-0000-4000-8000-00000000000a"
UUID_MISSING = "0c0ffee0-0000-4000-8000-0000000000ff"


@dataclass(frozen=True)
class Vendor:
    """How to reach one simulated vendor's campaign with a given key."""

    name: str
    prefix: str
    auth: Callable[[str], dict[str, Any]]      # key → request kwargs (params/headers)
    owned: str                                  # a campaign id
    missing: str                                # an id no campaign has
    running: str                                # the native status a pause changes
    paused: str
    read: str                                   # path template of a read, "{id}"
    write: str                                  # path template of the pause
    write_json: Any = None

    def ref(self, cid: str) -> str:
        return f"{self.name}:{cid}"


def _bearer(key: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {key}"}}


def _basic(key: str) -> dict[str, Any]:
    return {"headers": {"Authorization": "Basic " + base64.b64encode(f":{key}".encode()).decode()}}


VENDORS = [
    Vendor("smartlead", "/smartlead/api/v1", lambda k: {"params": {"api_key": k}}, "11", "99", "ACTIVE", "PAUSED",
           "/campaigns/{id}", "/campaigns/{id}/status", {"status": "PAUSED"}),
    Vendor("leadterra", "/leadterra/v1", _bearer, "camp_a", "camp_zz", "running", "paused",
           "/campaigns/{id}/stats", "/campaigns/{id}/pause"),
    Vendor("inbox", "/inbox/api/v1", _bearer, "abc", "zzz", "active", "paused",
           "/campaigns/{id}", "/campaigns/v2/{id}/disable", {}),
    Vendor("instantly", "/instantly/api/v2", _bearer, UUID_OWNED, UUID_MISSING, "1", "2",
           "/campaigns/{id}", "/campaigns/{id}/pause"),
    Vendor("lemlist", "/lemlist/api", _basic, "cam_owned1", "cam_missing9", "running", "paused",
           "/campaigns/{id}", "/campaigns/{id}/pause"),
]
BY_NAME = {v.name: v for v in VENDORS}


async def _call(client: TestClient, v: Vendor, op: str, cid: str, key: str) -> tuple[int, Any]:
    if op == "read":
        resp = await client.get(v.prefix + v.read.format(id=cid), **v.auth(key))
    else:
        resp = await client.post(v.prefix + v.write.format(id=cid), json=v.write_json, **v.auth(key))
    text = await resp.text()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return resp.status, body


def _fingerprint(key: str) -> str:
    return "key#" + hashlib.sha256(key.encode()).hexdigest()[:8]


@pytest.fixture
def agency(mono: MonoClock) -> VendorSimulator:
    """Every vendor accepts A and B; for Instantly they are keys of two workspaces (two clients)."""
    return VendorSimulator(keys={v.name: [A, B] for v in VENDORS}, workspaces={A: "ws-a", B: "ws-b"},
                           labels={A: "acme"}, clock=mono)


@pytest.fixture
async def agency_client(agency: VendorSimulator, aiohttp_client: Callable[..., Any]) -> TestClient:
    return await aiohttp_client(agency.app)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ visibility

@pytest.mark.parametrize("op", ["read", "write"])
@pytest.mark.parametrize("v", VENDORS, ids=[v.name for v in VENDORS])
async def test_a_campaign_of_key_a_is_not_found_for_key_b(
    agency: VendorSimulator, agency_client: TestClient, v: Vendor, op: str
) -> None:
    agency.add_campaign(v.ref(v.owned), v.running, key=A)
    missing = await _call(agency_client, v, op, v.missing, B)
    other = await _call(agency_client, v, op, v.owned, B)
    assert missing[0] == 404
    assert other == missing                                  # the vendor's own "not found", word for word
    assert agency.status_of(v.ref(v.owned)) == v.running      # B's write changed nothing
    status, _ = await _call(agency_client, v, op, v.owned, A)
    assert status == 200
    assert agency.status_of(v.ref(v.owned)) == (v.paused if op == "write" else v.running)


@pytest.mark.parametrize("v", VENDORS, ids=[v.name for v in VENDORS])
async def test_a_campaign_without_owner_is_seen_by_every_key(
    agency: VendorSimulator, agency_client: TestClient, v: Vendor
) -> None:
    agency.add_campaign(v.ref(v.owned), v.running)
    assert agency.campaign(v.ref(v.owned)).owner is None
    for key in (A, B):
        assert (await _call(agency_client, v, "read", v.owned, key))[0] == 200


async def test_smartlead_lists_only_the_keys_own_campaigns(agency: VendorSimulator, agency_client: TestClient) -> None:
    sl = BY_NAME["smartlead"]
    agency.add_campaign("smartlead:1", "ACTIVE", key=A, accounts=["ana@a.example"])
    agency.add_campaign("smartlead:2", "PAUSED", key=B)
    agency.add_campaign("smartlead:3", "DRAFTED", key=A)
    agency.add_campaign("smartlead:4", "ACTIVE")                                # no owner: everyone's

    async def listed(key: str) -> list[int]:
        resp = await agency_client.get(f"{sl.prefix}/campaigns", **sl.auth(key))
        assert resp.status == 200
        return [c["id"] for c in await resp.json()]

    assert await listed(A) == [4, 3, 1]
    assert await listed(B) == [4, 2]
    accounts = f"{sl.prefix}/campaigns/1/email-accounts"
    assert (await agency_client.get(accounts, **sl.auth(B))).status == 404
    assert [a["from_email"] for a in await (await agency_client.get(accounts, **sl.auth(A))).json()] == [
        "ana@a.example"]
    assert [c.id for c in agency.visible_campaigns("smartlead", A)] == ["1", "3", "4"]
    assert agency.visible("smartlead:2", A) is None and agency.visible("smartlead:2", B) is not None


async def test_instantly_keys_of_one_workspace_share_its_campaigns(
    mono: MonoClock, aiohttp_client: Callable[..., Any]
) -> None:
    sim = VendorSimulator(keys={"instantly": [A, B, "third-key"]}, workspaces={A: "ws-1", B: "ws-1",
                                                                              "third-key": "ws-2"}, clock=mono)
    client = await aiohttp_client(sim.app)
    v = BY_NAME["instantly"]
    sim.add_campaign(v.ref(v.owned), "1", key=A)
    status, body = await _call(client, v, "read", v.owned, B)                  # B: same workspace as A
    assert (status, body["organization"]) == (200, "ws-1")
    assert (await _call(client, v, "read", v.owned, "third-key"))[0] == 404
    assert (await _call(client, v, "write", v.owned, B))[0] == 200


def test_add_campaign_with_a_key_accepts_it_and_keeps_it_out_of_sight() -> None:
    sim = VendorSimulator()
    campaign = sim.add_campaign("smartlead:1", key="brand-new-client-key")
    assert "brand-new-client-key" in sim.keys["smartlead"] and campaign.owner == "brand-new-client-key"
    assert "brand-new-client-key" not in repr(campaign)
    assert campaign.to_dict()["owner"] == _fingerprint("brand-new-client-key")
    assert campaign.to_dict(sim.label)["owner"] == _fingerprint("brand-new-client-key")
    assert fingerprint("brand-new-client-key") == _fingerprint("brand-new-client-key")
    with pytest.raises(ValueError, match="key"):
        sim.add_campaign("smartlead:2", key="")


# ------------------------------------------------------------------ the call log names the credential

@pytest.mark.parametrize("v", VENDORS, ids=[v.name for v in VENDORS])
async def test_call_records_carry_the_label_or_fingerprint_never_the_key(
    agency: VendorSimulator, agency_client: TestClient, v: Vendor
) -> None:
    agency.add_campaign(v.ref(v.owned), v.running)
    await _call(agency_client, v, "read", v.owned, A)
    await _call(agency_client, v, "read", v.owned, B)
    await _call(agency_client, v, "read", v.owned, "not-a-key-of-this-vendor")
    await _call(agency_client, v, "write", v.owned, B)
    assert [(c.status, c.credential) for c in agency.calls] == [
        (200, "acme"), (200, _fingerprint(B)), (401, None), (200, _fingerprint(B))]
    logged = repr(agency.calls) + json.dumps([c.to_dict() for c in agency.calls])
    assert A not in logged and B not in logged


async def test_the_smartlead_body_key_is_named_too_and_faults_first_leave_it_none(
    agency: VendorSimulator, agency_client: TestClient
) -> None:
    agency.add_campaign("smartlead:1", "ACTIVE", key=A)
    resp = await agency_client.post("/smartlead/api/v1/campaigns/1/status", json={"status": "PAUSED", "api_key": A})
    assert resp.status == 200 and agency.calls[-1].credential == "acme" and agency.calls[-1].body == {
        "status": "PAUSED"}
    agency.inject("smartlead", "error", status=503)                             # answered before auth
    await agency_client.get("/smartlead/api/v1/campaigns/1", params={"api_key": A})
    agency.inject("smartlead", "error", status=503, after_apply=True)           # the vendor ran first
    await agency_client.get("/smartlead/api/v1/campaigns/1", params={"api_key": A})
    assert [(c.status, c.decided, c.credential) for c in agency.calls[-2:]] == [(503, None, None),
                                                                                (503, 200, "acme")]


async def test_control_api_owner_key_and_logged_credentials(
    agency: VendorSimulator, agency_client: TestClient
) -> None:
    resp = await agency_client.post("/_sim/campaigns", json={"campaign": "inbox:abc", "key": B})
    created = await resp.json()
    assert resp.status == 201 and created["owner"] == _fingerprint(B) and B not in json.dumps(created)
    assert agency.campaign("inbox:abc").owner == B
    resp = await agency_client.post("/_sim/campaigns", json={"campaign": "inbox:def", "key": A})
    assert (await resp.json())["owner"] == "acme"
    listed = await (await agency_client.get("/_sim/campaigns")).json()
    assert [c["owner"] for c in listed] == [_fingerprint(B), "acme"]
    assert (await agency_client.post("/_sim/campaigns", json={"campaign": "inbox:x", "key": 7})).status == 400
    assert (await agency_client.post("/_sim/campaigns", json={"campaign": "inbox:x", "key": ""})).status == 400
    inbox = BY_NAME["inbox"]
    assert (await _call(agency_client, inbox, "read", "abc", A))[0] == 404
    assert (await _call(agency_client, inbox, "read", "abc", B))[0] == 200
    calls = await (await agency_client.get("/_sim/calls")).json()
    assert [(c["status"], c["credential"]) for c in calls] == [(404, "acme"), (200, _fingerprint(B))]


# ------------------------------------------------------------------ Instantly: the limit is per workspace

@pytest.mark.parametrize(("workspaces", "shared"), [
    ({}, True),                                         # both in the default WORKSPACE
    ({A: "ws-1", B: "ws-1"}, True),
    ({A: "ws-1", B: "ws-2"}, False),
    ({A: "ws-1"}, False),                               # B stays in the default one
])
async def test_instantly_limit_counts_per_workspace_across_keys(
    mono: MonoClock, aiohttp_client: Callable[..., Any], workspaces: dict[str, str], shared: bool
) -> None:
    sim = VendorSimulator(keys={"instantly": [A, B]}, workspaces=workspaces, clock=mono)
    client = await aiohttp_client(sim.app)
    sim.set_limit("instantly_second", (2, 1.0))
    sim.set_limit("instantly_minute", None)
    v = BY_NAME["instantly"]
    sim.add_campaign(v.ref(v.owned), "1")
    assert [(await _call(client, v, "read", v.owned, A))[0] for _ in range(2)] == [200, 200]
    assert (await _call(client, v, "read", v.owned, B))[0] == (429 if shared else 200)
    assert (await _call(client, v, "read", v.owned, A))[0] == 429
    assert sim.scope("instantly", B) == workspaces.get(B, WORKSPACE)


async def test_other_vendors_count_per_key_whatever_the_workspaces(
    mono: MonoClock, aiohttp_client: Callable[..., Any]
) -> None:
    sim = VendorSimulator(keys={"smartlead": [A, B]}, workspaces={A: "ws-1", B: "ws-1"}, clock=mono)
    client = await aiohttp_client(sim.app)
    sim.set_limit("smartlead", (2, 2.0))
    v = BY_NAME["smartlead"]
    sim.add_campaign(v.ref(v.owned), "ACTIVE", key=A)
    assert [(await _call(client, v, "read", v.owned, A))[0] for _ in range(3)] == [200, 200, 429]
    assert (await _call(client, v, "read", v.missing, B))[0] == 404              # B's own window: admitted
    assert (await _call(client, v, "read", v.owned, B))[0] == 404                # and A's campaign is not B's
