"""The command line: one-line errors (bad --campaign, busy port), help with the main settings, healthcheck."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import cli
from bot.config import Settings
from bot.errors import ConfigError
from bot.service import running
from bot.state.worker_lock import WorkerLock, lock_path
from bot.vendors import registry
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def _env(cli_env: None) -> None:
    """Every command here runs in `cli_env`."""


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(("value", "problem"), [
    ("foo", "campaign must be written vendor:id, got 'foo'"),
    ("smartlead:abc", "invalid smartlead campaign id 'abc'"),
    ("mailchimp:1", "unknown vendor 'mailchimp'"),
])
def test_audit_names_the_expected_campaign_form(capsys: pytest.CaptureFixture[str], value: str, problem: str) -> None:
    assert cli.main(["audit", "--campaign", value]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"campaign-guard: --campaign {value!r}: expected vendor:id with vendor one of "
                           f"{', '.join(sorted(registry.names()))} (e.g. smartlead:123")
    assert problem in line and "pydantic" not in line and "validation error" not in line


@pytest.mark.parametrize("command", ["run", "web", "worker", "demo"])
def test_service_commands_have_a_description_and_their_main_settings(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert len(description.split()) > 15, description
    assert "main settings:" in text and "BOT_BROKER_URL" in text and 'README "Configuration"' in text
    expected = {"run": ["BOT_HTTP_PORT", "BOT_WEBHOOK_TOKEN", "BOT_STATE_URL", "BOT_SMARTLEAD_API_KEY"],
                "web": ["BOT_HTTP_PORT", "BOT_WEBHOOK_TOKEN", "BOT_SLACK_SIGNING_SECRET"],
                "worker": ["BOT_STATE_URL", "BOT_SMARTLEAD_API_KEY", "BOT_SLACK_BOT_TOKEN", "BOT_RETRY_DELAYS"],
                "demo": ["BOT_RULES_DIR"]}[command]
    assert all(name in text for name in expected), text


def test_a_busy_port_is_one_line_naming_bot_http_port_before_the_worker_starts(
    tmp_path: Path, busy_port: int
) -> None:
    env = {"PATH": "/usr/bin:/bin", "BOT_HTTP_PORT": str(busy_port), "BOT_RULES_DIR": str(REPO / "rules"),
           "BOT_LOG_JSON": "true"}
    done = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr == (f"campaign-guard: cannot listen on 127.0.0.1:{busy_port} (BOT_HTTP_PORT): "
                           "address in use\n")
    assert "worker.started" not in done.stdout and "broker" not in done.stdout
    assert not (tmp_path / ".campaign-guard").exists()          # no state opened, no worker lock taken


async def test_running_binds_the_port_before_anything_starts(tmp_path: Path, busy_port: int) -> None:
    settings = Settings(state_url=f"sqlite:///{tmp_path / 'state.db'}", rules_dir=REPO / "rules",
                        http_port=busy_port, inventory_refresh=0)
    with pytest.raises(ConfigError, match=rf"^cannot listen on 127\.0\.0\.1:{busy_port} \(BOT_HTTP_PORT\): "
                                          "address in use$"):
        async with running(settings, with_web=True, with_worker=True):
            pass
    assert not lock_path(settings.state_path).exists()


def test_an_unknown_host_names_bot_http_host(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_HTTP_HOST", "no-such-host.invalid")
    monkeypatch.setenv("BOT_RULES_DIR", str(REPO / "rules"))
    assert cli.main(["run"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("campaign-guard: cannot listen on no-such-host.invalid:8080 (BOT_HTTP_HOST): ")


def test_healthcheck_reports_the_worker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / ".campaign-guard" / "state.db"
    assert cli.main(["healthcheck"]) == 1
    assert "no worker has run on" in capsys.readouterr().err
    with WorkerLock.acquire(state) as lock:
        assert cli.main(["healthcheck"]) == 0
        assert capsys.readouterr().out.startswith("worker alive on ")
        os.utime(lock.path, (0, 1000))                       # no heartbeat for a long time: stuck
        assert cli.main(["healthcheck"]) == 1
        assert "has not swept for" in capsys.readouterr().err
        lock.beat()
        assert cli.main(["healthcheck", "--max-age", "60"]) == 0
    assert cli.main(["healthcheck"]) == 1
    assert "the last one stopped" in capsys.readouterr().err
