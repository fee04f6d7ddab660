"""`campaign-guard digest`: the daily digest of the last 24 hours, as plain text, for every channel or one
account, read from the configured state store; the same content the Slack digest has (bot.slack.daily)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from bot import cli
from bot.accounts import load_accounts
from bot.config import load_settings
from bot.digest import collect, zone_of
from bot.events import utcnow
from bot.slack.daily import daily_text
from bot.state.base import AuditRow
from bot.state.sqlite import SqliteStateStore


@pytest.fixture(autouse=True)
def _env(cli_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cli_env`, plus a default channel, a time zone and one account's channel."""
    for name, value in {"BOT_SLACK_CHANNEL": "C-DEFAULT", "BOT_DIGEST_TZ": "Europe/Paris",
                        "BOT_ACCOUNT_1_VENDOR": "smartlead", "BOT_ACCOUNT_1_NAME": "acme",
                        "BOT_ACCOUNT_1_SLACK_CHANNEL": "C-ACME"}.items():
        monkeypatch.setenv(name, value)


async def _seed(path: Path) -> None:
    now = utcnow()
    async with SqliteStateStore.open(path) as store, store.transaction() as tx:
        await tx.add_audit(AuditRow(now - timedelta(hours=2), "action", "smartlead@acme:5", None, "pause", "paused",
                                    "bounce rate 4.0%"))
        await tx.add_audit(AuditRow(now - timedelta(hours=1), "action", "smartlead:2", None, "resume", "resumed",
                                    "no hold remains"))
        await tx.add_audit(AuditRow(now - timedelta(days=2), "action", "smartlead:3", None, "pause", "paused",
                                    "two days ago"))


def test_digest_prints_every_channels_day(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    asyncio.run(_seed(tmp_path / ".campaign-guard" / "state.db"))
    assert cli.main(["digest"]) == 0
    out = capsys.readouterr().out
    acme, default = out.split("\n\n")
    assert acme.startswith("campaign-guard daily digest · channel C-ACME · accounts smartlead@acme\n")
    assert "Europe/Paris" in acme.splitlines()[1]
    assert "1 paused · 0 resumed" in acme and "smartlead@acme:5" in acme and "bounce rate 4.0%" in acme
    assert default.startswith("campaign-guard daily digest · channel C-DEFAULT\n")
    assert "smartlead:2" in default and "no hold remains" in default and "smartlead@acme" not in default
    assert "two days ago" not in out

    async def expected() -> str:            # the very content the Slack digest is made of
        settings = load_settings()
        end = utcnow()
        async with SqliteStateStore.open(settings.state_path) as store:
            digests = await collect(store, accounts=load_accounts(settings), channel="C-DEFAULT",
                                    start=end - timedelta(days=1), end=end, zone=zone_of("Europe/Paris"))
        return "\n\n".join(daily_text(d) for d in digests.values())

    def without_spans(text: str) -> list[str]:     # the span's minutes may differ between the two runs
        return [line for line in text.splitlines() if "→" not in line]

    assert without_spans(out.rstrip("\n")) == without_spans(asyncio.run(expected()))


def test_digest_of_one_account(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    asyncio.run(_seed(tmp_path / ".campaign-guard" / "state.db"))
    assert cli.main(["digest", "--account", "acme"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("campaign-guard daily digest · channel C-ACME · accounts smartlead@acme\n")
    assert "smartlead@acme:5" in out and "smartlead:2" not in out and "C-DEFAULT" not in out


def test_digest_names_the_accounts_when_the_one_asked_for_is_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["digest", "--account", "globex"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("campaign-guard: --account 'globex': no such account (configured: ")
    assert err.endswith(", smartlead@acme)\n") and len(err.splitlines()) == 1


def test_digest_without_a_state_database_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["digest"]) == 2
    assert "no state database at .campaign-guard/state.db" in capsys.readouterr().err
