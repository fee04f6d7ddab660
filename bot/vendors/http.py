"""Shared HTTP machinery for vendor clients: one request helper, error mapping, retries, no leaked keys.

Every vendor call goes through `VendorHttp.request()`:

* statuses map onto `bot.errors`: 429/5xx, timeouts and connection errors → `VendorUnavailable`
  (with `retry_after` when the vendor gave one); 401/403 → `VendorAuthError`; 404 → `VendorNotFound`;
  any other 4xx (and an unexpected 3xx) → `VendorRejected` with a short detail from the error body;
* only `VendorUnavailable` is retried, with jittered exponential backoff that honours a
  `Retry-After` header or a body `retry_after`, at most `RetryPolicy.max_attempts` attempts;
* before each retry a `settled` callback (e.g. "re-GET: is the campaign already paused?") may end
  the loop, so a state-changing POST whose answer was lost is not blindly repeated;
* every attempt waits for a slot of the credential's limiter (`bot.vendors.ratelimit.Limiter`: a
  `SlidingWindowLimiter`, or a `bot.vendors.budget.SharedLimiter` when a fleet shares the budget;
  `background` reads wait behind every foreground request);
* a write's `guard` is awaited right before each attempt is sent, once the slot was granted: False
  withdraws the write (`WriteCancelled`, nothing sent). GETs never call it.

Keys never reach an exception, a log line or a repr: `where` is `"POST /campaigns/123/status"` (no
host, no query), aiohttp exceptions (whose text holds the URL, and Smartlead's key rides in the
query) are replaced by `VendorUnavailable` naming only the exception type, raised outside the
`except` block so not even `__context__` refers to them, and error bodies are scrubbed. With HTTP
Basic auth (lemlist: empty user, the key as password) the header's base64 form is a secret of its
own: it is registered with the log redactor when the client is made.

Rate-limit waits: `Retry-After` (seconds, an HTTP date or a JavaScript `Date.toString()` date such
as lemlist's "Tue Feb 16 2021 09:02:42 GMT+0100 (Central European Standard Time)"), else a body
`retry_after`, else an `X-RateLimit-Reset` header holding such a date (never epoch numbers, whose
unit no vendor agrees on). Anything unparseable is ignored: the backoff applies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

import aiohttp
import structlog
from pydantic import SecretStr
from yarl import URL

from bot.errors import (
    VendorAuthError,
    VendorError,
    VendorNotFound,
    VendorRejected,
    VendorUnavailable,
    WriteCancelled,
)
from bot.log import register_secret, scrub
from bot.metrics import VENDOR_CALLS
from bot.vendors import registry
from bot.vendors.ratelimit import Limiter

__all__ = [
    "Reply",
    "RetryPolicy",
    "VendorHttp",
    "VendorRefused",
    "basic_credentials",
    "check_campaign_id",
    "error_detail",
    "find_field",
    "find_stamp",
    "find_status",
    "parse_reset_date",
    "parse_retry_after",
]

log = structlog.get_logger(__name__)

AuthStyle = Literal["query", "bearer", "basic"]


def basic_credentials(key: str, user: str = "") -> str:
    """The base64 part of `Authorization: Basic ...` for `user:key` (lemlist: an empty user, so `:key`)."""
    return base64.b64encode(f"{user}:{key}".encode()).decode("ascii")


class VendorRefused(VendorRejected):
    """The client refused to act and made no HTTP call (resume of a draft, a forbidden status value)."""

    def __init__(self, vendor: str, where: str, detail: str) -> None:
        super().__init__(vendor, None, where, detail)

    def __str__(self) -> str:
        return f"{self.vendor} refused {self.where}: {self.detail[:200]}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of 429/5xx/timeouts inside one vendor operation. Tests use tiny delays."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    #: A Retry-After longer than this ends the operation at once; the error keeps `retry_after`
    #: so the worker can schedule its own, later retry instead of blocking here.
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait after failed attempt number `attempt` (1-based); None: give up now."""
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after + random.uniform(0, self.base_delay)
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return backoff / 2 + random.uniform(0, backoff / 2)


@dataclass(frozen=True, slots=True)
class Reply:
    """A 2xx answer: the status and the decoded JSON body ({} when empty or not JSON)."""

    status: int
    body: Any


def check_campaign_id(vendor: str, campaign_id: str, where: str) -> None:
    """Refuse an id that does not match the vendor's id pattern before it is put into a path."""
    spec = registry.get(vendor)
    if spec is None or not spec.campaign_id.fullmatch(campaign_id):
        raise VendorRefused(vendor, where, f"invalid {vendor} campaign id {campaign_id[:80]!r}")


def find_field(body: Any, campaign_id: str, key: str, kinds: tuple[type, ...] = (str,)) -> Any:
    """The campaign's `key` field, if it is one of `kinds`, from any envelope: top-level fields,
    `{"data": {...}}`, `{"campaign": {...}}`, a bare array or `{"data": [...]}` (the entry whose `id`
    matches); None if absent."""
    if isinstance(body, list):
        items = [item for item in body if isinstance(item, dict)]
        matches = [item for item in items if str(item.get("id")) == campaign_id]
        if not matches and len(items) == 1:
            matches = items
        return find_field(matches[0], campaign_id, key, kinds) if matches else None
    if not isinstance(body, dict):
        return None
    for wrapper in ("data", "campaign"):
        if wrapper in body:
            found = find_field(body[wrapper], campaign_id, key, kinds)
            if found is not None:
                return found
    value = body.get(key)
    return value if isinstance(value, kinds) and not isinstance(value, bool) else None


def find_status(body: Any, campaign_id: str) -> str | None:
    """The campaign's `status` string from any envelope (see `find_field`)."""
    status: str | None = find_field(body, campaign_id, "status")
    return status


def find_stamp(body: Any, campaign_id: str, key: str) -> str | None:
    """A time stamp field (`updated_at`, `pausedAt`, ...) verbatim, as a string; None if absent."""
    value = find_field(body, campaign_id, key, (str, int, float))
    return None if value is None else str(value)


def error_detail(body: Any, text: str, secret: str = "") -> str:
    """`code: message` from the error shapes vendors use (`error.code`, `code`, `error`), key-free."""
    code: Any = None
    message: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code, message = err.get("code"), err.get("message")
        elif isinstance(err, str):
            code = err
        code = code if code is not None else body.get("code")
        message = message if message is not None else body.get("message")
    if code is None and message is None:
        detail = " ".join(text.split())[:120]
    else:
        detail = ": ".join(str(part) for part in (code, message) if part not in (None, ""))
    if secret:
        detail = detail.replace(secret, "***")
    return scrub(detail)[:200]


_MONTHS: Final = {name: n for n, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
#: JavaScript's `Date.prototype.toString()`: "Tue Feb 16 2021 09:02:42 GMT+0100 (Central European ...)"
_JS_DATE: Final = re.compile(
    r"^\s*(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})"
    r"\s*(?:GMT|UTC)?\s*(?:([+-])(\d{2}):?(\d{2}))?(?:\s*\(.*\))?\s*$")


def parse_reset_date(text: str | None) -> datetime | None:
    """A JavaScript `Date.toString()` date (lemlist's `X-RateLimit-Reset`) as an aware datetime; None for
    anything else (epoch numbers included). Never raises."""
    if not text or len(text) > 200:
        return None
    match = _JS_DATE.match(text)
    if match is None:
        return None
    month = _MONTHS.get(match[1].lower())
    if month is None:
        return None
    offset = 0
    if match[7]:
        offset = (int(match[8]) * 60 + int(match[9])) * (-1 if match[7] == "-" else 1)
    try:
        return datetime(int(match[3]), month, int(match[2]), int(match[4]), int(match[5]), int(match[6]),
                        tzinfo=timezone(timedelta(minutes=offset)))
    except ValueError:              # day 31 of February, hour 25, an offset of a day or more
        return None


def _date_header(header: str) -> datetime | None:
    """An HTTP date or a JavaScript date, aware; None if it is neither."""
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        return parse_reset_date(header)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_retry_after(header: str | None, body: Any, reset: str | None = None) -> float | None:
    """Seconds from a `Retry-After` header (seconds, HTTP date or JavaScript date), a body `retry_after`,
    or, failing both, an `X-RateLimit-Reset` date (`reset`; epoch numbers are not read)."""
    if header:
        try:
            seconds = float(header)
        except ValueError:
            when = _date_header(header)
            if when is not None:
                return max(0.0, (when - datetime.now(UTC)).total_seconds())
        else:
            if math.isfinite(seconds):
                return max(0.0, seconds)
    if isinstance(body, dict):
        for holder in (body.get("error"), body):
            if isinstance(holder, dict) and isinstance(holder.get("retry_after"), int | float):
                return max(0.0, float(holder["retry_after"]))
    if reset and (until := parse_reset_date(reset)) is not None:
        return max(0.0, (until - datetime.now(UTC)).total_seconds())
    return None


class VendorHttp:
    """Calls one vendor with one credential. The session is shared and owned by the caller."""

    def __init__(
        self,
        vendor: str,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: SecretStr | str,
        auth: AuthStyle,
        limiter: Limiter,
        write_limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> None:
        self.vendor = vendor
        self._session = session
        self._base = base_url.rstrip("/")
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._auth = auth
        self._basic = basic_credentials(self._key.get_secret_value()) if auth == "basic" else ""
        if self._basic:
            register_secret(self._basic)        # the header's form of the key: a debug log must not show it
        self._read_limiter = limiter
        self._write_limiter = write_limiter or limiter
        self.retry = retry or RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=timeout) if timeout else None

    def __repr__(self) -> str:
        return f"VendorHttp({self.vendor!r}, base_url={self._base!r})"

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json_body: Mapping[str, Any] | None = None,
        settled: Callable[[], Awaitable[bool]] | None = None,
        guard: Callable[[], Awaitable[bool]] | None = None,
        max_attempts: int | None = None,
        background: bool = False,
    ) -> Reply | None:
        """One logical call with retries. Returns None only when `settled()` said the goal is reached.

        `guard` (writes only): awaited right before each attempt is sent, after its rate-limit slot was
        granted; False raises `WriteCancelled` and sends nothing. `background`: the rate limiter serves
        this call only when no foreground call is waiting (drift reads).
        """
        where = f"{method} {path}"
        limit = max_attempts or self.retry.max_attempts
        attempt = 0
        sent_before = False             # an earlier attempt reached the vendor and its outcome is unknown
        while True:
            attempt += 1
            failure: VendorUnavailable | None = None
            try:
                return await self._attempt(method, path, where, operation, json_body, attempt,
                                           guard=None if method == "GET" else guard, sent_before=sent_before,
                                           background=background)
            except VendorUnavailable as exc:
                failure = exc
            sent_before = sent_before or _maybe_applied(failure)
            delay = self.retry.delay(attempt, failure.retry_after) if attempt < limit else None
            if delay is None:
                log.warning("vendor.gave_up", vendor=self.vendor, where=where, attempts=attempt,
                            status=failure.status, detail=failure.detail)
                raise failure
            log.warning("vendor.retrying", vendor=self.vendor, where=where, attempt=attempt,
                        status=failure.status, detail=failure.detail, delay=round(delay, 3))
            await asyncio.sleep(delay)
            if settled is not None and await settled():
                log.info("vendor.settled", vendor=self.vendor, where=where, attempt=attempt)
                return None

    async def _attempt(
        self, method: str, path: str, where: str, operation: str, json_body: Mapping[str, Any] | None, attempt: int,
        *, guard: Callable[[], Awaitable[bool]] | None = None, sent_before: bool = False, background: bool = False,
    ) -> Reply:
        params: dict[str, str] = {}
        headers = {"Accept": "application/json", "User-Agent": "campaign-guard/0.1"}
        if self._auth == "query":
            params["api_key"] = self._key.get_secret_value()
        elif self._auth == "basic":
            headers["Authorization"] = f"Basic {self._basic}"
        else:
            headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        limiter = self._read_limiter if method == "GET" else self._write_limiter
        failure: VendorUnavailable | None = None
        status = 0
        text = ""
        retry_after_header: str | None = None
        reset_header: str | None = None
        extra: dict[str, Any] = {"timeout": self._timeout} if self._timeout else {}
        await limiter.acquire(background=background)
        sent = False
        try:
            if guard is not None and not await guard():
                log.info("vendor.write_withdrawn", vendor=self.vendor, where=where, attempt=attempt,
                         sent_before=sent_before)
                VENDOR_CALLS.labels(self.vendor, operation, "withdrawn").inc()
                raise WriteCancelled(self.vendor, where, sent_before=sent_before)
            sent = True
            started = time.perf_counter()
            try:
                async with self._session.request(
                    method, URL(self._base + path), params=params or None, headers=headers,
                    json=json_body, allow_redirects=False, **extra,
                ) as resp:
                    status = resp.status
                    retry_after_header = resp.headers.get("Retry-After")
                    reset_header = resp.headers.get("X-RateLimit-Reset")
                    text = (await resp.read()).decode("utf-8", errors="replace")
            except (aiohttp.ClientError, TimeoutError) as exc:
                # str(exc) may hold the URL, and with it the key: keep only the type name.
                failure = VendorUnavailable(self.vendor, None, where, type(exc).__name__)
        finally:
            limiter.release(used=sent)
        duration_ms = round((time.perf_counter() - started) * 1000)
        if failure is not None:
            VENDOR_CALLS.labels(self.vendor, operation, "timeout" if "Timeout" in failure.detail else "error").inc()
            log.info("vendor.called", vendor=self.vendor, where=where, attempt=attempt, error=failure.detail,
                     duration_ms=duration_ms)
            raise failure from None
        VENDOR_CALLS.labels(self.vendor, operation, "ok" if 200 <= status < 300 else str(status)).inc()
        # Writes are side effects (info); reads are chatter (debug).
        (log.debug if method == "GET" else log.info)(
            "vendor.called", vendor=self.vendor, where=where, attempt=attempt, status=status, duration_ms=duration_ms
        )
        body = _decode(text)
        if 200 <= status < 300:
            return Reply(status, body)
        raise self._error(status, where, body, text, retry_after_header, reset_header)

    def _error(self, status: int, where: str, body: Any, text: str, retry_after: str | None,
               reset: str | None = None) -> VendorError:
        detail = error_detail(body, text, self._key.get_secret_value())
        if self._basic:
            detail = detail.replace(self._basic, "***")
        if status == 429 or status >= 500:
            return VendorUnavailable(self.vendor, status, where, detail,
                                     retry_after=parse_retry_after(retry_after, body, reset))
        if status in (401, 403):
            return VendorAuthError(self.vendor, status, where, detail)
        if status == 404:
            return VendorNotFound(self.vendor, status, where, detail)
        if status < 400:
            return VendorRejected(self.vendor, status, where, "unexpected redirect (not followed)")
        return VendorRejected(self.vendor, status, where, detail)


def _maybe_applied(failure: VendorUnavailable) -> bool:
    """Whether a failed attempt may have reached the vendor and done its work: anything but a 429 (the
    vendor's rate limit refused it) or a failure to connect at all (nothing was sent)."""
    return failure.status != 429 and not failure.detail.startswith("ClientConnector")


def _decode(text: str) -> Any:
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return {}
