"""Settings: every bad BOT_* value is one line naming the variable, whatever the setting's type."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import cli
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.log import configure_logging


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BOT_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("BOT_RETRY_DELAYS", "oops", "must be a JSON list of seconds"),
        ("BOT_RETRY_DELAYS", "[1, -5]", "every delay must be a number of seconds from 0"),
        ("BOT_RETRY_DELAYS", "[1, true]", "must be a JSON list of seconds"),
        ("BOT_RETRY_DELAYS", '{"a": 1}', "must be a JSON list of seconds"),
        ("BOT_SLACK_RETRY_DELAYS", "[1, NaN]", "every delay must be a number of seconds"),
        ("BOT_HTTP_PORT", "abc", "valid integer"),
        ("BOT_HTTP_PORT", "70000", "less than or equal to 65535"),
        ("BOT_PREFETCH", "0", "greater than or equal to 1"),
        ("BOT_DRY_RUN", "maybe", "valid boolean"),
        ("BOT_LOG_LEVEL", "loud", "should match pattern"),
        ("BOT_BROKER_URL", "redis://x", "must start with amqp://"),
        ("BOT_STATE_URL", "/tmp/x.db", "must be sqlite:///"),
        ("BOT_SMARTLEAD_RATE_LIMIT", "fast", "must be REQUESTS/SECONDS"),
        ("BOT_SMARTLEAD_BASE_URL", "server.smartlead.ai", "must be an http:// or https:// URL"),
        ("BOT_INBOX_PAUSE_PATH", "/campaigns/pause", "contain {id} once"),
        ("BOT_SWEEP_SECONDS", "0", "greater than 0"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid settings: {name}: ") and problem in message
    assert "\n" not in message and "Value error" not in message


def test_several_bad_values_share_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_PREFETCH", "0")
    monkeypatch.setenv("BOT_RETRY_DELAYS", "oops")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "\n" not in str(caught.value)
    assert "BOT_PREFETCH: " in str(caught.value) and "; BOT_RETRY_DELAYS: " in str(caught.value)


@pytest.mark.parametrize(("value", "expected"), [("[1, 5, 30]", (1.0, 5.0, 30.0)), ("1,5, 30", (1.0, 5.0, 30.0)),
                                                 ("[]", ()), ("[0.05]", (0.05,))])
def test_retry_delays_read_json_or_commas(monkeypatch: pytest.MonkeyPatch, value: str,
                                          expected: tuple[float, ...]) -> None:
    monkeypatch.setenv("BOT_RETRY_DELAYS", value)
    assert load_settings().retry_delays == expected


def test_an_empty_optional_value_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Compose's `${BOT_X:-}` passes for a variable the operator did not set."""
    for name in ("BOT_INVENTORY_FILE", "BOT_WEBHOOK_TOKEN", "BOT_SLACK_SIGNING_SECRET", "BOT_SLACK_BOT_TOKEN",
                 "BOT_SLACK_CHANNEL", "BOT_ALERTMANAGER_TOKEN", "BOT_GRAFANA_WEBHOOK_SECRET", "BOT_SMARTLEAD_API_KEY"):
        monkeypatch.setenv(name, "")
    settings = load_settings()
    assert settings.inventory_file is None and settings.webhook_token is None
    assert settings.slack_signing_secret is None and settings.slack_channel is None
    assert settings.alertmanager_token is None and settings.grafana_webhook_secret is None
    assert settings.api_key("smartlead") is None
    assert Settings(webhook_token="").webhook_token is None     # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["run", "worker", "audit", "decisions"])
def test_the_real_command_prints_one_line_and_no_traceback(tmp_path: Path, command: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "BOT_RETRY_DELAYS": "oops", "BOT_HTTP_PORT": "0"}
    done = subprocess.run([sys.executable, "-m", "bot", command], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("campaign-guard: invalid settings: BOT_RETRY_DELAYS: must be a JSON list of seconds")


def test_cli_main_reports_bad_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "configure_logging", functools.partial(configure_logging, cache=False))
    monkeypatch.setenv("BOT_SLACK_RETRY_DELAYS", "[")
    assert cli.main(["audit"]) == 2
    assert capsys.readouterr().err == ("campaign-guard: invalid settings: BOT_SLACK_RETRY_DELAYS: must be a JSON list "
                                       "of seconds, e.g. [1,5,30,120,600] (or 1,5,30,120,600)\n")
