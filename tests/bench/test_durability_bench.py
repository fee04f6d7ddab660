"""Smoke test: the durability benchmark runs briefly and prints both modes (no assertion on speed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import durability


async def test_durability_bench_prints_normal_and_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await durability.main(tmp_path, seconds=0.05, repeat=1)
    out = capsys.readouterr().out
    assert "events/s" in out and "COMMITs/s" in out
    rows = [line.split()[:2] for line in out.splitlines() if line.startswith(("NORMAL ", "FULL "))]
    assert rows == [["NORMAL", "1"], ["FULL", "1"], ["NORMAL", "16"], ["FULL", "16"]]
    assert "FULL/NORMAL with 16 writer(s)" in out
    assert os.listdir(tmp_path) == []                           # the databases are removed


async def test_the_store_opens_with_synchronous_full(tmp_path: Path) -> None:
    from bot.state.sqlite import SqliteStateStore

    async with SqliteStateStore.open(tmp_path / "state.db") as store:
        (mode,) = await (await store._db.execute("PRAGMA synchronous")).fetchone()
    assert mode == 2                                            # FULL: a COMMIT is fsynced
