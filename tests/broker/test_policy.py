"""Retry tier choice and dead-letter reasons shared by both brokers."""

from __future__ import annotations

import pytest

from bot.broker.policy import MAX_REASON, choose_delay, exception_reason, exhausted_reason
from bot.broker.topology import Names, tier_ms

DELAYS = (1.0, 5.0, 30.0)


@pytest.mark.parametrize(
    ("retries", "requested", "expected"),
    [
        (0, None, 1.0),
        (1, None, 5.0),
        (2, None, 30.0),
        (3, None, None),  # every tier used: exhausted
        (0, 4.0, 5.0),  # Retry-After 4 s: the smallest tier that is long enough
        (0, 0.5, 1.0),  # shorter than the tier: the tier wins
        (1, 999.0, 30.0),  # longer than any tier: the longest tier
    ],
)
def test_choose_delay(retries: int, requested: float | None, expected: float | None) -> None:
    assert choose_delay(retries, requested, DELAYS) == expected


def test_no_delays_means_no_retry() -> None:
    assert choose_delay(0, None, ()) is None


def test_reasons_are_one_bounded_line_without_secrets() -> None:
    assert exception_reason(KeyError("x")) == "KeyError: 'x'"
    assert exception_reason(RuntimeError()) == "RuntimeError"
    assert exhausted_reason("429\nfrom vendor") == "retries exhausted: 429 from vendor"
    long = exception_reason(ValueError("y" * 5000))
    assert len(long) == MAX_REASON and long.endswith("…")
    assert "sk-123" not in exception_reason(ValueError("GET /x?api_key=sk-123 failed"))


def test_names_and_tiers() -> None:
    names = Names("cg")
    assert tier_ms((0.05, 1.0, 1.0, 0.0004)) == [0, 50, 1000]
    assert names.all_queues((1.0, 5.0)) == ["cg.work", "cg.dead", "cg.retry.1000", "cg.retry.5000"]
    assert names.all_exchanges() == ["cg.events", "cg.dead"]
