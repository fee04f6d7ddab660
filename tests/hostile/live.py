"""The app running for real (`bot.service.running`, web only, embedded broker) on a free port, in a thread of
its own so that synchronous clients (schemathesis, requests) can call it; and a requests auth that signs
each request the way its sender would, over the exact bytes sent."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from bot.config import Settings
from bot.service import running
from tests.conftest import REPO
from tests.hostile.endpoints import (
    GRAFANA_SECRET,
    LEADTERRA_SECRET,
    MAX_BODY,
    SLACK_SECRET,
    SMARTLEAD_SECRET,
    TOKEN,
    credentials,
)

__all__ = ["Live", "SignEveryRequest", "live_app"]


class SignEveryRequest(requests.auth.AuthBase):
    """Adds valid credentials for the request's path, computed over its final body (Slack: now)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
            request.body = body
            request.headers["Content-Length"] = str(len(body))
        if not isinstance(body, bytes):
            return request                      # a streamed body: sent unsigned (and refused)
        path = requests.utils.urlparse(request.url or "").path
        headers, params = credentials(path, body, int(time.time()))
        request.headers.update(headers)
        if params and request.url:
            request.prepare_url(request.url, params)
        return request


@dataclass
class Live:
    url: str
    session: requests.Session


def live_settings(state_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        broker_url=SecretStr("memory://"), state_url=f"sqlite:///{state_dir / 'state.db'}", rules_dir=REPO / "rules",
        http_host="127.0.0.1", http_port=0, max_body_bytes=MAX_BODY, webhook_token=SecretStr(TOKEN),
        smartlead_webhook_secret=SecretStr(SMARTLEAD_SECRET), leadterra_webhook_secret=SecretStr(LEADTERRA_SECRET),
        slack_signing_secret=SecretStr(SLACK_SECRET), grafana_webhook_secret=SecretStr(GRAFANA_SECRET),
    )


@contextmanager
def live_app(state_dir: Path) -> Iterator[Live]:
    """Serve the app until the block ends; yields its base URL and a signing requests session."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), stop
        try:
            async with running(live_settings(state_dir), with_web=True, with_worker=False) as services:
                box["url"] = f"http://127.0.0.1:{services.port}"
                started.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="live-app", daemon=True)
    thread.start()
    if not started.wait(30) or "error" in box:
        raise RuntimeError(f"the app did not start: {box.get('error')!r}")
    session = requests.Session()
    session.auth = SignEveryRequest()
    try:
        yield Live(box["url"], session)
    finally:
        session.close()
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
