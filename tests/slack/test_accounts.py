"""Accounts in Slack (issue 11): per-account people, placement of plain refs, `list` scopes, and notices
routed to the account's channel (shadow digests per channel).

Two Smartlead accounts: acme (client Acme Corp, UA may pause its campaigns) and beta (client Beta Ltd,
channel C-BETA). UG is in the global lists; UX in none. The inventory lists acme:1, acme:5, beta:1 and
beta:7, so `smartlead:1` is ambiguous, `smartlead:5` is acme's and `smartlead:999` nobody's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.accounts import Account, Accounts
from bot.config import Settings
from bot.errors import VendorAuthError
from bot.events import CampaignRef, Event
from bot.executor import Executor
from bot.notify import Notice
from bot.slack.commands import UsageError, command_event, help_text, parse_command
from bot.slack.delivery import SlackDeliverer, SlackNotifier
from bot.slack.operator import SlackOperator
from bot.slack.views import read_vendor
from bot.state.outbox import SqliteOutbox
from bot.vendors.base import CampaignStatus
from bot.vendors.spec import VendorConfig
from tests.conftest import FakeVendor

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ACME = Account("smartlead", "acme", VendorConfig("smartlead", {}), client="Acme Corp",
               users={"pause": frozenset({"UA"})})
BETA = Account("smartlead", "beta", VendorConfig("smartlead", {}), client="Beta Ltd", slack_channel="C-BETA")
LISTED = frozenset({"smartlead@acme:1", "smartlead@acme:5", "smartlead@beta:1", "smartlead@beta:7"})


@pytest.fixture
def accounts() -> Accounts:
    return Accounts([ACME, BETA])


@pytest.fixture
async def outbox(tmp_path: Path, store) -> AsyncIterator[SqliteOutbox]:
    async with SqliteOutbox.open(tmp_path / "state.db") as opened:
        yield opened


@pytest.fixture
def operator(store, outbox, fake_vendor: FakeVendor, clock, accounts: Accounts) -> SlackOperator:
    for campaign_id in ("1", "5", "7"):
        fake_vendor.statuses[campaign_id] = CampaignStatus.ACTIVE
    # one recording vendor behind every route (and the bare vendor name), so the writes are seen
    # whichever key the executor uses
    vendors = {"smartlead": fake_vendor, "smartlead@acme": fake_vendor, "smartlead@beta": fake_vendor}
    executor = Executor(store, vendors, clock=clock)
    settings = Settings(slack_pause_users="UG", slack_resume_users="UG")
    return SlackOperator(store=store, outbox=outbox, executor=executor, vendors=vendors, dry_run_vendors=frozenset(),
                         settings=settings, clock=clock, accounts=accounts, listed=lambda ref: str(ref) in LISTED)


_ids = iter(range(1, 10_000))


def _command(verb: str, *campaigns: str, user: str, **data: Any) -> Event:
    return Event(id=f"slack:command:{next(_ids)}", type=f"command.{verb}", source="slack", occurred_at=AT,
                 data={"campaigns": list(campaigns), "user_id": user, "reason": "",
                       "response_url": "https://hooks.slack.com/commands/x", **data})


def _click(action: str, campaign: str, *, user: str) -> Event:
    return Event(id=f"slack:click:{action}:{next(_ids)}", type="interaction.clicked", source="slack",
                 occurred_at=AT, data={"action": action, "campaign": campaign, "user_id": user,
                                       "response_url": "https://hooks.slack.com/actions/x"})


async def _answer(operator: SlackOperator, outbox: SqliteOutbox, event: Event) -> str:
    """Handle the event; the text of the reply it enqueued."""
    await operator.handle(event)
    [item] = [i for i in await outbox.items() if i.key == event.id]
    text = item.payload["body"]["text"]
    assert isinstance(text, str)
    return text


async def _owners(store, campaign: str) -> list[str]:
    async with store.transaction() as tx:
        return [h.owner for h in await tx.holds(campaign)]


async def _refusals(store, campaign: str) -> list[str]:
    return [r.detail for r in await store.audit(campaign=campaign) if r.kind == "refusal"]


# ---------------------------------------------------------------------------------------------- acting


async def test_an_account_user_pauses_that_accounts_campaigns(operator, outbox, store, fake_vendor) -> None:
    text = await _answer(operator, outbox, _command("pause", "smartlead@acme:1", "smartlead:5", user="UA"))
    assert "`smartlead@acme:1` — hold placed by <@UA>" in text
    assert "`smartlead@acme:5` — hold placed by <@UA>" in text          # the plain ref, placed in acme
    assert await _owners(store, "smartlead@acme:1") == ["user:UA"]
    assert await _owners(store, "smartlead@acme:5") == ["user:UA"]
    assert sorted(fake_vendor.writes()) == [("pause", "1"), ("pause", "5")]
    assert ":no_entry:" not in text


async def test_an_account_user_is_refused_on_another_accounts_campaign(operator, outbox, store, fake_vendor) -> None:
    text = await _answer(operator, outbox, _command("pause", "smartlead@acme:5", "smartlead@beta:7", user="UA"))
    assert "`smartlead@acme:5` — hold placed by <@UA>" in text           # the allowed one proceeds
    assert ("your Slack id `UA` may pause campaigns of account acme only; `smartlead@beta:7` belongs to beta "
            "(client Beta Ltd)") in text
    assert await _owners(store, "smartlead@beta:7") == []
    assert fake_vendor.writes() == [("pause", "5")]
    [detail] = await _refusals(store, "smartlead@beta:7")
    assert "user:UA may pause campaigns of account acme only" in detail and "belongs to beta" in detail
    assert await _refusals(store, "smartlead@acme:5") == []


async def test_an_account_user_clicking_on_another_accounts_notice_is_refused(operator, outbox, store) -> None:
    text = await _answer(operator, outbox, _click("keep_paused", "smartlead@beta:7", user="UA"))
    assert "may keep paused campaigns of account acme only; `smartlead@beta:7` belongs to beta" in text
    assert await _refusals(store, "smartlead@beta:7") != []
    # resume: no account lists UA for it, so today's refusal, naming the global list
    text = await _answer(operator, outbox, _click("resume", "smartlead@acme:5", user="UA"))
    assert "is not in BOT_SLACK_RESUME_USERS" in text


async def test_a_global_user_acts_on_every_account(operator, outbox, store, fake_vendor) -> None:
    text = await _answer(operator, outbox, _command("pause", "smartlead@acme:5", "smartlead@beta:7", user="UG"))
    assert "`smartlead@acme:5` — hold placed by <@UG>" in text and "`smartlead@beta:7` — hold placed by <@UG>" in text
    assert await _owners(store, "smartlead@beta:7") == ["user:UG"]
    assert sorted(fake_vendor.writes()) == [("pause", "5"), ("pause", "7")]
    text = await _answer(operator, outbox, _command("resume", "smartlead@beta:7", user="UG"))
    assert "removed 1 hold(s)" in text


async def test_a_user_no_list_names_gets_todays_refusal(operator, outbox, store, fake_vendor) -> None:
    text = await _answer(operator, outbox, _command("pause", "smartlead@acme:5", user="UX"))
    assert text.startswith(":no_entry: You may not pause campaigns: your Slack id `UX` is not in "
                           "BOT_SLACK_PAUSE_USERS.")
    assert fake_vendor.writes() == [] and await _refusals(store, "smartlead@acme:5") != []


async def test_a_ref_that_cannot_be_placed_is_refused_with_the_reason(operator, outbox, store, fake_vendor) -> None:
    text = await _answer(operator, outbox,
                         _command("pause", "smartlead:1", "smartlead:999", "smartlead@gamma:2", "smartlead:5", user="UG"))
    assert ("`smartlead:1` — smartlead:1 is listed by several smartlead accounts (smartlead@acme:1, smartlead@beta:1):"
            " write the one you mean, e.g. smartlead@acme:1. Nothing done to it.") in text
    assert "none of the smartlead accounts (acme, beta) lists campaign 999 yet; write it smartlead@&lt;account&gt;:999" in text
    assert "no smartlead account is named 'gamma' (configured: acme, beta)" in text
    assert "`smartlead@acme:5` — hold placed by <@UG>" in text          # the rest of the command goes on
    assert fake_vendor.writes() == [("pause", "5")]
    for key in ("smartlead:1", "smartlead@acme:1", "smartlead@beta:1", "smartlead:999"):
        assert await _owners(store, key) == []


# ---------------------------------------------------------------------------------------------- reading


async def test_list_filters_by_client_and_account(operator, outbox) -> None:
    await _answer(operator, outbox, _command("pause", "smartlead@acme:5", "smartlead@beta:7", user="UG"))

    async def listed(user: str, scope: str = "", value: str = "") -> str:
        return await _answer(operator, outbox, _command("list", user=user, filter="all", scope=scope,
                                                        scope_value=value))

    everything = await listed("UG")
    assert "*2 campaign(s)" in everything
    beta = await listed("UG", "client", "beta ltd")
    assert "(client beta ltd)" in beta and "smartlead@beta:7" in beta and "smartlead@acme:5" not in beta
    acme = await listed("UX", "account", "acme")                        # read-only: open to everyone
    assert "smartlead@acme:5" in acme and "smartlead@beta:7" not in acme
    assert "No account has the client `Gamma`" in await listed("UG", "client", "Gamma")
    assert "No account is named `gamma` (accounts: acme, beta)" in await listed("UG", "account", "gamma")
    # UA is listed by acme only: sees acme's campaigns only, even when asking for beta's
    mine = await listed("UA")
    assert "(of your account acme)" in mine and "smartlead@acme:5" in mine and "smartlead@beta:7" not in mine
    assert "No campaign" in await listed("UA", "client", "Beta Ltd")


async def test_status_of_another_accounts_campaign_is_refused_for_an_account_user(operator, outbox, store) -> None:
    text = await _answer(operator, outbox, _command("status", "smartlead@beta:7", "smartlead:5", user="UA"))
    assert "`smartlead@acme:5` — Smartlead says *active*" in text
    assert ("your Slack id `UA` may see campaigns of account acme only; `smartlead@beta:7` belongs to beta "
            "(client Beta Ltd)") in text
    assert "`smartlead@beta:7` — Smartlead says" not in text
    assert await _refusals(store, "smartlead@beta:7") != []
    history = await _answer(operator, outbox, _command("history", "smartlead@beta:7", user="UA"))
    assert "may see campaigns of account acme only" in history and "audit record" not in history
    # a person no account lists reads as before
    assert "`smartlead@beta:7` — Smartlead says *active*" in await _answer(
        operator, outbox, _command("status", "smartlead@beta:7", user="UX"))


async def test_the_vendor_is_read_through_the_campaigns_account(fake_vendor) -> None:
    fake_vendor.statuses["5"] = CampaignStatus.PAUSED
    vendors = {"smartlead@acme": fake_vendor}
    assert (await read_vendor(CampaignRef.parse("smartlead@acme:5"), vendors, frozenset())).status \
        is CampaignStatus.PAUSED
    beta = await read_vendor(CampaignRef.parse("smartlead@beta:5"), vendors, frozenset())
    assert beta.status is None and "no API key for the beta Smartlead account" in beta.note
    dry = await read_vendor(CampaignRef.parse("smartlead@acme:5"), vendors, frozenset({"smartlead@acme"}))
    assert dry.status is None and dry.note.startswith("dry run")
    fake_vendor.failures.append(VendorAuthError("smartlead", 401, "GET /campaigns/5"))
    refused = await read_vendor(CampaignRef.parse("smartlead@acme:5"), vendors, frozenset())
    assert "check the acme account's api_key" in refused.note


# ---------------------------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(("text", "wanted", "scope", "value"), [
    ("list account:acme", "all", "account", "acme"),
    ("list held account:smartlead@acme", "held", "account", "smartlead@acme"),
    ("list paused client:Beta Ltd", "paused", "client", "Beta Ltd"),
    ("list client:\u201cAcme Corp\u201d", "all", "client", "Acme Corp"),
    ("list CLIENT: Acme", "all", "client", "Acme"),
])
def test_list_takes_an_account_or_client_scope(text: str, wanted: str, scope: str, value: str) -> None:
    command = parse_command(text)
    assert (command.filter, command.scope, command.scope_value) == (wanted, scope, value)
    event = command_event(command, {"user_id": "U1"}, body=b"x", now=AT)
    assert (event.data["scope"], event.data["scope_value"]) == (scope, value)


@pytest.mark.parametrize(("text", "says"), [
    ("list owner:acme", "optionally `account:<name>` or `client:<label>`"),
    ("list held beta", "optionally `account:<name>` or `client:<label>`"),
    ("list account:Acme Corp", "`account:` takes an account name"),
    ("list client:", "`client:` takes a client label"),
    ("list client:" + "x" * 201, "limited to 200 characters"),
])
def test_bad_list_scopes_say_what_to_type(text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_command(text)
    assert says in str(caught.value)


def test_help_text_documents_accounts() -> None:
    text = help_text()
    assert "`vendor@account:id`" in text and "[account:<name>|client:<label>]" in text


# ---------------------------------------------------------------------------------------------- notices


class _Clock:
    def __init__(self) -> None:
        self.now = AT

    def __call__(self) -> datetime:
        return self.now


def _notice(kind: str, campaign: str | None) -> Notice:
    return Notice(kind, campaign, f"{kind} {campaign}", AT, "bounce-guard", {"numerator": 4})


async def _deliver(outbox: SqliteOutbox, api_url: str, clock: _Clock) -> int:
    deliverer = SlackDeliverer(outbox, token="xoxb-test", api_url=api_url, retry_delays=(0.01,), max_attempts=3,
                               clock=clock)
    try:
        return await deliverer.deliver_due()
    finally:
        await deliverer.stop()


async def test_notices_go_to_the_campaigns_account_channel(outbox, api_url, slack, accounts) -> None:
    clock = _Clock()
    notifier = SlackNotifier(outbox, channel="C-DEFAULT", digest_seconds=60, clock=clock, accounts=accounts)
    for campaign in ("smartlead@beta:7", "smartlead@acme:5", "smartlead:9", None, "nosuchvendor:1"):
        await notifier.notify(_notice("paused", campaign))
    assert await _deliver(outbox, api_url, clock) == 5
    sent = {(post.body["channel"], post.body["text"].split(": ", 1)[1]) for post in slack.api_posts()}
    assert sent == {("C-BETA", "paused smartlead@beta:7"), ("C-DEFAULT", "paused smartlead@acme:5"),
                    ("C-DEFAULT", "paused smartlead:9"), ("C-DEFAULT", "paused None"),
                    ("C-DEFAULT", "paused nosuchvendor:1")}


async def test_without_a_default_channel_only_account_channels_get_notices(outbox, accounts, logs) -> None:
    notifier = SlackNotifier(outbox, channel=None, digest_seconds=60, accounts=accounts)
    await notifier.notify(_notice("paused", "smartlead@beta:7"))
    await notifier.notify(_notice("paused", "smartlead@acme:5"))
    await notifier.notify(_notice("breaker_open", None))
    assert [i.payload["channel"] for i in await outbox.items()] == ["C-BETA"]
    assert [line["notice_campaign"] for line in logs if line["event"] == "slack.notice_unrouted"] == [
        "smartlead@acme:5", None]


async def test_shadow_notices_are_digested_per_channel(outbox, api_url, slack, accounts) -> None:
    clock = _Clock()
    notifier = SlackNotifier(outbox, channel="C-DEFAULT", digest_seconds=300, clock=clock, accounts=accounts)
    for campaign in ("smartlead@beta:7", "smartlead@acme:5", "smartlead@beta:8", "smartlead@acme:6"):
        await notifier.notify(_notice("shadow", campaign))
        clock.now += timedelta(seconds=10)
    assert await _deliver(outbox, api_url, clock) == 0                  # the digests wait for the interval's end
    clock.now += timedelta(seconds=300)
    assert await _deliver(outbox, api_url, clock) == 4                  # four rows, two messages
    digests = {post.body["channel"]: post.body["blocks"][0]["text"]["text"] for post in slack.api_posts()}
    assert len(slack.api_posts()) == 2 and set(digests) == {"C-BETA", "C-DEFAULT"}
    assert "smartlead@beta:7" in digests["C-BETA"] and "smartlead@beta:8" in digests["C-BETA"]
    assert "smartlead@acme" not in digests["C-BETA"]
    assert "smartlead@acme:5" in digests["C-DEFAULT"] and "smartlead@acme:6" in digests["C-DEFAULT"]
    assert "smartlead@beta" not in digests["C-DEFAULT"]
    assert {i.status for i in await outbox.items()} == {"sent"}
