"""The Slack tests' shared fixtures: a fake Slack (tests/slack/fake_slack.py) and its Web API URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.state.outbox import Outbox, SqliteOutbox
from tests.postgres_db import fresh_database, open_outbox
from tests.slack.fake_slack import FakeSlack


@pytest.fixture
def slack() -> FakeSlack:
    return FakeSlack()


@pytest.fixture
async def api_url(slack: FakeSlack, aiohttp_server: Any) -> str:
    server = await aiohttp_server(slack.app)
    return str(server.make_url("/api/"))


@pytest.fixture(params=["sqlite", "postgres"])
async def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outbox]:
    """The Slack outbox on SQLite and on a fresh PostgreSQL database (a module may narrow it to SQLite)."""
    if request.param == "sqlite":
        async with SqliteOutbox.open(tmp_path / "state.db") as opened:
            yield opened
    else:
        async with fresh_database() as url, open_outbox(url) as opened:
            yield opened
