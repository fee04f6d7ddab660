"""The simulated Smartlead's analytics (§1.4): overall-stats with percent-string rates, paged, per key and
date window; per-step statistics; faults, authentication and validation as on every other route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.testing import VendorSimulator
from bot.vendors.smartlead.sim_analytics import percent
from bot.vendors.smartlead.sim_data import campaign_stats, forget, set_campaign_stats
from tests.testing.conftest import Get

SL = "/smartlead/api/v1"
OVERALL = f"{SL}/analytics/campaign/overall-stats"
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
ALL_TIME = {"start_date": "2020-01-01", "end_date": "2026-12-31"}


def rows(body: Any) -> list[dict[str, Any]]:
    performance: list[dict[str, Any]] = body["data"]["campaign_wise_performance"]
    return performance


def test_percent_strings_as_smartlead_writes_them() -> None:
    assert [percent(8, 500), percent(45, 500), percent(1, 3), percent(0, 10), percent(5, 0)] == [
        "1.6%", "9%", "33.33%", "0%", "0%"]


async def test_overall_stats_documented_shape_and_percent_rates(sim: VendorSimulator, get: Get) -> None:
    sim.add_campaign("smartlead:7", "ACTIVE", name="Q3 outbound", leads=300)
    set_campaign_stats(sim, "smartlead:7", sent=500, opened=210, replied=45, bounced=8, positive_replied=9)
    set_campaign_stats(sim, "smartlead:7", sequence=2, sent=100, opened=30, replied=5, bounced=2)
    status, body = await get(OVERALL, **ALL_TIME)
    assert status == 200 and body["ok"] is True
    assert rows(body) == [{
        "id": 7, "campaign_name": "Q3 outbound", "sent": 600, "opened": 240, "replied": 50, "bounced": 10,
        "open_rate": "40%", "reply_rate": "8.33%", "bounce_rate": "1.67%", "positive_reply_rate": "18%",
        "positive_replied": 9, "unique_lead_count": 300, "unique_open_count": 240,
    }]


async def test_a_campaign_without_counts_is_listed_with_zeros(sim: VendorSimulator, get: Get) -> None:
    sim.add_campaign("smartlead:3", "DRAFTED")
    [row] = rows((await get(OVERALL, **ALL_TIME))[1])
    assert (row["id"], row["sent"], row["reply_rate"], row["bounce_rate"]) == (3, 0, "0%", "0%")


async def test_overall_stats_pages_with_limit_and_offset(sim: VendorSimulator, get: Get) -> None:
    for n in (5, 1, 4, 2, 3):
        sim.add_campaign(f"smartlead:{n}", "ACTIVE")
    pages = [[r["id"] for r in rows((await get(OVERALL, **ALL_TIME, limit=2, offset=o))[1])] for o in (0, 2, 4, 6)]
    assert pages == [[1, 2], [3, 4], [5], []]
    assert [r["id"] for r in rows((await get(OVERALL, **ALL_TIME))[1])] == [1, 2, 3, 4, 5]    # default 100


async def test_overall_stats_lists_only_the_keys_own_campaigns(sim: VendorSimulator, get: Get) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE", key="key-acme")
    sim.add_campaign("smartlead:2", "ACTIVE", key="key-globex")
    sim.add_campaign("smartlead:3", "ACTIVE")                 # no owner: every key sees it
    assert [r["id"] for r in rows((await get(OVERALL, key="key-acme", **ALL_TIME))[1])] == [1, 3]
    assert [r["id"] for r in rows((await get(OVERALL, key="key-globex", **ALL_TIME))[1])] == [2, 3]
    filtered = rows((await get(OVERALL, key="key-acme", campaign_ids="2,3", **ALL_TIME))[1])
    assert [r["id"] for r in filtered] == [3]                 # another key's campaign stays invisible


async def test_only_activity_inside_the_dates_counts(sim: VendorSimulator, get: Get) -> None:
    sim.wall = lambda: NOW
    sim.add_campaign("smartlead:9", "ACTIVE")
    set_campaign_stats(sim, "smartlead:9", sent=1000, replied=100, bounced=20,
                       first_sent_at=NOW - timedelta(days=99))          # 100 days of activity, today included

    async def sent(start: str, end: str) -> int:
        return int(rows((await get(OVERALL, start_date=start, end_date=end))[1])[0]["sent"])

    assert await sent("2026-03-23", "2026-06-30") == 1000                 # its whole life
    assert await sent("2016-07-03", "2026-07-01") == 1000                 # a window around it
    assert await sent("2026-06-21", "2026-06-30") == 100                  # its last 10 days
    assert await sent("2026-06-01", "2026-06-01") == 10                   # one day
    assert await sent("2026-01-01", "2026-03-22") == 0                    # before its first send
    assert await sent("2026-03-24", "2026-07-01") == 990                  # a lookback one day short


@pytest.mark.parametrize(("params", "complaint"), [
    ({}, "start_date is required"),
    ({"start_date": "2026-01-01"}, "end_date is required"),
    ({"start_date": "2026/01/01", "end_date": "2026-02-01"}, "start_date must be a date"),
    ({"start_date": "2026-03-01", "end_date": "2026-02-01"}, "must not be after"),
    ({**ALL_TIME, "limit": "0"}, "limit must be between 1 and 100"),
    ({**ALL_TIME, "limit": "101"}, "limit must be between 1 and 100"),
    ({**ALL_TIME, "offset": "-1"}, "offset must be"),
    ({**ALL_TIME, "campaign_ids": "1,x"}, "campaign_ids"),
])
async def test_overall_stats_refuses_what_smartlead_would(
    sim: VendorSimulator, get: Get, params: dict[str, str], complaint: str
) -> None:
    status, body = await get(OVERALL, **params)
    assert status == 400 and body["success"] is False and body["error"]["code"] == "VALIDATION_ERROR"
    assert complaint in body["error"]["message"]


async def test_authentication_and_every_fault_kind_apply(sim: VendorSimulator, get: Get) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    assert (await get(OVERALL, key=None, **ALL_TIME))[0] == 401
    assert (await get(OVERALL, key="wrong", **ALL_TIME))[0] == 401
    sim.inject("smartlead", "rate_limit", path="/analytics/campaign/overall-stats")
    sim.inject("smartlead", "error", status=500, path="/analytics/*")
    sim.inject("smartlead", "timeout", path="/campaigns/*/statistics", delay=0.01)
    assert (await get(OVERALL, **ALL_TIME))[0] == 429
    assert (await get(OVERALL, **ALL_TIME))[0] == 500
    assert (await get(f"{SL}/campaigns/1/statistics"))[0] == 504
    assert (await get(OVERALL, **ALL_TIME))[0] == 200
    assert [c.status for c in sim.calls] == [401, 401, 429, 500, 504, 200]


async def test_the_rate_limit_counts_analytics_reads(sim: VendorSimulator, get: Get) -> None:
    sim.set_limit("smartlead", (2, 60.0))
    assert [(await get(OVERALL, **ALL_TIME))[0] for _ in range(3)] == [200, 200, 429]


async def test_statistics_per_sequence_step(sim: VendorSimulator, get: Get) -> None:
    sim.add_campaign("smartlead:4", "ACTIVE", sequence_steps=3)
    set_campaign_stats(sim, "smartlead:4", sent=100, opened=40, clicked=5, replied=6, unsubscribed=1, bounced=2)
    set_campaign_stats(sim, "smartlead:4", sequence=3, sent=20, replied=1)
    status, body = await get(f"{SL}/campaigns/4/statistics")
    assert status == 200 and (body["ok"], body["offset"], body["limit"]) == (True, 0, 100)
    assert body["data"] == [
        {"campaign_id": 4, "sequence_number": 1, "sent": 100, "opened": 40, "clicked": 5, "replied": 6,
         "unsubscribed": 1, "bounced": 2},
        {"campaign_id": 4, "sequence_number": 3, "sent": 20, "opened": 0, "clicked": 0, "replied": 1,
         "unsubscribed": 0, "bounced": 0},
    ]
    assert [r["sequence_number"] for r in (await get(f"{SL}/campaigns/4/statistics", email_sequence_number=3))[1]
            ["data"]] == [3]
    assert [r["sequence_number"] for r in (await get(f"{SL}/campaigns/4/statistics", offset=1, limit=1))[1]
            ["data"]] == [3]
    assert (await get(f"{SL}/campaigns/4/statistics", limit=1001))[0] == 400
    assert (await get(f"{SL}/campaigns/4/statistics", email_sequence_number=21))[0] == 400
    assert (await get(f"{SL}/campaigns/4/statistics", email_status="sent"))[0] == 400
    assert (await get(f"{SL}/campaigns/5/statistics"))[0] == 404


async def test_counts_belong_to_the_campaign_they_were_set_on(sim: VendorSimulator, get: Get) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    set_campaign_stats(sim, "smartlead:1", sent=10)
    sim.reset()
    sim.add_campaign("smartlead:1", "ACTIVE")                 # a new campaign with the same id
    assert campaign_stats(sim, sim.campaign("smartlead:1")) is None
    assert rows((await get(OVERALL, **ALL_TIME))[1])[0]["sent"] == 0
    set_campaign_stats(sim, "smartlead:1", sent=10)
    forget(sim)
    assert rows((await get(OVERALL, **ALL_TIME))[1])[0]["sent"] == 0


def test_setting_counts_checks_its_arguments(sim: VendorSimulator) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    sim.add_campaign("leadterra:camp_1", "running")
    with pytest.raises(KeyError):
        set_campaign_stats(sim, "smartlead:2", sent=1)
    with pytest.raises(ValueError, match="not a Smartlead"):
        set_campaign_stats(sim, "leadterra:camp_1", sent=1)
    with pytest.raises(ValueError, match="sequence"):
        set_campaign_stats(sim, "smartlead:1", sequence=21, sent=1)
    with pytest.raises(ValueError, match="not negative"):
        set_campaign_stats(sim, "smartlead:1", sent=-1)
    with pytest.raises(ValueError, match="timezone"):
        set_campaign_stats(sim, "smartlead:1", sent=1, first_sent_at=datetime(2026, 1, 1))
