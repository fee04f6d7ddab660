"""Slack unreachable (nothing listens at its address): pauses are still applied at once; their notices wait
in the outbox, every failed attempt recorded, survive a restart of the worker, and are delivered exactly
once when Slack answers again."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.config import Settings
from bot.service import running
from bot.testing import DEFAULT_KEYS
from tests.conftest import REPO
from tests.faults.conftest import Sim, db_count, db_rows, publish_all, spike_stream, until
from tests.slack.fake_slack import FakeSlack

pytestmark = pytest.mark.integration

RETRY_DELAYS = (0.2, 0.5)
CHANNEL = "C-FAULTS"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _failed_attempts(state: Path) -> Counter[int]:
    return Counter(r[0] for r in db_rows(state, "SELECT outbox_id FROM outbox_attempts WHERE ok = 0"))


@pytest.mark.timeout(90)
async def test_slack_unreachable_never_blocks_a_pause_and_each_notice_arrives_once_later(
        amqp_url: str, prefix: str, served_sim: Sim, tmp_path: Path, cleanup_prefix: Any, figures: Any) -> None:
    sim, state = served_sim.sim, tmp_path / "state.db"
    cleanup_prefix(RETRY_DELAYS)
    campaigns = [f"smartlead:{6001 + n}" for n in range(3)]
    for ref in campaigns:
        sim.add_campaign(ref, "ACTIVE")
    events = spike_stream(random.Random(7), campaigns, set(campaigns), tag="slack")
    port = _free_port()                                     # nothing listens there until Slack is "back"
    settings = Settings(
        broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=f"sqlite:///{state}",
        rules_dir=REPO / "rules", http_port=0, retry_delays=RETRY_DELAYS, inventory_refresh=0, drain_seconds=1,
        smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]), smartlead_base_url=served_sim.smartlead_url,
        slack_bot_token=SecretStr("xoxb-faults-0000"), slack_channel=CHANNEL,
        slack_api_url=f"http://127.0.0.1:{port}/api/", slack_retry_delays=(0.1, 0.2), slack_max_attempts=100,
    )
    started = time.monotonic()
    async with running(settings, with_web=False, with_worker=True) as services:
        await publish_all(services.broker, events)
        for ref in campaigns:                               # applied while Slack cannot be reached
            await sim.wait_for_status(ref, "PAUSED", timeout=20)
        paused_in = time.monotonic() - started
        # Attempts are rows in the state database: poll them (a few retries each, all failed).
        await until(lambda: len(_failed_attempts(state)) == len(campaigns)
                    and min(_failed_attempts(state).values()) >= 3, timeout=20, what="failed Slack attempts")
    # The worker stopped with Slack still unreachable: the notices wait in the outbox.
    queued = db_rows(state, "SELECT id, status, payload FROM outbox ORDER BY id")
    failed_before = _failed_attempts(state)
    details = {r[0] for r in db_rows(state, "SELECT detail FROM outbox_attempts WHERE ok = 0")}
    assert [r[1] for r in queued] == ["queued"] * len(campaigns)
    assert all(d.startswith("network:") for d in details), details
    assert db_count(state, "SELECT COUNT(*) FROM outbox_attempts WHERE ok = 1") == 0

    slack = FakeSlack()
    runner = web.AppRunner(slack.app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with running(settings, with_web=False, with_worker=True) as services:
            assert services.outbox is not None
            for item_id, _, _ in queued:
                async with asyncio.timeout(20):
                    item = await services.outbox.wait_settled(item_id)
                assert item.status == "sent", item
    finally:
        await runner.cleanup()

    posts = slack.api_posts()
    mentions = Counter(ref for ref in campaigns for post in posts if ref in json.dumps(post.body))
    assert mentions == Counter(dict.fromkeys(campaigns, 1)), "each notice exactly once"
    assert len(posts) == len(campaigns)
    assert all(p.body["channel"] == CHANNEL for p in posts)
    actions = db_rows(state, "SELECT campaign, outcome FROM audit WHERE kind = 'action'")
    assert sorted(actions) == sorted((ref, "paused") for ref in campaigns)
    assert Counter(c.path for c in sim.calls if c.method == "POST") == Counter(
        {f"/campaigns/{ref.partition(':')[2]}/status": 1 for ref in campaigns})
    figures(f"{len(campaigns)} pauses applied {paused_in:.1f} s after the spike with Slack unreachable; "
            f"{sum(failed_before.values())} failed delivery attempts recorded ({sorted(details)}); notices kept "
            f"across a worker restart, then delivered {len(posts)} (once each)")
