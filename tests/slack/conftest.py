"""The Slack tests' shared fixtures: a fake Slack (tests/slack/fake_slack.py) and its Web API URL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.slack.fake_slack import FakeSlack


@pytest.fixture
def slack() -> FakeSlack:
    return FakeSlack()


@pytest.fixture
async def api_url(slack: FakeSlack, aiohttp_server: Any) -> str:
    server = await aiohttp_server(slack.app)
    return str(server.make_url("/api/"))
