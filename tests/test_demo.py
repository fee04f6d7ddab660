"""`campaign-guard demo` plays its story end to end (memory broker, the simulator) and says it went as expected."""

from __future__ import annotations

from bot.config import Settings
from bot.demo import run_demo
from tests.conftest import REPO


async def test_the_demo_pauses_the_smartlead_and_the_instantly_spike_and_nothing_else() -> None:
    lines: list[str] = []
    assert await run_demo(Settings(rules_dir=REPO / "rules"), echo=lines.append) == 0
    text = "\n".join(lines)
    assert "result: as expected" in text
    assert "instantly POST /campaigns/6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b/pause -> 200" in text
    assert "already paused by someone else" in text
