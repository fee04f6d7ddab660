"""Shared fixtures: a frozen clock, a SQLite store, a recording fake vendor, structlog capture."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from bot.errors import VendorUnavailable, WriteCancelled
from bot.log import configure_logging
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignStatus, Guard, Observation, WriteResult
from bot.vendors.http import VendorRefused

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
    """Implements CampaignVendor in memory, with the vendors' semantics: a read vendor (Smartlead-like)
    proves a write by reading before and after; a vendor without reads (`can_read_state=False`,
    Leadterra-like) answers a no-op pause of a paused or draft campaign with its current state (not
    proven) and LAUNCHES a draft on resume. Records every call; can fail on demand; `gate` (an
    asyncio.Event) holds every write before it is sent, as a rate-limit wait does; `people` act in the UI."""

    def __init__(self, name: str = "smartlead", *, can_read_state: bool = True) -> None:
        self.name = name
        self.can_read_state = can_read_state
        self.statuses: dict[str, CampaignStatus] = {}
        self.stamps: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []
        self.failures: list[Exception] = []
        self.gate: asyncio.Event | None = None
        #: set once a write waits at `gate` (what a test waits for instead of spinning the loop)
        self.at_gate = asyncio.Event()
        self.launched_drafts: list[str] = []

    def _call(self, op: str, campaign_id: str) -> None:
        self.calls.append((op, campaign_id))
        if self.failures:
            raise self.failures.pop(0)

    def set(self, campaign_id: str, status: CampaignStatus) -> None:
        """Change a status as a person in the vendor's UI does (the change stamp moves)."""
        self.statuses[campaign_id] = status
        self.stamps[campaign_id] = self.stamps.get(campaign_id, 0) + 1

    def _stamp(self, campaign_id: str) -> str | None:
        return f"t{self.stamps.get(campaign_id, 0)}" if self.can_read_state else None

    async def observe(self, campaign_id: str, *, background: bool = False) -> Observation:
        if not self.can_read_state:
            return Observation(CampaignStatus.UNKNOWN)
        self._call("state", campaign_id)
        return Observation(self.statuses.get(campaign_id, CampaignStatus.UNKNOWN), self._stamp(campaign_id))

    async def state(self, campaign_id: str) -> CampaignStatus:
        return (await self.observe(campaign_id)).status

    async def _send(self, op: str, campaign_id: str, guard: Guard | None) -> None:
        if self.gate is not None:
            self.at_gate.set()
            await self.gate.wait()
        if guard is not None and not await guard():
            raise WriteCancelled(self.name, f"POST {op} {campaign_id}", sent_before=False)
        self._call(op, campaign_id)

    async def _write_and_read(self, op: str, campaign_id: str, guard: Guard | None,
                              target: CampaignStatus) -> WriteResult:
        """A read vendor's write: send it, then read again; proven when the read shows the target."""
        await self._send(op, campaign_id, guard)
        self.set(campaign_id, target)
        after = await self.observe(campaign_id)
        return WriteResult(after.status, sent=True, proven=after.status is target, changed_at=after.changed_at)

    async def pause(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                    sent_at: datetime | None = None) -> WriteResult:
        if self.can_read_state:
            status = (current or await self.observe(campaign_id)).status
            if status is CampaignStatus.UNKNOWN:
                raise VendorRefused(self.name, f"pause of campaign {campaign_id}", "status unknown")
            if status is not CampaignStatus.ACTIVE:
                return WriteResult(status, sent=False, proven=False, detail=f"campaign is {status}")
            return await self._write_and_read("pause", campaign_id, guard, CampaignStatus.PAUSED)
        await self._send("pause", campaign_id, guard)
        status = self.statuses.get(campaign_id, CampaignStatus.UNKNOWN)
        if status is CampaignStatus.ACTIVE:
            self.set(campaign_id, CampaignStatus.PAUSED)
            return WriteResult(CampaignStatus.PAUSED, sent=True, proven=True)
        return WriteResult(status, sent=True, proven=False, detail=f"answer: {status}, pausedAt earlier")

    async def resume(self, campaign_id: str, *, current: Observation | None = None, guard: Guard | None = None,
                     sent_at: datetime | None = None) -> WriteResult:
        if self.can_read_state:
            status = (current or await self.observe(campaign_id)).status
            if status is CampaignStatus.ACTIVE:
                return WriteResult(status, sent=False, proven=False, detail="already active")
            if status is not CampaignStatus.PAUSED:
                raise VendorRefused(self.name, f"resume of campaign {campaign_id}", f"campaign is {status}")
            return await self._write_and_read("resume", campaign_id, guard, CampaignStatus.ACTIVE)
        await self._send("resume", campaign_id, guard)
        status = self.statuses.get(campaign_id, CampaignStatus.UNKNOWN)
        if status is CampaignStatus.DRAFT:
            self.launched_drafts.append(campaign_id)
        if status in (CampaignStatus.PAUSED, CampaignStatus.DRAFT):
            self.set(campaign_id, CampaignStatus.ACTIVE)
            return WriteResult(CampaignStatus.ACTIVE, sent=True, proven=True)
        return WriteResult(status, sent=True, proven=False)

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
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """For `campaign-guard` commands run in-process: no BOT_* variable of the machine's, the working
    directory a fresh one, and logging configured afresh by each command."""
    from bot import cli
    from bot.log import configure_logging

    for name in list(os.environ):
        if name.startswith("BOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "configure_logging", functools.partial(configure_logging, cache=False))


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
