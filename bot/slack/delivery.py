"""Slack delivery: SlackNotifier (notices → outbox, nothing else) and SlackDeliverer (outbox → Slack).

A notice goes to its campaign's account channel (bot.accounts, `slack_channel`), else to the default
channel (BOT_SLACK_CHANNEL); shadow notices are batched into one digest per channel and interval. The
notices of one campaign's incident (bot.slack.incidents) are one message: the first is posted, and each
later one edits it (`chat.update`: where it stands now, with the buttons that fit) and is told in full in
its thread (`chat.postMessage` with `thread_ts`). The message's ts is recorded with the first delivery, in
one write (bot.state.outbox), and a later notice is handed out only once the earlier ones are settled: a
notice delivered again finds the ts and edits, it never posts a second message.

The deliverer is one background task: it sends what is due with slack_sdk's async clients
(`AsyncWebClient.chat_postMessage` to the channel, `AsyncWebhookClient` for `response_url` replies),
records each attempt, and retries 429/5xx/network failures with backoff (`Retry-After` honoured).
Other refusals (`channel_not_found`, `invalid_auth`, an expired response_url) fail the item at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.accounts import Accounts
from bot.errors import StateError
from bot.events import CampaignRef, utcnow
from bot.notify import Notice
from bot.slack.blocks import (
    digest_message,
    incident_message,
    notice_from_json,
    notice_message,
    notice_to_json,
    thread_message,
)
from bot.slack.incidents import QUIET, Phase, phase
from bot.state.outbox import Outbox, OutboxItem

__all__ = ["REPLY_TTL", "SlackDeliverer", "SlackNotifier"]

log = structlog.get_logger(__name__)

#: Slack accepts posts to a response_url for 30 minutes.
REPLY_TTL: Final = timedelta(minutes=30)
_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
#: Slack's answers to a chat.update of a message that is gone: the incident starts a message again
_GONE: Final = frozenset({"message_not_found", "cant_update_message"})
#: passes of one `deliver_due` at most: each hands out the next notice of the incidents the last one advanced
_PASSES: Final = 10


class SlackNotifier:
    """The Notifier for Slack: each notice becomes an outbox row in its channel; shadow notices share a digest
    per channel and interval.

    `channel` is the default (BOT_SLACK_CHANNEL); a campaign whose account has a `slack_channel` is noticed
    there instead. With no default, notices of campaigns without an account channel (and notices about no
    campaign) are logged, not sent."""

    def __init__(self, outbox: Outbox, *, channel: str | None, digest_seconds: float,
                 clock: Callable[[], datetime] = utcnow, accounts: Accounts | None = None) -> None:
        self._outbox = outbox
        self._channel = channel
        self._digest = digest_seconds
        self._clock = clock
        self._accounts = accounts if accounts is not None else Accounts([])

    def channel(self, notice: Notice) -> str | None:
        """Where the notice goes: its campaign's account channel, else the default (None: nowhere)."""
        ref = None
        if notice.campaign:
            try:
                ref = CampaignRef.parse(notice.campaign)
            except ValueError:          # a campaign of a vendor no longer registered: the default channel
                ref = None
        return self._accounts.channel(ref, self._channel)

    async def notify(self, notice: Notice) -> None:
        now = self._clock()
        channel = self.channel(notice)
        if channel is None:
            log.info("slack.notice_unrouted", kind=notice.kind, notice_campaign=notice.campaign,
                     reason="no BOT_SLACK_CHANNEL and no account channel for this campaign")
            return
        if notice.kind == "shadow":
            await self._digest_later(notice, channel, now)
            return
        payload = {"channel": channel, **notice_message(notice)}
        stage = phase(notice)
        if stage is None or notice.campaign is None:
            await self._outbox.enqueue("channel", payload, now=now)
            return
        # with its `text` and `blocks`: a deliverer of the previous release posts it as a message of its own
        await self._outbox.enqueue_incident(channel, notice.campaign, {**payload, "notice": notice_to_json(notice)},
                                            now=now, opens=stage is Phase.OPEN, closes=stage is Phase.CLOSE,
                                            quiet=QUIET)

    async def _digest_later(self, notice: Notice, channel: str, now: datetime) -> None:
        """A shadow notice joins its channel's digest of the interval, sent when the interval ends."""
        index = int((now - _EPOCH).total_seconds() // self._digest)
        start = _EPOCH + timedelta(seconds=index * self._digest)
        end = start + timedelta(seconds=self._digest)
        payload = {"channel": channel, "notice": notice_to_json(notice), "start": start.isoformat(),
                   "end": end.isoformat()}
        await self._outbox.enqueue("channel", payload, now=now, group=f"shadow:{channel}:{index}", due_at=end)


@dataclass(frozen=True, slots=True)
class _Result:
    ok: bool
    detail: str
    retry: bool = False
    retry_after: float = 0.0
    posted: tuple[str, str] | None = None       # (channel id, ts) of the message a post made


def _error_code(exc: SlackApiError) -> str:
    data = getattr(exc.response, "data", None)
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def _slack_error(exc: SlackApiError) -> _Result:
    status = int(getattr(exc.response, "status_code", 0) or 0)
    error = _error_code(exc)
    detail = f"slack api {status}" + (f" {error}" if error else "")
    if status == 429 or error == "ratelimited":
        headers = getattr(exc.response, "headers", {}) or {}
        try:
            after = float(headers.get("Retry-After", 0))
        except (TypeError, ValueError):
            after = 0.0
        return _Result(False, detail, retry=True, retry_after=after)
    return _Result(False, detail, retry=status >= 500 or status == 0)


class SlackDeliverer:
    """Sends due outbox items; `start()` runs it in the background, `stop()` ends it. Tests may call
    `deliver_due()` directly."""

    def __init__(
        self, outbox: Outbox, *, token: str | None, api_url: str, retry_delays: Sequence[float],
        max_attempts: int, clock: Callable[[], datetime] = utcnow, idle_poll: float = 30.0, timeout: float = 10.0,
    ) -> None:
        self._outbox = outbox
        self._token = token
        self._api_url = api_url
        self._delays = tuple(retry_delays) or (1.0,)
        self._max_attempts = max_attempts
        self._clock = clock
        self._idle_poll = idle_poll
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pass = asyncio.Lock()

    def _clients(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
            if self._token:
                self._web = AsyncWebClient(token=self._token, base_url=self._api_url, session=self._session,
                                           timeout=int(self._timeout), retry_handlers=[])
        return self._session

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="slack-deliverer")

    async def stop(self, grace: float = 5.0) -> None:
        """Let the pass in progress finish recording (so nothing sent is sent again), then end."""
        self._stopping = True
        self._outbox.changed.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._task)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
            self._session = self._web = None

    async def _run(self) -> None:
        while not self._stopping:
            self._outbox.changed.clear()
            try:
                await self.deliver_due()
                next_due = await self._outbox.next_due()
            except StateError as exc:
                log.warning("slack.outbox_unavailable", error=str(exc))
                next_due = None
            wait = self._idle_poll
            if next_due is not None:
                wait = min(wait, max((next_due - self._clock()).total_seconds(), 0.0))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._outbox.changed.wait()

    async def deliver_due(self) -> int:
        """Attempt every due item once (a digest group as one message), and the incidents' next notices as
        their turn comes; returns how many were sent."""
        async with self._pass:
            sent = 0
            self._clients()
            for _ in range(_PASSES):
                done, advanced = await self._one_pass()
                sent += done
                if not advanced:
                    break
            return sent

    async def _one_pass(self) -> tuple[int, bool]:
        """(items sent, whether an incident's notice was: its next one may be due now)."""
        sent, advanced = 0, False
        seen: set[int] = set()
        for item in await self._outbox.due(self._clock()):
            if self._stopping and self._task is not None:
                break
            if item.id not in seen:
                done = await self._deliver(item, seen)
                sent += done
                advanced |= bool(done) and item.incident is not None
        return sent, advanced

    async def _deliver(self, item: OutboxItem, seen: set[int]) -> int:
        batch = await self._outbox.grouped(item.group) if item.group else [item]
        seen.update(i.id for i in batch)
        if item.id not in {i.id for i in batch}:
            return 0                                            # delivered with its group already
        result = await self._attempt(batch)
        await self._settle(batch, result)
        return len(batch) if result.ok else 0

    async def _attempt(self, batch: list[OutboxItem]) -> _Result:
        first = batch[0]
        try:
            if first.target == "response_url":
                return await self._reply(first)
            if first.incident is not None:
                return await self._incident(first, first.incident)
            payload = first.payload
            if first.group:
                notices = [notice_from_json(i.payload["notice"]) for i in batch]
                payload = {"channel": first.payload["channel"], **digest_message(
                    notices, start=datetime.fromisoformat(first.payload["start"]),
                    end=datetime.fromisoformat(first.payload["end"]))}
            return await self._post(payload)
        except SlackApiError as exc:
            return _slack_error(exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return _Result(False, f"network: {type(exc).__name__}", retry=True)

    async def _post(self, payload: dict[str, Any]) -> _Result:
        if self._web is None:
            return _Result(False, "no BOT_SLACK_BOT_TOKEN: channel messages cannot be sent")
        response = await self._web.chat_postMessage(channel=payload["channel"], text=payload.get("text", ""),
                                                    blocks=payload.get("blocks"))
        ts, channel = str(response.get("ts") or ""), str(response.get("channel") or payload["channel"])
        return _Result(True, f"ok ts={ts}", posted=(channel, ts) if ts else None)

    async def _incident(self, item: OutboxItem, incident_id: int) -> _Result:
        """A notice of an incident: the first posts its message (the ts recorded with the attempt); a later
        one edits that message (idempotent: first), then tells itself in its thread."""
        incident = await self._outbox.incident(incident_id)
        notice = notice_from_json(item.payload["notice"])
        if incident is None or incident.ts is None or incident.posted_channel is None or self._web is None:
            return await self._post(item.payload)
        opening = notice_from_json(incident.opening.get("notice") or item.payload["notice"])
        message = incident_message(opening, notice, updates=incident.sent)
        try:
            await self._web.chat_update(channel=incident.posted_channel, ts=incident.ts, text=message["text"],
                                        blocks=message["blocks"])
        except SlackApiError as exc:
            if _error_code(exc) not in _GONE:
                raise
            log.warning("slack.incident_message_gone", incident=incident_id, error=_error_code(exc))
            return await self._post({"channel": item.payload["channel"], **message})     # its message again
        reply = thread_message(notice)
        await self._web.chat_postMessage(channel=incident.posted_channel, thread_ts=incident.ts, text=reply["text"],
                                         blocks=reply["blocks"])
        return _Result(True, f"ok ts={incident.ts} updated, thread reply")

    async def _reply(self, item: OutboxItem) -> _Result:
        if self._clock() - item.created_at > REPLY_TTL:
            return _Result(False, "response_url expired (Slack accepts replies for 30 minutes)")
        url = str(item.payload.get("url", ""))
        if not url.startswith(("https://", "http://")):
            return _Result(False, "no usable response_url")
        client = AsyncWebhookClient(url, session=self._session, timeout=int(self._timeout), retry_handlers=[])
        response = await client.send_dict(item.payload["body"])
        status = response.status_code
        if status == 200:
            return _Result(True, "ok")
        after = response.headers.get("Retry-After") if response.headers else None
        return _Result(False, f"http {status}", retry=status == 429 or status >= 500,
                       retry_after=float(after) if after and str(after).isdigit() else 0.0)

    async def _settle(self, batch: list[OutboxItem], result: _Result) -> None:
        now = self._clock()
        attempts = max(i.attempts for i in batch) + 1
        retry_at = None
        if not result.ok and result.retry and attempts < self._max_attempts:
            delay = max(self._delays[min(attempts - 1, len(self._delays) - 1)], result.retry_after)
            retry_at = now + timedelta(seconds=delay)
        await self._outbox.record([i.id for i in batch], now=now, ok=result.ok, detail=result.detail,
                                  retry_at=retry_at, posted=result.posted)
        fields = {"outbox_ids": [i.id for i in batch], "target": batch[0].target, "attempt": attempts,
                  "detail": result.detail}
        if result.ok:
            log.info("slack.delivered", **fields)
        elif retry_at is not None:
            log.warning("slack.delivery_retried", retry_at=retry_at.isoformat(), **fields)
        else:
            log.error("slack.delivery_failed", **fields)
