"""Accounts end to end on a real RabbitMQ: two Smartlead client keys and one Instantly workspace.

Each key sees only its own campaigns in the simulator (another key gets the vendor's 404), so a write
sent with the wrong key fails. Bounce spikes arrive for campaigns of each account: written with the
account (`smartlead@acme:…`, `instantly@globex:…`) or without it (`smartlead:…`, placed in beta by the
inventory, which each key's `GET /campaigns` fills). Expected: each campaign paused once, with its own
account's key; each key's requests within its own rate limit; each notice in its account's channel; an
operator allowed on acme only is refused on beta's campaign, with why.
"""

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
from bot.testing import VendorSimulator, max_in_window
from tests.conftest import REPO
from tests.integration.conftest import delete_prefix
from tests.slack.fake_slack import FakeSlack, command_body, slack_headers

pytestmark = pytest.mark.integration

SIGNING, TOKEN, EVENTS_TOKEN = "acct-slack-signing", "xoxb-acct-0000", "acct-events-token"
KEYS = {"acme": "sl-key-acme-5d1c", "beta": "sl-key-beta-77e0", "globex": "in-key-globex-3a9f"}
RETRY_DELAYS = (0.05, 0.1)
ACME_OPERATOR = "UACME"
ACME = [f"smartlead@acme:{n}" for n in range(901, 906)]
BETA = [f"smartlead@beta:{n}" for n in range(911, 916)]
GLOBEX = [f"instantly@globex:5f0b3c9e-0000-4000-8000-0000000009{n:02d}" for n in range(2)]
_rids = itertools.count(1)


def _sim_ref(ref: str) -> str:
    """The simulator's name of a campaign: `vendor:id` (the account is the key that owns it)."""
    head, _, campaign_id = ref.partition(":")
    return f"{head.partition('@')[0]}:{campaign_id}"


@dataclass
class Bot:
    services: Services
    sim: VendorSimulator
    slack: FakeSlack
    web: str
    slack_url: str
    http: aiohttp.ClientSession

    async def spike(self, refs: list[str]) -> None:
        """A bounce spike for each campaign (100 sends, 4 bounces), as canonical events, one request per
        campaign, all at once."""
        async def post(ref: str) -> None:
            events = [{"id": f"{ref}-{kind}-{n}", "type": kind, "campaign": ref,
                       "occurred_at": "2026-11-30T09:00:00Z"}
                      for kind, count in (("email.sent", 100), ("email.bounced", 4)) for n in range(count)]
            async with self.http.post(f"{self.web}/webhooks/events", json={"events": events},
                                      headers={"Authorization": f"Bearer {EVENTS_TOKEN}"}) as resp:
                assert resp.status == 202, await resp.text()

        await asyncio.gather(*(post(ref) for ref in refs))

    async def command(self, text: str, user: str) -> str:
        rid = f"r{next(_rids)}"
        body = command_body(text, user=user, response_url=f"{self.slack_url}/response/{rid}", trigger=f"1.{rid}")
        async with self.http.post(f"{self.web}/slack/commands", data=body,
                                  headers=slack_headers(body, SIGNING)) as resp:
            assert resp.status == 200, await resp.text()
        async with asyncio.timeout(20):
            await self.slack.wait_for(lambda s: len(s.replies(rid)) >= 1)
        return str(self.slack.replies(rid)[0].body["text"])


@pytest.fixture
async def bot(amqp_url: str, prefix: str, aiohttp_server: Any, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    sim = VendorSimulator(keys={"smartlead": [KEYS["acme"], KEYS["beta"]], "instantly": [KEYS["globex"]]},
                          labels={key: name for name, key in KEYS.items()})
    for refs, name in ((ACME, "acme"), (BETA, "beta"), (GLOBEX, "globex")):
        for ref in refs:
            sim.add_campaign(_sim_ref(ref), "active", key=KEYS[name])
    sim_server = await aiohttp_server(sim.app)
    base = sim.base_urls(str(sim_server.make_url("")))
    slack = FakeSlack()
    slack_server = await aiohttp_server(slack.app)
    slack_url = str(slack_server.make_url("")).rstrip("/")
    accounts = [
        {"vendor": "smartlead", "name": "acme", "api_key": KEYS["acme"], "base_url": base["smartlead"],
         "client": "Acme Corp", "slack_channel": "C-ACME", "pause_users": ACME_OPERATOR},
        {"vendor": "smartlead", "name": "beta", "api_key": KEYS["beta"], "base_url": base["smartlead"],
         "client": "Beta Ltd"},
        {"vendor": "instantly", "name": "globex", "api_key": KEYS["globex"], "base_url": base["instantly"],
         "slack_channel": "C-GLOBEX", "workspace": "globex"},
    ]
    for index, account in enumerate(accounts, 1):
        for key, value in account.items():
            monkeypatch.setenv(f"BOT_ACCOUNT_{index}_{key.upper()}", value)
    settings = Settings(
        broker_url=SecretStr(amqp_url), broker_prefix=prefix, state_url=f"sqlite:///{tmp_path / 'state.db'}",
        rules_dir=REPO / "rules", http_port=0, retry_delays=RETRY_DELAYS, prefetch=16,
        webhook_token=SecretStr(EVENTS_TOKEN), slack_signing_secret=SecretStr(SIGNING),
        slack_bot_token=SecretStr(TOKEN), slack_channel="C-DEFAULT", slack_api_url=f"{slack_url}/api/",
        slack_retry_delays=(0.02, 0.05),
    )
    try:
        async with running(settings, with_web=True, with_worker=True) as services, aiohttp.ClientSession() as http:
            assert services.inventory_refresher is not None
            async with asyncio.timeout(20):
                await services.inventory_refresher.wait_rounds(1)     # each key's campaigns listed
            yield Bot(services, sim, slack, f"http://127.0.0.1:{services.port}", slack_url, http)
    finally:
        await delete_prefix(amqp_url, Names(prefix), set(RETRY_DELAYS))


async def test_each_account_is_paused_with_its_own_key_within_its_own_limit_and_told_in_its_channel(bot: Bot) -> None:
    beta_plain = [ref.replace("@beta", "") for ref in BETA]      # placed in beta by the inventory
    await bot.spike(ACME + beta_plain + GLOBEX)
    assert bot.services.worker is not None
    async with asyncio.timeout(60):
        await bot.services.worker.wait_handled(104 * len(ACME + BETA + GLOBEX))
    assert {bot.sim.status_of(_sim_ref(ref)) for ref in ACME + BETA} == {"PAUSED"}
    assert {bot.sim.status_of(_sim_ref(ref)) for ref in GLOBEX} == {"2"}

    writes = [c for c in bot.sim.calls if c.method == "POST"]
    owner = {_sim_ref(ref).partition(":")[2]: name
             for refs, name in ((ACME, "acme"), (BETA, "beta"), (GLOBEX, "globex")) for ref in refs}
    # each campaign written once, with its own account's key (another key would have had a 404)
    assert sorted(c.path.split("/")[2] for c in writes) == sorted(owner)
    assert all(c.credential == owner[c.path.split("/")[2]] and c.status == 200 for c in writes)
    assert all(c.status != 404 for c in bot.sim.calls)
    # each key's requests within its own limit (10 per 2 s for Smartlead), none refused
    for name in ("acme", "beta"):
        mine = [c for c in bot.sim.calls if c.credential == name]
        assert mine and max_in_window(mine, 2.0) <= 10
    assert all(c.status != 429 for c in bot.sim.calls)
    # the state knows each campaign under its account
    store = bot.services.store
    assert store is not None
    for ref in ACME + BETA + GLOBEX:
        async with store.transaction() as tx:
            assert (await tx.campaign(ref)).bot_paused, ref

    # each notice in its account's channel: acme's and globex's own, beta's the default
    def channels() -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for post in bot.slack.api_posts():
            text = json.dumps(post.body)
            for ref in ACME + BETA + GLOBEX:
                if ref in text:
                    seen.setdefault(ref, set()).add(str(post.body.get("channel")))
        return seen

    async with asyncio.timeout(20):
        await bot.slack.wait_for(lambda s: set(channels()) == set(ACME + BETA + GLOBEX))
    seen = channels()
    assert all(seen[ref] == {"C-ACME"} for ref in ACME)
    assert all(seen[ref] == {"C-DEFAULT"} for ref in BETA)
    assert all(seen[ref] == {"C-GLOBEX"} for ref in GLOBEX)


async def test_an_operator_of_one_account_is_refused_on_anothers_campaign(bot: Bot) -> None:
    refused = await bot.command(f"pause {BETA[0]} spam trap", user=ACME_OPERATOR)
    assert "acme" in refused and "beta" in refused and BETA[0] in refused
    assert bot.sim.status_of(_sim_ref(BETA[0])) == "ACTIVE"
    assert not [c for c in bot.sim.calls if c.method == "POST"]

    done = await bot.command(f"pause {ACME[0]} spam trap", user=ACME_OPERATOR)
    assert "paused in Smartlead" in done
    assert bot.sim.status_of(_sim_ref(ACME[0])) == "PAUSED"
    [write] = [c for c in bot.sim.calls if c.method == "POST"]
    assert write.credential == "acme"
    assert bot.services.store is not None
    refusals = [r for r in await bot.services.store.audit(campaign=BETA[0]) if r.kind == "refusal"]
    assert len(refusals) == 1 and ACME_OPERATOR in refusals[0].detail
