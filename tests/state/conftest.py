"""The state tests' shared fixture: `url`, a fresh PostgreSQL database per test (tests/postgres_db.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.postgres_db import fresh_database


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_database() as created:
        yield created
