"""Vendor simulator data: campaigns, the call log, injectable faults and server-side rate windows."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "ACCOUNT_SECRET",
    "FAULT_KINDS",
    "CallLog",
    "CallRecord",
    "Fault",
    "FaultKind",
    "SimCampaign",
    "SlidingWindow",
    "fingerprint",
    "format_retry_after",
    "max_in_window",
]

#: Every fake SMTP/IMAP password the simulator serves contains this, so tests can prove none is kept.
ACCOUNT_SECRET: Final = "SIM-ACCOUNT-PASSWORD"

FaultKind = Literal["error", "timeout", "rate_limit", "slow", "race", "hold", "empty"]
FAULT_KINDS: Final = ("error", "timeout", "rate_limit", "slow", "race", "hold", "empty")


def fingerprint(key: str) -> str:
    """A short, non-reversible name for a credential that has no label: `key#` + 8 hex digits of its SHA-256."""
    return "key#" + hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass
class SimCampaign:
    """One campaign in its vendor's own vocabulary. `leads`/`sequence_steps` gate start/enable;
    `accounts` are the sender emails rotating on it (Smartlead `GET /campaigns/{id}/email-accounts`).
    `owner` is the key that owns it (a Smartlead client's key, an Instantly workspace's key): only that
    key (Instantly: any key of its workspace) sees it, every other key gets the vendor's "not found";
    None: every accepted key of the vendor sees it."""

    vendor: str
    id: str
    status: str
    name: str = "Simulated campaign"
    leads: int = 1
    sequence_steps: int = 1
    created_at: str = "2026-01-01T00:00:00Z"
    updated_at: str = "2026-01-01T00:00:00Z"
    started_at: str | None = None
    paused_at: str | None = None
    completed_at: str | None = None
    accounts: list[str] = field(default_factory=list)
    owner: str | None = field(default=None, repr=False)     # a key: repr hides it, to_dict labels it

    @property
    def ref(self) -> str:
        return f"{self.vendor}:{self.id}"

    def to_dict(self, label: Callable[[str], str] = fingerprint) -> dict[str, Any]:
        """The campaign as JSON; `owner` is shown as `label(key)` (default: its fingerprint), never as the key."""
        data = asdict(self)
        data["owner"] = None if self.owner is None else label(self.owner)
        return {"campaign": self.ref, **data}


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One request as the simulator received it. `path` is relative to the vendor prefix, without
    the query string; credentials are never stored (Smartlead's body `api_key` is removed).
    `credential` names the key the vendor accepted: its label (`VendorSimulator(labels=...)`) or, without
    one, its fingerprint (`key#` + 8 hex digits of SHA-256); None when no key was accepted (401) or the
    request never reached the vendor's logic (a fault answered first)."""

    vendor: str
    method: str
    path: str
    body: Any
    status: int | None
    at: float               # simulator clock (time.monotonic by default) when the request arrived
    #: what the vendor's own logic answered (200: applied; 429: refused by the rate limit), also when an
    #: `after_apply` fault then held the answer back (`status` None) or replaced it; None if it never ran
    decided: int | None = None
    credential: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fault:
    """A misbehaviour applied to matching requests.

    kind: `error` answers `status` (500/503/...); `timeout` hangs `delay` seconds then answers 504;
    `rate_limit` answers 429 with `Retry-After: retry_after`; `slow` waits `delay` then answers
    normally; `race` sets the campaign to `set_status` before handling (someone else acted); `hold`
    keeps the request unanswered until `VendorSimulator.release_hangs()`, then answers normally (a
    write held in flight; `delay` > 0 caps the wait); `empty` answers 200 with an empty body (with
    `after_apply`: the vendor did the work but said nothing).
    `times` matching requests are affected (None: unlimited), and only until `until` when set.
    `after_apply` runs the real handler first (the state changes) and then misbehaves: the
    vendor did the work but the answer was lost.
    """

    id: int
    vendor: str
    kind: FaultKind = "error"
    status: int = 503
    times: int | None = 1
    until: float | None = None
    method: str | None = None
    path: str | None = None          # glob on the vendor-relative path, e.g. "/campaigns/*/status"
    delay: float = 0.0
    retry_after: float = 1.0
    after_apply: bool = False
    set_status: str | None = None
    hits: int = field(default=0)

    def active(self, now: float) -> bool:
        return (self.times is None or self.hits < self.times) and (self.until is None or now < self.until)

    def matches(self, vendor: str, method: str, path: str, now: float) -> bool:
        return (
            self.active(now)
            and self.vendor == vendor
            and (self.method is None or self.method.upper() == method)
            and (self.path is None or fnmatch.fnmatchcase(path, self.path))
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SlidingWindow:
    """Server-side check: at most `limit` admitted requests in any `period`-second window."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._admitted: deque[float] = deque()

    def admit(self, now: float) -> float | None:
        """Admit and return None, or return the seconds until a request would be admitted."""
        while self._admitted and self._admitted[0] + self.period <= now:
            self._admitted.popleft()
        if len(self._admitted) < self.limit:
            self._admitted.append(now)
            return None
        return self._admitted[0] + self.period - now

    def remaining(self, now: float) -> int:
        return max(0, self.limit - sum(1 for t in self._admitted if t + self.period > now))


def max_in_window(calls: Iterable[CallRecord], period: float) -> int:
    """The most calls the simulator received inside any `period`-second sliding window."""
    times = sorted(call.at for call in calls)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] + period <= moment:
            start += 1
        best = max(best, end - start + 1)
    return best


def format_retry_after(seconds: float, *, whole: bool = True) -> str:
    """`Retry-After` value: whole seconds (at least 1) as HTTP wants them, or, with `whole=False`
    (fault injection in tests), the value as given, e.g. "0.05"."""
    if whole:
        return str(max(1, math.ceil(seconds)))
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class CallLog:
    """The simulator's request log, and waiting on it (or on any state change) without polling."""

    def __init__(self) -> None:
        self._calls: list[CallRecord] = []
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _record(self, call: CallRecord) -> None:
        self._calls.append(call)
        self._notify()

    @property
    def calls(self) -> list[CallRecord]:
        """Every request so far, in the order they were answered."""
        return list(self._calls)

    def calls_for(self, vendor: str | None = None, method: str | None = None, path: str | None = None
                  ) -> list[CallRecord]:
        return [c for c in self._calls if (vendor is None or c.vendor == vendor)
                and (method is None or c.method == method) and (path is None or c.path == path)]

    def clear_calls(self) -> None:
        self._calls.clear()
        self._notify()

    # The timeout parameters are deliberate: every wait in a test must be bounded (ASYNC109).
    async def wait_until(self, condition: Callable[[], bool], *, timeout: float = 5.0,  # noqa: ASYNC109
                         what: str = "condition") -> None:
        """Wait (without polling) until `condition()` holds after some request or state change."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            seen = ", ".join(f"{c.vendor} {c.method} {c.path} → {c.status}" for c in self._calls[-10:])
            raise TimeoutError(f"simulator: {what} not reached within {timeout}s; last calls: [{seen}]") from None

    async def wait_for_calls(self, predicate: Callable[[CallRecord], bool] | None = None, count: int = 1,
                             timeout: float = 5.0) -> list[CallRecord]:  # noqa: ASYNC109
        """The first `count` logged calls matching `predicate`, waiting for them if needed."""
        def matching() -> list[CallRecord]:
            return [c for c in self._calls if predicate is None or predicate(c)]
        await self.wait_until(lambda: len(matching()) >= count, timeout=timeout, what=f"{count} matching call(s)")
        return matching()[:count]
