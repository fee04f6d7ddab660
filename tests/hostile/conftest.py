"""Hostile-input fixtures: a clean environment, and the real-RabbitMQ fixtures for the poison tests."""

from __future__ import annotations

import os

import pytest

from tests.integration.conftest import amqp_url, brokers, prefix, raw

__all__ = ["amqp_url", "brokers", "prefix", "raw"]


@pytest.fixture(autouse=True)
def _no_bot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, never from the developer's BOT_* variables."""
    for name in list(os.environ):
        if name.startswith("BOT_") and name != "BOT_TEST_AMQP_URL" and name != "BOT_HYPOTHESIS_EXAMPLES":
            monkeypatch.delenv(name)
