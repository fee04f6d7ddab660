"""Shared fixtures: a frozen clock, a SQLite store, a recording fake vendor, structlog capture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from bot.errors import VendorUnavailable
from bot.log import configure_logging
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignStatus

REPO = Path(__file__).resolve().parent.parent


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.current = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)


class FakeVendor:
    """Implements CampaignVendor in memory; records every call; can fail on demand."""

    def __init__(self, name: str = "smartlead", *, can_read_state: bool = True) -> None:
        self.name = name
        self.can_read_state = can_read_state
        self.statuses: dict[str, CampaignStatus] = {}
        self.calls: list[tuple[str, str]] = []
        self.failures: list[Exception] = []

    def _call(self, op: str, campaign_id: str) -> None:
        self.calls.append((op, campaign_id))
        if self.failures:
            raise self.failures.pop(0)

    async def state(self, campaign_id: str) -> CampaignStatus:
        self._call("state", campaign_id)
        return self.statuses.get(campaign_id, CampaignStatus.UNKNOWN)

    async def pause(self, campaign_id: str, *, current: CampaignStatus | None = None) -> CampaignStatus:
        self._call("pause", campaign_id)
        self.statuses[campaign_id] = CampaignStatus.PAUSED
        return CampaignStatus.PAUSED

    async def resume(self, campaign_id: str, *, current: CampaignStatus | None = None) -> CampaignStatus:
        self._call("resume", campaign_id)
        self.statuses[campaign_id] = CampaignStatus.ACTIVE
        return CampaignStatus.ACTIVE

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "state"]

    def fail_next(self, count: int = 1, exc: Exception | None = None) -> None:
        self.failures.extend([exc or VendorUnavailable(self.name, 503, "POST /x")] * count)


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    configure_logging(json=True, level="debug", cache=False)
    yield
    structlog.reset_defaults()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    async with SqliteStateStore.open(tmp_path / "state.db") as opened:
        yield opened


@pytest.fixture
def fake_vendor() -> FakeVendor:
    return FakeVendor()


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured
