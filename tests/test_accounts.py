"""Accounts (bot.accounts): where they come from, how a campaign is placed in one, and what each one gets
of its own: its key, its rate budget (its workspace's, for Instantly), its sender scope and its rules."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.accounts import Account, Accounts, load_accounts
from bot.config import Settings
from bot.engine import Target, evaluate, matches
from bot.errors import AccountError, AccountUnknown, ConfigError, RetryableError
from bot.events import CampaignRef, Event
from bot.inventory import Inventory
from bot.rulespec import Rule
from bot.vendors.build import build_vendors, dry_routes
from bot.vendors.instantly.client import InstantlyClient
from bot.vendors.smartlead.client import SmartleadClient
from bot.vendors.spec import VendorConfig

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
UUID = "5f0b3c9e-0000-4000-8000-0000000000{:02d}"


@pytest.fixture(autouse=True)
def _no_bot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BOT_"):
            monkeypatch.delenv(name)


def _settings(**values: Any) -> Settings:
    return Settings.model_validate(values)


def _indexed(*accounts: dict[str, str]) -> dict[str, str]:
    return {f"BOT_ACCOUNT_{i}_{key.upper()}": value
            for i, account in enumerate(accounts, 1) for key, value in account.items()}


ACME = {"vendor": "smartlead", "name": "acme", "api_key": "acme-key", "client": "Acme Corp",
        "slack_channel": "C0ACME", "pause_users": "UA1, UA2"}
BETA = {"vendor": "smartlead", "name": "beta", "api_key": "beta-key", "rate_limit": "5/2"}


# ------------------------------------------------------------------------------------------- loading


def test_indexed_variables_make_named_accounts_beside_the_vendor_blocks() -> None:
    accounts = load_accounts(_settings(), _indexed(ACME, BETA))
    acme = accounts.get("smartlead@acme")
    assert acme is not None and acme.client == "Acme Corp" and acme.slack_channel == "C0ACME"
    assert acme.allows("UA2", "pause") and not acme.allows("UA2", "resume")
    assert acme.config.base_url == "https://server.smartlead.ai/api/v1"     # the vendor's default
    beta = accounts.get("smartlead@beta")
    assert beta is not None and beta.config.rate() == (5, 2.0)
    # smartlead has named accounts and no BOT_SMARTLEAD_API_KEY: no default account; the others keep theirs
    assert accounts.get("smartlead") is None
    assert {a.route for a in accounts} >= {"leadterra", "inbox", "instantly", "lemlist"}


def test_a_vendor_key_keeps_the_default_account_beside_named_ones() -> None:
    accounts = load_accounts(_settings(smartlead_api_key="main-key"), _indexed(ACME))
    assert [a.route for a in accounts.of_vendor("smartlead")] == ["smartlead", "smartlead@acme"]


def test_the_accounts_file_takes_keys_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yml"
    path.write_text("accounts:\n"
                    "  - {vendor: instantly, name: acme, api_key_env: ACME_INSTANTLY, workspace: ws-acme,\n"
                    "     approve_users: [UA1]}\n"
                    "  - {vendor: instantly, name: acme-eu, api_key_env: ACME_EU_INSTANTLY, workspace: ws-acme}\n")
    accounts = load_accounts(_settings(accounts_file=path), {"ACME_INSTANTLY": "k-1", "ACME_EU_INSTANTLY": "k-2"})
    acme, eu = accounts.get("instantly@acme"), accounts.get("instantly@acme-eu")
    assert acme is not None and eu is not None
    assert acme.config.secret("api_key") == "k-1" and acme.allows("UA1", "approve")
    assert acme.budget == eu.budget == "instantly#ws-acme"
    assert sorted(accounts.secrets()) == ["k-1", "k-2"]


@pytest.mark.parametrize(("text", "problem"), [
    ("accounts: {}", "expected `accounts:`"),
    ("accounts:\n  - {vendor: mailchimp, name: a}", "vendor: expected one of"),
    ("accounts:\n  - {vendor: smartlead, name: Acme}", "accounts[0]: name:"),
    ("accounts:\n  - {vendor: smartlead, name: a, base_url: ftp://x}", "accounts[0]: base_url: must be an http"),
    ("accounts:\n  - {vendor: smartlead, name: a, api_key_env: NOT_SET_ANYWHERE}", "NOT_SET_ANYWHERE"),
    ("accounts:\n  - {vendor: smartlead, name: a, colour: red}", "colour"),
    ("accounts:\n  - {vendor: smartlead, name: a}\n  - {vendor: smartlead, name: a}", "configured twice"),
])
def test_a_bad_accounts_file_names_the_file_the_entry_and_the_field(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "accounts.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="accounts") as caught:
        load_accounts(_settings(accounts_file=path), {})
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_every_account_key_reaches_the_redactor_through_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _indexed(ACME, {**BETA, "webhook_secret": "beta-hook"}).items():
        monkeypatch.setenv(name, value)
    assert {"acme-key", "beta-key", "beta-hook"} <= set(_settings().secrets())


# ------------------------------------------------------------------------------------------- placing


def _two() -> Accounts:
    return load_accounts(_settings(), _indexed(ACME, BETA))


def test_a_ref_is_placed_in_the_one_account_that_lists_it() -> None:
    inventory = Inventory({"smartlead@beta:7": ["a@x.io"], "smartlead@acme:8": []})
    placed = _two().place(CampaignRef.parse("smartlead:7"), inventory.listed)
    assert str(placed) == "smartlead@beta:7" and placed.route == "smartlead@beta"


def test_an_ambiguous_ref_is_refused_naming_both_accounts() -> None:
    with pytest.raises(AccountError, match=r"smartlead@acme:7.*smartlead@beta:7") as caught:
        _two().place(CampaignRef.parse("smartlead:7"), lambda ref: True)
    assert not isinstance(caught.value, RetryableError)         # configuration, not time, settles it


def test_an_unlisted_ref_is_refused_and_retried_later() -> None:
    with pytest.raises(AccountUnknown, match="none of the smartlead accounts") as caught:
        _two().place(CampaignRef.parse("smartlead:7"), lambda ref: False)
    assert isinstance(caught.value, RetryableError)             # the next inventory refresh may list it


def test_an_explicit_ref_needs_a_configured_account() -> None:
    accounts = _two()
    assert str(accounts.place(CampaignRef.parse("smartlead@acme:7"), lambda ref: False)) == "smartlead@acme:7"
    with pytest.raises(AccountError, match="no smartlead account is named 'gamma'"):
        accounts.place(CampaignRef.parse("smartlead@gamma:7"), lambda ref: True)


def test_with_only_the_default_account_refs_stay_as_they_were() -> None:
    accounts = load_accounts(_settings(smartlead_api_key="k"), {})
    ref = CampaignRef.parse("smartlead:7")
    assert accounts.place(ref, lambda r: False) is ref
    assert str(CampaignRef.parse("smartlead@default:7")) == "smartlead:7"


# ------------------------------------------------------------------------------------------- what each gets


async def test_each_account_gets_its_own_client_and_key_and_each_workspace_one_budget() -> None:
    env = _indexed(ACME, BETA, {"vendor": "instantly", "name": "w1", "api_key": "i-1", "workspace": "shared"},
                   {"vendor": "instantly", "name": "w2", "api_key": "i-2", "workspace": "shared"},
                   {"vendor": "instantly", "name": "w3", "api_key": "i-3"})
    settings = _settings()
    async with aiohttp.ClientSession() as session:
        vendors = build_vendors(settings, session, load_accounts(settings, env))
        acme, beta = vendors["smartlead@acme"], vendors["smartlead@beta"]
        assert isinstance(acme, SmartleadClient) and isinstance(beta, SmartleadClient)
        assert acme._http._read_limiter is not beta._http._read_limiter          # per credential
        assert "acme-key" not in repr(acme) and "beta-key" not in repr(beta)
        w1, w2, w3 = (vendors[f"instantly@w{n}"] for n in (1, 2, 3))
        assert all(isinstance(w, InstantlyClient) for w in (w1, w2, w3))
        assert w1._http._read_limiter is w2._http._read_limiter                # one workspace, one budget
        assert w3._http._read_limiter is not w1._http._read_limiter
        # vendors without a key are dry-run, per account
        assert {"leadterra", "inbox", "lemlist"} <= dry_routes(vendors)
        assert not {"smartlead@acme", "instantly@w1"} & dry_routes(vendors)


def test_a_sender_scope_stays_within_the_events_account() -> None:
    inventory = Inventory({"smartlead@acme:1": ["ops@acme.io"], "smartlead@beta:2": ["ops@acme.io"],
                           "leadterra:camp_3": ["ops@acme.io"]})
    within_acme = inventory.resolve([Target("sender_account", "ops@acme.io", "smartlead@acme")])
    assert [str(r) for r in within_acme] == ["smartlead@acme:1"]
    whole_vendor = inventory.resolve([Target("sender_account", "ops@acme.io", "smartlead")])
    assert [str(r) for r in whole_vendor] == ["smartlead@acme:1", "smartlead@beta:2"]
    assert [str(r) for r in inventory.resolve([Target("vendor", "smartlead@beta")])] == ["smartlead@beta:2"]


def _event(campaign: str) -> Event:
    return Event(id=f"e-{campaign}", type="email.bounced", source="smartlead", occurred_at=NOW,
                 campaign=CampaignRef.parse(campaign), data={"sender_email": "ops@acme.io"})


def test_rules_select_by_account_and_by_client() -> None:
    by_account = Rule.model_validate({"name": "acme-only", "description": "d", "on": ["email.bounced"],
                                      "when": {"campaign.account": {"eq": "acme"}},
                                      "action": {"do": "notify", "reason": "x"}})
    assert matches(by_account, _event("smartlead@acme:1"))
    assert not matches(by_account, _event("smartlead@beta:1"))
    by_client = Rule.model_validate({"name": "acme-corp", "description": "d", "on": ["email.bounced"],
                                     "when": {"campaign.client": {"in": ["Acme Corp"]}},
                                     "action": {"do": "notify", "reason": "x"}})
    assert matches(by_client, _event("smartlead@acme:1"), client="Acme Corp")
    assert not matches(by_client, _event("smartlead@beta:1"), client="Beta Ltd")
    assert not matches(by_client, _event("smartlead:1"))                    # no client known: not selected
    assert evaluate(by_client, _event("smartlead@acme:1"), None, NOW, client="Acme Corp").decisions


def test_an_account_built_by_hand_routes_like_a_loaded_one() -> None:
    account = Account("smartlead", "acme", VendorConfig("smartlead", {"api_key": None}))
    assert account.route == "smartlead@acme" and account.budget == "smartlead@acme"
    assert account.ref("12") == CampaignRef.parse("smartlead@acme:12")
    assert Accounts([account]).channel(account.ref("12"), "C-DEFAULT") == "C-DEFAULT"
