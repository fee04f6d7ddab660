"""A real Prometheus Alertmanager for integration tests (Debian's `prometheus-alertmanager`).

`alertmanager_binary` finds the binary, installing the package with apt-get when it is missing (root,
or password-less sudo); when that fails the test fails under CI (env CI set) and is skipped elsewhere.
`RealAlertmanager` runs one private process: free loopback port, HA clustering off, its own storage
dir and config whose only receiver is the bot's `/webhooks/alertmanager` with bearer credentials and
`send_resolved: true`, and short group_wait/group_interval/repeat_interval so a test takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

PACKAGE = "prometheus-alertmanager"
NAMES = ("prometheus-alertmanager", "alertmanager")
START_BUDGET = 30.0


def _find() -> str | None:
    return next((path for name in NAMES if (path := shutil.which(name))), None)


def _install() -> str:
    """apt-get install the package; returns "" on success, else what went wrong."""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", PACKAGE]):
        try:
            done = subprocess.run([*sudo, *command], capture_output=True, text=True, env=env, timeout=600,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command)}: {exc}"
        if done.returncode:
            return f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-500:]}"
    return "" if _find() else f"apt-get installed {PACKAGE} but no {' or '.join(NAMES)} is on PATH"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Alertmanager: {reason}")
    pytest.skip(f"Alertmanager: {reason}")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    found = _find()
    if found is None:
        problem = _install()
        found = _find()
        if found is None:
            _unavailable(f"{PACKAGE} missing and could not be installed ({problem})")
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RealAlertmanager:
    """One private Alertmanager process; `start()` / `stop()`; `fire()` / `resolve()` through its API."""

    binary: str
    dir: Path
    webhook_url: str
    token: str
    group_wait: str = "50ms"
    group_interval: str = "300ms"
    repeat_interval: str = "1500ms"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        # JSON is YAML: no quoting surprises in the URL or the token
        return json.dumps({
            "route": {"receiver": "campaign-guard", "group_by": ["..."], "group_wait": self.group_wait,
                      "group_interval": self.group_interval, "repeat_interval": self.repeat_interval},
            "receivers": [{"name": "campaign-guard", "webhook_configs": [{
                "url": self.webhook_url, "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials": self.token}},
            }]}],
        }, indent=2)

    def spawn(self) -> None:
        """Write the config and launch the process (its own session: never gets the test's signals)."""
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        (self.dir / "alertmanager.yml").write_text(self.config())
        with (self.dir / "alertmanager.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={self.dir / 'alertmanager.yml'}", f"--storage.path={self.dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=debug"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    async def start(self) -> None:
        """Spawn, then wait until it answers /-/ready (a failure fails under CI, skips elsewhere)."""
        self.spawn()
        try:
            async with asyncio.timeout(START_BUDGET):
                await self._until_ready()
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            _unavailable(f"did not become ready on {self.url} ({exc or 'timeout'}):\n{self.log_tail()}")

    async def _until_ready(self) -> None:
        # An external process announces readiness only through /-/ready: ask until it says yes.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"exited with {self.process.returncode}")
                try:
                    async with http.get(f"{self.url}/-/ready") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        path = self.dir / "alertmanager.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    async def post(self, http: aiohttp.ClientSession, alerts: list[dict[str, Any]]) -> None:
        async with http.post(f"{self.url}/api/v2/alerts", json=alerts) as response:
            assert response.status == 200, f"{response.status}: {await response.text()}"

    async def fire(self, http: aiohttp.ClientSession, labels: dict[str, str], *, summary: str = "",
                   starts_at: datetime) -> None:
        """Post a firing alert (endsAt an hour ahead, as Prometheus keeps renewing it)."""
        await self.post(http, [{"labels": labels, "annotations": {"summary": summary or labels["alertname"]},
                                "startsAt": _rfc3339(starts_at),
                                "endsAt": _rfc3339(datetime.now(UTC) + timedelta(hours=1))}])

    async def resolve(self, http: aiohttp.ClientSession, labels: dict[str, str], *, starts_at: datetime) -> None:
        """Post the same alert with endsAt in the past: Alertmanager resolves it and notifies."""
        await self.post(http, [{"labels": labels, "startsAt": _rfc3339(starts_at),
                                "endsAt": _rfc3339(datetime.now(UTC) - timedelta(seconds=1))}])
