"""One rule's window for one key, driven by events and ticks on a virtual clock (the engine tests' harness)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Self

from bot.engine import Evaluation, evaluate, tick
from bot.events import Event
from bot.ruleset import Rule


class VirtualWindow:
    """Feed events (`feed`) and ticks (`tick`) to one rule at `now` (moved with `at`, from `start`); keeps the
    window each evaluation stores, as the worker does."""

    def __init__(self, rule: Rule, start: datetime, key: str = "smartlead:1") -> None:
        self.rule, self.key, self.n, self.start = rule, key, 0, start
        self.window: dict[str, Any] | None = None
        self.now = start

    def at(self, **delta: float) -> Self:
        self.now = self.start + timedelta(**delta)
        return self

    def _take(self, result: Evaluation) -> Evaluation:
        if result.window is not None:
            self.window = result.window
        return result

    def feed(self, event: Event) -> Evaluation:
        return self._take(evaluate(self.rule, event, self.window, self.now))

    def tick(self) -> Evaluation:
        assert self.window is not None
        before = dict(self.window)
        result = tick(self.rule, self.key, self.window, self.now)
        assert self.window == before                            # tick never modifies the stored state
        return self._take(result)
