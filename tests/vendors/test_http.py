"""Shared vendor machinery: backoff, Retry-After, error details, envelopes, the sliding-window limiter."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from bot.vendors.base import CampaignStatus, Observation
from bot.vendors.http import RetryPolicy, error_detail, find_stamp, parse_retry_after
from bot.vendors.inbox.client import parse_observation as inbox_observation
from bot.vendors.ratelimit import SlidingWindowLimiter
from bot.vendors.smartlead.client import parse_observation, parse_status


def test_backoff_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=8.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        delays = {policy.delay(attempt, None) for _ in range(50)}
        assert all(d is not None and ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1                                       # jittered


def test_retry_after_is_honoured_or_ends_the_operation() -> None:
    policy = RetryPolicy(base_delay=0.5, max_retry_after=60)
    delay = policy.delay(1, 30)
    assert delay is not None and 30 <= delay <= 30.5
    assert policy.delay(1, 61) is None


def test_parse_retry_after() -> None:
    assert parse_retry_after("30", None) == 30
    assert parse_retry_after("0.25", None) == 0.25
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=100), usegmt=True)
    assert 95 <= (parse_retry_after(future, None) or 0) <= 100
    assert parse_retry_after(None, {"error": {"code": "RATE_LIMIT_EXCEEDED", "retry_after": 30}}) == 30
    assert parse_retry_after(None, {"retry_after": 2}) == 2
    assert parse_retry_after("soon", {}) is None
    assert parse_retry_after(None, []) is None


def test_error_detail_is_short_and_key_free() -> None:
    body = {"error": {"code": "BAD", "message": "key abc-SECRET-123 is wrong; see ?api_key=abc-SECRET-123"}}
    detail = error_detail(body, "", "abc-SECRET-123")
    assert "SECRET" not in detail and detail.startswith("BAD: key *** is wrong")
    assert len(error_detail({"message": "x" * 1000}, "")) == 200


async def test_limiter_never_exceeds_the_limit_in_any_window() -> None:
    limiter = SlidingWindowLimiter(3, 0.2)
    starts: list[float] = []

    async def request() -> None:
        async with limiter.slot():
            starts.append(time.monotonic())

    await asyncio.gather(*(request() for _ in range(10)))
    assert len(starts) == 10
    for index, moment in enumerate(starts):
        assert sum(1 for other in starts[index:] if other - moment < 0.2) <= 3
    # a token bucket would have let 3 through at once and the 4th..6th right after refilling
    assert starts[3] - starts[0] >= 0.2


async def test_limiter_slot_is_released_on_error() -> None:
    limiter = SlidingWindowLimiter(1, 0.01)
    with pytest.raises(RuntimeError):
        async with limiter.slot():
            raise RuntimeError("boom")
    async with asyncio.timeout(1):
        await limiter.acquire()
    limiter.release()
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 1)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"id": 123, "status": "ACTIVE"}, CampaignStatus.ACTIVE),
        ({"success": True, "data": {"id": 123, "status": "PAUSED"}}, CampaignStatus.PAUSED),
        ({"ok": True, "data": {"id": 123, "status": "DRAFTED"}}, CampaignStatus.DRAFT),
        ({"success": True, "campaign": {"id": 123, "status": "STOPPED"}}, CampaignStatus.STOPPED),
        ([{"id": 9, "status": "ACTIVE"}, {"id": 123, "status": "COMPLETED"}], CampaignStatus.COMPLETED),
        ({"success": True, "data": [{"id": 123, "status": "ARCHIVED"}]}, CampaignStatus.ARCHIVED),
        ({"id": 123, "status": "paused"}, CampaignStatus.PAUSED),
        ({"id": 123, "status": "WARMING"}, CampaignStatus.UNKNOWN),
        ({"success": True, "data": {}}, CampaignStatus.UNKNOWN),
        ({"status": 200, "data": {"id": 123}}, CampaignStatus.UNKNOWN),
        ([], CampaignStatus.UNKNOWN),
    ],
)
def test_every_documented_envelope_is_parsed(body: Any, expected: CampaignStatus) -> None:
    assert parse_status(body, "123")[0] is expected


@pytest.mark.parametrize(
    "body",
    [{"id": 123, "status": "PAUSED", "updated_at": "2026-11-30T12:00:00.123Z"},
     {"success": True, "data": {"id": 123, "status": "PAUSED", "updated_at": "2026-11-30T12:00:00.123Z"}},
     [{"id": 9, "status": "ACTIVE", "updated_at": "x"},
      {"id": 123, "status": "PAUSED", "updated_at": "2026-11-30T12:00:00.123Z"}]],
)
def test_the_change_stamp_is_read_verbatim(body: Any) -> None:
    assert parse_observation(body, "123") == Observation(CampaignStatus.PAUSED, "2026-11-30T12:00:00.123Z")


def test_a_missing_or_odd_change_stamp() -> None:
    assert parse_observation({"id": 123, "status": "ACTIVE"}, "123").changed_at is None
    assert find_stamp({"updated_at": 1700000000}, "1", "updated_at") == "1700000000"
    assert find_stamp({"updated_at": True}, "1", "updated_at") is None
    assert find_stamp({"updated_at": {"at": 1}}, "1", "updated_at") is None
    assert inbox_observation({"id": "a", "status": "paused", "updatedAt": "2026-11-30T12:00:00Z"}, "a") == \
        Observation(CampaignStatus.PAUSED, "2026-11-30T12:00:00Z")
