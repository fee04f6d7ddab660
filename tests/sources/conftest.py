"""Fixtures for normalizer tests: payload files and a fixed arrival time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"


@pytest.fixture
def payload() -> Callable[[str], bytes]:
    """Raw bytes of tests/payloads/<name>."""
    return lambda name: (PAYLOADS / name).read_bytes()


@pytest.fixture
def received_at() -> datetime:
    return datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
