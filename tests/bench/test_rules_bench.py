"""Smoke test: the rules benchmark runs with tiny counts and prints its figures (no assertion on speed)."""

from __future__ import annotations

import functools

import pytest

from bench import rules_bench
from bot.log import configure_logging


def test_rules_bench_runs_and_prints_both_figures(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(rules_bench, "configure_logging", functools.partial(configure_logging, cache=False))
    assert rules_bench.main(["--events", "60", "--e2e-events", "30", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "pure path (for_type + evaluate), 1,000 rules" in out and "without the type index" in out
    assert out.count("ratio 1,000 / 10 rules") == 2 and "Worker.handle end to end" in out
    assert len(rules_bench.rule_sets()[1000]) == 1000
