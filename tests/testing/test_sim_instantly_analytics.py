"""The simulated Instantly's analytics (`/campaigns/analytics`, `/campaigns/analytics/daily`) and accounts
(`/accounts`), served as documented, scoped to the key's workspace, rate limited and open to faults."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.testing import VendorSimulator
from bot.vendors.instantly.sim_analytics import DAILY_FIELDS, add_account, clear_accounts, set_daily
from tests.testing.conftest import MonoClock

IN = "/instantly/api/v2"
AUTH = {"Authorization": "Bearer sim-instantly-key"}
C1 = "019a17f3-6af5-795b-aacb-069a2e0d5e1d"
C2 = "019a17f3-6af5-795b-aacb-069a2e0d5e2e"


@pytest.fixture
def sim(mono: MonoClock) -> VendorSimulator:
    return VendorSimulator(clock=mono, wall=lambda: datetime(2026, 11, 30, 12, tzinfo=UTC))


async def get(client: TestClient, path: str, **params: Any) -> tuple[int, Any]:
    resp = await client.get(f"{IN}{path}", headers=AUTH, params=params)
    return resp.status, await resp.json()


def two_campaigns(sim: VendorSimulator) -> None:
    sim.add_campaign(f"instantly:{C1}", "1", name="Alpha")
    sim.add_campaign(f"instantly:{C2}", "2", name="Beta")
    set_daily(sim, f"instantly:{C1}", {
        "2026-09-01": {"sent": 100, "opened": 40, "replies": 5, "bounced": 3, "unsubscribed": 1, "clicks": 2},
        "2026-11-29": {"sent": 20, "replies": 1, "bounced": 1},
    })
    set_daily(sim, f"instantly:{C2}", {"2026-11-29": {"sent": 7, "opened": 2}, "2026-11-30": {"bounced": 1}})


async def test_the_overview_sums_each_campaign(sim: VendorSimulator, client: TestClient) -> None:
    two_campaigns(sim)
    status, rows = await get(client, "/campaigns/analytics")
    assert status == 200 and [r["campaign_id"] for r in rows] == [C1, C2]
    alpha = rows[0]
    assert (alpha["campaign_name"], alpha["campaign_status"], alpha["leads_count"]) == ("Alpha", 1, 1)
    assert {k: alpha[k] for k in ("emails_sent_count", "open_count", "reply_count", "bounced_count",
                                  "unsubscribed_count", "link_click_count")} == {
        "emails_sent_count": 120, "open_count": 40, "reply_count": 6, "bounced_count": 4, "unsubscribed_count": 1,
        "link_click_count": 2}
    assert {"contacted_count", "completed_count", "new_leads_contacted_count", "total_opportunities"} <= set(alpha)
    assert "leads_count" not in (await get(client, "/campaigns/analytics", exclude_total_leads_count="true"))[1][0]


async def test_the_overview_filters_by_id_and_dates(sim: VendorSimulator, client: TestClient) -> None:
    two_campaigns(sim)
    _, rows = await get(client, "/campaigns/analytics", id=C2)
    assert [r["campaign_id"] for r in rows] == [C2]
    _, rows = await get(client, "/campaigns/analytics", ids=f"{C1},{C2}", start_date="2026-11-01")
    assert [(r["campaign_id"], r["emails_sent_count"]) for r in rows] == [(C1, 20), (C2, 7)]
    assert (await get(client, "/campaigns/analytics", id="nope"))[0] == 400
    status, body = await get(client, "/campaigns/analytics", start_date="2026-11-02", end_date="2026-11-01")
    assert (status, body["message"]) == (400, "Start Date must be earlier than End Date")


async def test_daily_rows_are_the_documented_ones(sim: VendorSimulator, client: TestClient) -> None:
    two_campaigns(sim)
    status, rows = await get(client, "/campaigns/analytics/daily", campaign_id=C1, start_date="2026-01-01")
    assert status == 200 and [r["date"] for r in rows] == ["2026-09-01", "2026-11-29"]
    assert set(rows[0]) == {"date", *DAILY_FIELDS} - {"bounced", "unsubscribed"}      # no campaign id, no bounces
    assert (rows[0]["sent"], rows[0]["replies"], rows[0]["opened"]) == (100, 5, 40)


async def test_daily_defaults_to_the_last_30_days(sim: VendorSimulator, client: TestClient) -> None:
    two_campaigns(sim)
    _, rows = await get(client, "/campaigns/analytics/daily", campaign_id=C1)
    assert [r["date"] for r in rows] == ["2026-11-29"]                 # September is out of the default window
    _, rows = await get(client, "/campaigns/analytics/daily", campaign_id=C1, end_date="2026-10-01")
    assert [r["date"] for r in rows] == ["2026-09-01"]


async def test_daily_without_a_campaign_sums_the_workspace(sim: VendorSimulator, client: TestClient) -> None:
    two_campaigns(sim)
    _, rows = await get(client, "/campaigns/analytics/daily")
    assert [(r["date"], r["sent"]) for r in rows] == [("2026-11-29", 27), ("2026-11-30", 0)]   # a bounce is activity


async def test_daily_errors(sim: VendorSimulator, client: TestClient) -> None:
    two_campaigns(sim)
    assert (await get(client, "/campaigns/analytics/daily", campaign_id="x"))[0] == 400
    assert (await get(client, "/campaigns/analytics/daily", start_date="yesterday"))[0] == 400
    status, body = await get(client, "/campaigns/analytics/daily", start_date="2026-12-01")
    assert (status, body["message"]) == (400, "Start Date must be earlier than End Date")
    unknown = "019a17f3-6af5-795b-aacb-0000000000ff"
    assert await get(client, "/campaigns/analytics/daily", campaign_id=unknown) == (200, [])


async def test_numbers_belong_to_the_campaign_they_were_set_on(sim: VendorSimulator, client: TestClient) -> None:
    two_campaigns(sim)
    sim.add_campaign(f"instantly:{C1}", "1")                           # replaced: a new campaign, no numbers
    _, rows = await get(client, "/campaigns/analytics", id=C1)
    assert rows[0]["emails_sent_count"] == 0
    with pytest.raises(ValueError, match="unknown daily fields"):
        set_daily(sim, f"instantly:{C1}", {"2026-11-01": {"emails": 3}})
    with pytest.raises(KeyError):
        set_daily(sim, "instantly:019a17f3-6af5-795b-aacb-0000000000ff", {})


async def test_accounts_are_paged_with_a_cursor(sim: VendorSimulator, client: TestClient) -> None:
    for n in range(5):
        add_account(sim, f"a+{n}@x.example", status=-1 if n == 3 else 1, warmup_score=80 + n)
    status, page = await get(client, "/accounts", limit=2)
    assert status == 200 and [a["email"] for a in page["items"]] == ["a+0@x.example", "a+1@x.example"]
    assert page["next_starting_after"] == "a+1@x.example"
    _, page = await get(client, "/accounts", limit=2, starting_after="a+3@x.example")
    assert [a["email"] for a in page["items"]] == ["a+4@x.example"] and "next_starting_after" not in page
    _, page = await get(client, "/accounts", limit=1, starting_after="a+4@x.example")
    assert page == {"items": []}
    _, page = await get(client, "/accounts", status=-1)
    [broken] = page["items"]
    assert (broken["email"], broken["status"], broken["stat_warmup_score"]) == ("a+3@x.example", -1, 83)
    assert broken["status_message"]["responseCode"] == 535
    assert {"warmup_status", "organization", "provider_code", "daily_limit"} <= set(broken)
    assert not any("password" in key for key in broken)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"starting_after": "nobody"}])
async def test_bad_account_queries(sim: VendorSimulator, client: TestClient, params: dict[str, Any]) -> None:
    add_account(sim, "a@x.example")
    assert (await get(client, "/accounts", **params))[0] == 400


async def test_accounts_belong_to_a_workspace(sim: VendorSimulator, client: TestClient) -> None:
    sim.workspaces["other-key"] = "ws-2"
    add_account(sim, "shared@x.example")
    add_account(sim, "theirs@x.example", key="other-key")
    _, page = await get(client, "/accounts")
    assert [a["email"] for a in page["items"]] == ["shared@x.example"]
    resp = await client.get(f"{IN}/accounts", headers={"Authorization": "Bearer other-key"})
    assert [a["email"] for a in (await resp.json())["items"]] == ["shared@x.example", "theirs@x.example"]
    clear_accounts(sim)
    assert (await get(client, "/accounts"))[1] == {"items": []}


async def test_the_polled_routes_need_a_key_and_keep_the_limits_and_faults(
        sim: VendorSimulator, client: TestClient, mono: MonoClock) -> None:
    two_campaigns(sim)
    for path in ("/campaigns/analytics", "/campaigns/analytics/daily", "/accounts"):
        assert (await client.get(f"{IN}{path}")).status == 401
    sim.inject("instantly", "error", status=503, path="/accounts")
    assert (await get(client, "/accounts"))[0] == 503
    sim.set_limit("instantly_second", (2, 1.0))
    statuses = [(await get(client, "/campaigns/analytics"))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    mono.advance(1.0)
    assert (await get(client, "/campaigns/analytics/daily"))[0] == 200
    assert [c.path for c in sim.calls_for("instantly", "GET")][-1] == "/campaigns/analytics/daily"


@pytest.fixture
async def control(sim: VendorSimulator, aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(sim.app)  # type: ignore[no-any-return]


async def test_the_control_routes(sim: VendorSimulator, control: TestClient) -> None:
    sim.add_campaign(f"instantly:{C1}", "1")
    resp = await control.put(f"/_sim/instantly/daily/instantly:{C1}", json={"2026-11-29": {"sent": 5, "bounced": 1}})
    assert resp.status == 200
    rows = await (await control.get(f"{IN}/campaigns/analytics", headers=AUTH)).json()
    assert (rows[0]["emails_sent_count"], rows[0]["bounced_count"]) == (5, 1)
    for body in ({"2026-11-29": {"emails": 1}}, {"yesterday": {"sent": 1}}, ["x"], {"2026-11-29": 5}):
        assert (await control.put(f"/_sim/instantly/daily/instantly:{C1}", json=body)).status == 400
    assert (await control.put(f"/_sim/instantly/daily/instantly:{C2}", json={})).status == 404

    resp = await control.post("/_sim/instantly/accounts", json={"email": "a@x.example", "status": -1,
                                                                 "warmup_score": 55, "key": "ws2-key"})
    assert resp.status == 201 and (await resp.json())["owner"] == sim.label("ws2-key") != "ws2-key"
    assert [a["email"] for a in await (await control.get("/_sim/instantly/accounts")).json()] == ["a@x.example"]
    for body in ({"status": 1}, {"email": "a@x.example", "status": "bad"}, {"email": "a@x.example", "colour": 1},
                 {"email": "a@x.example", "warmup_score": "high"}, {"email": "a@x.example", "key": ""}):
        assert (await control.post("/_sim/instantly/accounts", json=body)).status == 400
