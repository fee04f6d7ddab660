"""Slack end to end on a real RabbitMQ: signed commands and clicks → web → RabbitMQ → worker → vendor
simulator → reply on a fake `response_url`; notices to a fake Slack Web API, retried while it is down."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.broker.topology import Names
from bot.config import Settings
from bot.service import Services, running
from bot.testing import DEFAULT_KEYS, VendorSimulator
from tests.conftest import REPO
from tests.integration.conftest import delete_prefix
from tests.slack.fake_slack import FakeSlack, Received, click_body, command_body, slack_headers

pytestmark = pytest.mark.integration

SIGNING = "it-slack-signing-secret"
TOKEN = "xoxb-it-bot-token-0000"
EVENTS_TOKEN = "it-events-token"
RETRY_DELAYS = (0.05, 0.1)
ADMIN, PAUSER, GUEST = "UADMIN", "UPAUSER", "UGUEST"
_triggers = itertools.count(1)


@dataclass
class Bot:
    services: Services
    sim: VendorSimulator
    slack: FakeSlack
    web: str
    slack_url: str
    http: aiohttp.ClientSession

    @property
    def store(self) -> Any:
        assert self.services.store is not None
        return self.services.store

    async def command(self, text: str, user: str = ADMIN) -> str:
        """Post a signed slash command; return the id its reply will be posted under."""
        rid = f"r{next(_triggers)}"
        body = command_body(text, user=user, response_url=f"{self.slack_url}/response/{rid}", trigger=f"1.{rid}")
        async with self.http.post(f"{self.web}/slack/commands", data=body,
                                  headers=slack_headers(body, SIGNING)) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["response_type"] == "ephemeral"
        return rid

    async def click(self, action: str, value: dict[str, Any], user: str = ADMIN,
                    blocks: list[dict[str, Any]] | None = None) -> str:
        rid = f"c{next(_triggers)}"
        body = click_body(action, value, user=user, response_url=f"{self.slack_url}/response/{rid}",
                          trigger=f"2.{rid}", blocks=blocks)
        async with self.http.post(f"{self.web}/slack/interactions", data=body,
                                  headers=slack_headers(body, SIGNING)) as resp:
            assert resp.status == 200, await resp.text()
        return rid

    async def reply(self, rid: str, count: int = 1) -> Received:
        async with asyncio.timeout(20):
            await self.slack.wait_for(lambda s: len(s.replies(rid)) >= count)
        return self.slack.replies(rid)[count - 1]

    async def text(self, text: str, user: str = ADMIN) -> str:
        return str((await self.reply(await self.command(text, user))).body["text"])

    async def spike(self, campaign: str, *, sends: int = 100, bounces: int = 4) -> None:
        """Send a bounce spike as canonical events (one request) and wait until the worker handled it."""
        assert self.services.worker is not None
        events = [{"id": f"{campaign}-{kind}-{n}", "type": kind, "campaign": campaign,
                   "occurred_at": "2026-11-23T09:00:00Z"}
                  for kind, count in (("email.sent", sends), ("email.bounced", bounces)) for n in range(count)]
        before = self.services.worker.handled.total()
        async with self.http.post(f"{self.web}/webhooks/events", json={"events": events},
                                  headers={"Authorization": f"Bearer {EVENTS_TOKEN}"}) as resp:
            assert resp.status == 202, await resp.text()
        async with asyncio.timeout(30):
            await self.services.worker.wait_handled(before + len(events))

    async def notice(self, kind: str, campaign: str) -> Received:
        def find(s: FakeSlack) -> Received | None:
            return next((r for r in s.api_posts() if campaign in r.body["text"] and
                         f"· {kind} ·" in json.dumps(r.body["blocks"], ensure_ascii=False)), None)
        async with asyncio.timeout(20):
            await self.slack.wait_for(lambda s: find(s) is not None)
        found = find(self.slack)
        assert found is not None
        return found

    def vendor_writes(self, campaign_id: str) -> list[Any]:
        return [c for c in self.sim.calls if c.method == "POST" and f"/{campaign_id}/" in c.path]


@pytest.fixture
async def bot(amqp_url: str, prefix: str, aiohttp_server: Any, tmp_path: Path,
              request: pytest.FixtureRequest) -> AsyncIterator[Bot]:
    sim = VendorSimulator()
    for n in range(601, 606):
        sim.add_campaign(f"smartlead:{n}", "ACTIVE")
    sim_server = await aiohttp_server(sim.app)
    slack = FakeSlack()
    slack_server = await aiohttp_server(slack.app)
    slack_url = str(slack_server.make_url("")).rstrip("/")
    overrides = getattr(request, "param", {})
    settings = Settings(
        broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        rules_dir=REPO / "rules", http_port=0, retry_delays=RETRY_DELAYS, prefetch=8, vendor_max_attempts=1,
        smartlead_api_key=SecretStr(DEFAULT_KEYS["smartlead"]),
        smartlead_base_url=sim.base_urls(str(sim_server.make_url("")))["smartlead"],
        webhook_token=SecretStr(EVENTS_TOKEN), slack_signing_secret=SecretStr(SIGNING),
        slack_bot_token=SecretStr(TOKEN), slack_channel="C-GUARD", slack_api_url=f"{slack_url}/api/",
        slack_pause_users=f"{PAUSER}, {ADMIN}", slack_resume_users=ADMIN, slack_approve_users=ADMIN,
        slack_retry_delays=(0.02, 0.05), inventory_refresh=0,   # no background vendor reads
        **overrides,
    )
    try:
        async with running(settings, with_web=True, with_worker=True) as services, aiohttp.ClientSession() as http:
            yield Bot(services, sim, slack, f"http://127.0.0.1:{services.port}", slack_url, http)
    finally:
        await delete_prefix(amqp_url, Names(prefix), set(RETRY_DELAYS))


async def test_pause_and_resume_from_slack_act_once_and_say_what_happened(bot: Bot) -> None:
    text = await bot.text("pause smartlead:601 list bought from a broker")
    assert "hold placed by <@UADMIN>" in text and "paused in Smartlead" in text
    assert bot.sim.status_of("smartlead:601") == "PAUSED"
    [hold] = [h for h in await _holds(bot, "smartlead:601")]
    assert (hold.owner, hold.kind) == ("user:UADMIN", "person") and "list bought from a broker" in hold.reason
    await bot.notice("paused", "smartlead:601")                   # the channel hears about it too

    again = await bot.text("pause smartlead:601")                 # re-typed: state says it is done
    assert "already paused by you" in again and len(bot.vendor_writes("601")) == 1

    resumed = await bot.text("resume smartlead:601")
    assert "removed 1 hold(s) (`user:UADMIN`)" in resumed and "resumed in Smartlead" in resumed
    assert bot.sim.status_of("smartlead:601") == "ACTIVE"
    async with bot.store.transaction() as tx:
        override = await tx.override("smartlead:601", "bounce-guard", bot.services.worker._clock())
    assert override is not None and override[0] == "user:UADMIN"

    retyped = await bot.text("resume smartlead:601")
    assert "nothing to resume" in retyped and len(bot.vendor_writes("601")) == 2


async def test_several_campaigns_and_the_read_only_commands(bot: Bot) -> None:
    text = await bot.text("pause smartlead:602, smartlead:603 warm-up", user=PAUSER)
    assert text.count("paused in Smartlead") == 2
    assert bot.sim.status_of("smartlead:602") == bot.sim.status_of("smartlead:603") == "PAUSED"

    status = await bot.text("status smartlead:602", user=GUEST)   # read-only: open to everyone
    assert "Smartlead says *paused*" in status and "paused by campaign-guard" in status and "<@UPAUSER>" in status
    listed = await bot.text("list", user=GUEST)
    assert "2 campaign(s)" in listed and "smartlead:602" in listed and "smartlead:603" in listed
    assert "smartlead:602" in await bot.text("list held", user=GUEST)
    history = await bot.text("history smartlead:603", user=GUEST)
    assert "hold_placed" in history and "paused" in history
    assert "No campaign" not in listed


async def test_unknown_campaign_and_refusals_say_what_to_do(bot: Bot) -> None:
    missing = await bot.text("pause smartlead:999")
    assert "Smartlead has no campaign `999`" in missing and "nothing paused" in missing
    assert await _holds(bot, "smartlead:999") == []

    refused = await bot.text("pause smartlead:601", user=GUEST)
    assert "You may not pause" in refused and "BOT_SLACK_PAUSE_USERS" in refused
    refused = await bot.text("resume smartlead:601", user=PAUSER)
    assert "You may not resume" in refused and "BOT_SLACK_RESUME_USERS" in refused
    assert bot.vendor_writes("601") == [] and await _holds(bot, "smartlead:601") == []
    rows = [r for r in await bot.store.audit(campaign="smartlead:601") if r.kind == "refusal"]
    assert [(r.action, r.outcome) for r in rows] == [("pause", "refused"), ("resume", "refused")]
    assert "user:UGUEST may not pause" in rows[0].detail


async def test_resume_never_lifts_a_pause_campaign_guard_did_not_make(bot: Bot) -> None:
    bot.sim.set_status("smartlead:604", "PAUSED")                 # someone paused it in Smartlead
    bot.sim.set_status("smartlead:605", "PAUSED")                 # Smartlead paused it itself (below)
    text = await bot.text("resume smartlead:604")
    assert "was paused outside campaign-guard: resume it in Smartlead's UI" in text
    async with bot.http.post(f"{bot.web}/webhooks/events", headers={"Authorization": f"Bearer {EVENTS_TOKEN}"},
                             json={"id": "v1", "type": "campaign.paused", "campaign": "smartlead:605",
                                   "data": {"by": "system"}}) as resp:
        assert resp.status == 202
    assert bot.services.worker is not None
    async with asyncio.timeout(20):
        await bot.services.worker.wait_handled(1)
    text = await bot.text("resume smartlead:605")
    assert "Smartlead paused `smartlead:605` itself" in text and "resume it in Smartlead" in text
    assert bot.vendor_writes("604") == [] and bot.vendor_writes("605") == []


async def test_buttons_recheck_permission_and_the_campaign_state(bot: Bot) -> None:
    await bot.spike("smartlead:601")
    await bot.spike("smartlead:602")
    notice = await bot.notice("paused", "smartlead:601")
    assert "Resume" in json.dumps(notice.body["blocks"]) and bot.sim.status_of("smartlead:601") == "PAUSED"

    bot.sim.set_status("smartlead:601", "ACTIVE")                 # a person resumed it in Smartlead since
    rid = await bot.click("keep_paused", {"campaign": "smartlead:601"}, user=PAUSER, blocks=notice.body["blocks"])
    kept = (await bot.reply(rid)).body
    assert kept["replace_original"] is True and all(b["type"] != "actions" for b in kept["blocks"])
    assert "is active now: someone resumed it outside campaign-guard" in kept["text"]
    rid = await bot.click("resume", {"campaign": "smartlead:601"}, blocks=notice.body["blocks"])
    assert "already active (someone resumed it outside campaign-guard)" in (await bot.reply(rid)).body["text"]
    assert bot.sim.status_of("smartlead:601") == "ACTIVE" and len(bot.vendor_writes("601")) == 1

    rid = await bot.click("resume", {"campaign": "smartlead:602"}, user=PAUSER)   # may pause, not resume
    denied = (await bot.reply(rid)).body
    assert denied["replace_original"] is False and "You may not resume" in denied["text"]
    assert bot.sim.status_of("smartlead:602") == "PAUSED"
    rid = await bot.click("keep_paused", {"campaign": "smartlead:602"}, user=PAUSER)
    assert "stays paused: <@UPAUSER> holds it now" in (await bot.reply(rid)).body["text"]
    rid = await bot.click("resume", {"campaign": "smartlead:602"})
    resumed = (await bot.reply(rid)).body["text"]
    assert "removed 2 hold(s)" in resumed and "resumed in Smartlead" in resumed
    assert bot.sim.status_of("smartlead:602") == "ACTIVE"
    refusals = [r for r in await bot.store.audit(campaign="smartlead:602") if r.kind == "refusal"]
    assert len(refusals) == 1 and refusals[0].action == "resume"


@pytest.mark.parametrize("bot", [{"breaker_limit": 1}], indirect=True)
async def test_approve_and_reject_parked_pauses_from_buttons(bot: Bot) -> None:
    await bot.spike("smartlead:601")                              # the one pause the breaker allows
    await bot.spike("smartlead:602")                              # parked
    await bot.spike("smartlead:603")                              # parked
    assert bot.sim.status_of("smartlead:602") == bot.sim.status_of("smartlead:603") == "ACTIVE"
    decisions = {}
    for campaign in ("smartlead:602", "smartlead:603"):
        notice = await bot.notice("pending_decision", campaign)
        [actions] = [b for b in notice.body["blocks"] if b["type"] == "actions"]
        decisions[campaign] = json.loads(actions["elements"][0]["value"])
    rid = await bot.click("approve", decisions["smartlead:602"], user=PAUSER)
    assert "You may not approve" in (await bot.reply(rid)).body["text"]
    rid = await bot.click("approve", decisions["smartlead:602"])
    assert "approved by <@UADMIN>" in (await bot.reply(rid)).body["text"]
    assert bot.sim.status_of("smartlead:602") == "PAUSED"
    rid = await bot.click("reject", decisions["smartlead:603"])
    assert "rejected by <@UADMIN>" in (await bot.reply(rid)).body["text"]
    rid = await bot.click("reject", decisions["smartlead:603"])    # a second click: already decided
    assert "already rejected" in (await bot.reply(rid)).body["text"]
    assert bot.sim.status_of("smartlead:603") == "ACTIVE"


async def test_slack_down_never_blocks_a_decision_and_notices_are_retried(bot: Bot) -> None:
    bot.slack.fail_api = [503, 503, "ratelimited"]
    await bot.spike("smartlead:601")
    assert bot.sim.status_of("smartlead:601") == "PAUSED"        # applied while Slack was failing
    await bot.notice("paused", "smartlead:601")
    assert bot.services.outbox is not None
    # the bounce guard's warning (at 2%), then the pause: two notices of one incident, retried through the
    # three failures in turn
    items = [i for i in await bot.services.outbox.items() if "smartlead:601" in json.dumps(i.payload)
             and i.target == "channel"]
    assert len(items) == 2
    async with asyncio.timeout(10):
        settled = [await bot.services.outbox.wait_settled(i.id) for i in items]
    attempts = [a for i in items for a in await bot.services.outbox.attempts(i.id)]
    assert [a.ok for a in attempts].count(False) == 3
    assert all(i.status == "sent" and i.result.startswith("ok ts=") for i in settled)


async def test_vendor_down_is_reported_and_the_retry_finishes_the_pause(bot: Bot) -> None:
    bot.sim.inject("smartlead", "error", status=503, times=2)     # the status read and the reconcile's read
    rid = await bot.command("pause smartlead:601")
    first = (await bot.reply(rid)).body["text"]
    assert "Smartlead is not answering" in first and "retries automatically" in first
    async with asyncio.timeout(20):
        await bot.sim.wait_for_status("smartlead:601", "PAUSED")
    async with asyncio.timeout(20):
        await bot.slack.wait_for(lambda s: any("Update:" in r.body["text"] for r in s.replies(rid)))
    assert "paused in Smartlead" in bot.slack.replies(rid)[-1].body["text"]


async def _holds(bot: Bot, campaign: str) -> list[Any]:
    async with bot.store.transaction() as tx:
        return [h for h in await tx.holds(campaign) if h.kind not in ("shadow", "suppressed", "pending")]
