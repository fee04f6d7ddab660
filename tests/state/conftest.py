"""The state tests' shared fixture: `url`, a fresh PostgreSQL database per test (tests/postgres_db.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.state.postgres import PostgresStateStore
from bot.state.protocol import StateStore
from bot.state.sqlite import SqliteStateStore
from tests.postgres_db import fresh_database


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_database() as created:
        yield created


@pytest.fixture(params=["sqlite", "postgres"])
async def state_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """The state store on SQLite and on a fresh PostgreSQL database: what every store must do, on both."""
    if request.param == "sqlite":
        async with SqliteStateStore.open(tmp_path / "state.db") as store:
            yield store
    else:
        async with fresh_database() as url, PostgresStateStore.open(url) as store:
            yield store
