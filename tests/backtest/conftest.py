"""Fixtures for the backtest tests: the recorded-events fixture and a CLI runner that keeps logging uncached."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from bot import cli
from bot.log import configure_logging

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "three-days.jsonl"


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], int]:
    """`bot.cli.main`, configuring structlog without caching loggers (later tests capture logs)."""
    monkeypatch.setattr(cli, "configure_logging", functools.partial(configure_logging, cache=False))
    return cli.main
