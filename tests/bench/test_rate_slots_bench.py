"""Smoke test: the rate-slot benchmark runs briefly against the test PostgreSQL and prints each figure (no
assertion on speed)."""

from __future__ import annotations

import pytest

from bench import rate_slots
from tests.postgres_db import fresh_database


async def test_rate_slots_bench_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    async with fresh_database():            # skips (or fails in CI) without a PostgreSQL server
        pass
    await rate_slots.main(takes=16)
    out = capsys.readouterr().out
    figures = [line for line in out.splitlines() if "median" in line and "p99" in line]
    assert [line.split("median")[0].strip() for line in figures] == [
        "take, lone, 10 live slots", "done, lone, 10 live slots", "take, 16 at once, 10 live slots",
        "take, lone, 6,000 live slots", "done, lone, 6,000 live slots", "take, 16 at once, 6,000 live slots",
        "SharedLimiter acquire+release, 10 live slots"]
