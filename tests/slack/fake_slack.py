"""A local fake of Slack for tests: the Web API (`/api/<method>`) and `response_url`s (`/response/<id>`),
recording every request; plus signing exactly as Slack signs (`v0=` HMAC-SHA256 of `v0:{ts}:{body}`).

It keeps the channels' messages as Slack would: `chat.postMessage` answers with the channel's id (a `#name`
becomes `C` + the name) and a new ts; with `thread_ts` the message is a reply in that message's thread;
`chat.update` replaces a message and answers `message_not_found` for a ts it never gave (or `delete`d)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web


@dataclass(frozen=True)
class Received:
    kind: str                  # "api" | "response"
    path: str                  # API method ("chat.postMessage") or response id
    body: dict[str, Any]
    authorization: str


class FakeSlack:
    """`fail_api` / `fail_response`: HTTP statuses (or Slack error codes) returned to the next requests."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.fail_api: list[int | str] = []
        self.fail_response: list[int] = []
        self.attempts = 0
        self._changed = asyncio.Condition()
        self._ts = 1_700_000_000
        #: (channel id, ts) → the message as it stands (the last chat.update's body)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        #: (channel id, parent ts) → the replies in its thread, in order
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = {}

    @property
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/response/{rid}", self._response)
        return app

    async def _changed_now(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _api(self, request: web.Request) -> web.Response:
        self.attempts += 1
        try:
            if self.fail_api:
                failure = self.fail_api.pop(0)
                if isinstance(failure, int):
                    return web.Response(status=failure, text="upstream unavailable", content_type="text/html")
                return web.json_response({"ok": False, "error": failure})
            body = await request.json()
            method = request.match_info["method"]
            self.received.append(Received("api", method, body, request.headers.get("Authorization", "")))
            channel = str(body.get("channel", ""))
            channel = "C" + channel[1:].upper() if channel.startswith("#") else channel
            if method == "chat.update":
                if (channel, body.get("ts")) not in self.messages:
                    return web.json_response({"ok": False, "error": "message_not_found"})
                self.messages[(channel, body["ts"])] = body
                return web.json_response({"ok": True, "channel": channel, "ts": body["ts"]})
            self._ts += 1
            ts = f"{self._ts}.000100"
            if body.get("thread_ts"):
                self.threads.setdefault((channel, body["thread_ts"]), []).append(body)
            else:
                self.messages[(channel, ts)] = body
            return web.json_response({"ok": True, "channel": channel, "ts": ts})
        finally:
            await self._changed_now()

    async def _response(self, request: web.Request) -> web.Response:
        self.attempts += 1
        try:
            if self.fail_response:
                return web.Response(status=self.fail_response.pop(0), text="no")
            self.received.append(Received("response", request.match_info["rid"], await request.json(), ""))
            return web.Response(text="ok")
        finally:
            await self._changed_now()

    def api_posts(self) -> list[Received]:
        return [r for r in self.received if r.kind == "api"]

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The bodies of the Web API calls of `method` (`chat.update`), in order."""
        return [r.body for r in self.received if r.kind == "api" and r.path == method]

    def top_posts(self) -> list[dict[str, Any]]:
        """chat.postMessage bodies that started a message of the channel (not a thread reply)."""
        return [body for body in self.calls("chat.postMessage") if not body.get("thread_ts")]

    def delete(self, channel: str, ts: str) -> None:
        """A person deleted the message: a chat.update of it now answers message_not_found."""
        del self.messages[(channel, ts)]

    def replies(self, rid: str | None = None) -> list[Received]:
        return [r for r in self.received if r.kind == "response" and (rid is None or r.path == rid)]

    async def wait_for(self, condition: Callable[[FakeSlack], bool]) -> None:
        """Wait until `condition(self)` holds. Bound it with asyncio.timeout."""
        async with self._changed:
            await self._changed.wait_for(lambda: condition(self))


def slack_headers(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends: `X-Slack-Request-Timestamp` and `X-Slack-Signature`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def command_body(text: str, *, user: str, response_url: str, trigger: str, command: str = "/guard") -> bytes:
    """A slash command's form body, as Slack posts it."""
    return urlencode({
        "token": "deprecated-verification-token", "team_id": "T0001", "team_domain": "acme",
        "channel_id": "C0001", "channel_name": "outreach", "user_id": user, "user_name": user.lower(),
        "command": command, "text": text, "api_app_id": "A0001", "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": trigger,
    }).encode()


def click_body(action: str, value: dict[str, Any], *, user: str, response_url: str, trigger: str,
               blocks: list[dict[str, Any]] | None = None) -> bytes:
    """A `block_actions` interaction, as Slack posts it (form field `payload` holding JSON)."""
    payload = {
        "type": "block_actions", "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001", "token": "deprecated", "container": {"type": "message", "message_ts": "1.2"},
        "trigger_id": trigger, "team": {"id": "T0001"}, "channel": {"id": "C0001", "name": "outreach"},
        "message": {"type": "message", "text": "Paused", "ts": "1.2", "blocks": blocks or []},
        "response_url": response_url,
        "actions": [{"action_id": action, "block_id": "guard_actions", "type": "button",
                     "value": json.dumps(value), "action_ts": "1.3"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()
