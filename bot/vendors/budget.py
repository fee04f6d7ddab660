"""Rate budgets a fleet of workers shares: what the vendor layer asks of one (`SharedBudget`), and the limiter
that uses it (`SharedLimiter`).

A vendor counts requests per credential (per workspace: Instantly), whichever process sends them. A lone
worker's `SlidingWindowLimiter` sees every request, so it is the whole count. In a fleet (PostgreSQL state)
each process sees only its own: the count lives where all of them see it, a `SharedBudget`
(`bot.state.pg_budget`, in PostgreSQL). This module imports nothing of bot.state: the composition root
hands the budget to `bot.vendors.build.build_vendors`, which gives each client its limiters through
`SharedLimiters`.

A `SharedLimiter` grants a slot in three steps:

1. this process's limiter (a `MultiWindowLimiter` with the same windows): in-process priority, foreground
   (pauses, resumes and the reads they make) before background (drift reads), FIFO within each, and no
   database round trip while this process alone fills a window;
2. the turn: one waiter at a time asks the shared budget, foreground first, so waiters never ask all at once;
3. the shared budget: a slot counts from its grant until `period` after its release, as in the process's
   limiter, but over every process. Refused, the budget says how long to wait: the waiter hands its local
   slot back and waits that long at its class's gate (a timer, no polling), where every waiter of the class
   queues in order until the gate opens; then they ask again, one by one. Background waiters pass the
   foreground gate too: while pauses are refused, drift reads do not ask.

Across processes, background requests may take at most `background_share` of each window (rounded down, at
least one): the rest is always left to pauses and resumes, whichever process sends them. The share is `BOT_POLL_SHARE`
(bot.service hands it to `bot.vendors.build.build_vendors`).

Each limiter counts what it is granted and told to wait in /metrics (`campaign_guard_budget_slots_total`,
`campaign_guard_budget_waits_total`, by budget name and priority: never by key).

A release is synchronous (`VendorHttp` releases in `finally`); the budget is told in a task (`drain()` waits
for those). Until it is told, the slot counts as in flight: the fleet can count too many, never too few. A
slot the budget is never told about (the process dies, the database is down) stops counting after the
budget's staleness bound. Slots are interchangeable for counting, so a release finishes the oldest slot this
limiter granted (a request still in flight keeps a younger slot: it goes stale later, never sooner). When the
budget fails to answer a `take` (StateError: the database is down), the error propagates and nothing is
sent: nothing would keep the fleet's total within the limit.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

import structlog

from bot.metrics import BUDGET_LIMIT, BUDGET_SLOTS, BUDGET_WAITS
from bot.vendors.ratelimit import Limiter, MultiWindowLimiter, SlidingWindowLimiter, slot
from bot.vendors.spec import VendorConfig

__all__ = [
    "DEFAULT_BACKGROUND_SHARE",
    "MakeLimiter",
    "SharedBudget",
    "SharedLimiter",
    "SharedLimiters",
    "Slot",
    "Window",
    "limiter_of",
]

log = structlog.get_logger(__name__)

#: the share of each window background requests may take across the fleet
DEFAULT_BACKGROUND_SHARE: Final = 0.5
#: the shortest wait at a gate: a budget answering "0 s" again and again must not make a busy loop
_MIN_WAIT: Final = 0.005


class Window(NamedTuple):
    """One window of a budget, as the shared budget counts it."""

    limit: int              # requests per `period` seconds, every process together
    period: float
    background: int         # of which background requests may take at most this many


@dataclass(frozen=True, slots=True)
class Slot:
    """A slot the shared budget granted (its id there); handed back to `SharedBudget.done`."""

    id: int


class SharedBudget(Protocol):
    """The fleet's count of requests per budget (an account's route, `vendor#workspace`, ...)."""

    async def take(self, budget: str, windows: Sequence[Window], *, background: bool) -> Slot | float:
        """A slot of `budget` when every window has room (and, for a background request, room within its
        background share), else the seconds to wait before asking again: until the slot that must leave a
        full window leaves it, or a whole period when a slot in flight must finish first."""
        ...

    async def done(self, slot: Slot, *, used: bool) -> None:
        """The slot's request is over: it counts for each window's period from now on. `used=False`:
        nothing was sent, the slot is free at once."""
        ...


#: what a client factory is given to make its limiters: (budget key, windows) → that budget's limiter
MakeLimiter = Callable[[str, Sequence[tuple[int, float]]], Limiter]


def limiter_of(limiters: MakeLimiter | None, config: VendorConfig, *settings: str, part: str = "") -> Limiter | None:
    """What a client factory asks `limiters` for: the limiter of `config`'s budget (`VendorConfig.budget`, else
    the vendor's name; `part` appended where one credential has several budgets: Inbox's reads and writes)
    with the windows of its rate `settings` (`rate_limit` by default); None without `limiters`."""
    if limiters is None:
        return None
    return limiters((config.budget or config.name) + part, [config.rate(key) for key in settings or ("rate_limit",)])


class _Gate:
    """Closed for a while after a refusal; its waiters pass, in the order they came, when it opens."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._until = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def wait(self) -> None:
        await self._open.wait()

    def close(self, seconds: float) -> None:
        """Closed for `seconds` from now, or longer if it already was."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        if not self._open.is_set() and until <= self._until:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._until = until
        self._open.clear()
        self._timer = loop.call_at(until, self.open)

    def open(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._open.set()


class SharedLimiter:
    """At most `limit` requests per `period` (every window of `windows`) for `budget`, counted over every
    process sharing `budgets`. The same interface as `SlidingWindowLimiter` (`bot.vendors.ratelimit.Limiter`)."""

    def __init__(self, budget: str, windows: Sequence[tuple[int, float]], budgets: SharedBudget, *,
                 background_share: float = DEFAULT_BACKGROUND_SHARE) -> None:
        if not 0 < background_share <= 1:
            raise ValueError("background_share must be more than 0 and at most 1")
        self.budget = budget
        self._local = MultiWindowLimiter(windows)
        self.windows = self._local.windows
        self.limit, self.period = self._local.limit, self._local.period
        #: the windows as the shared budget counts them, each with its background share
        self.shared = tuple(Window(n, p, max(1, math.floor(n * background_share + 1e-9))) for n, p in self.windows)
        self._budgets = budgets
        self._turn = SlidingWindowLimiter(1, 1.0)      # a priority mutex: its one slot always goes back unused
        self._gates = (_Gate(), _Gate())                # foreground, background
        self._slots: deque[Slot] = deque()
        self._waiting = [0, 0]
        self._telling: set[asyncio.Task[None]] = set()
        BUDGET_LIMIT.labels(budget).set(min(n / p for n, p in self.windows))

    def __repr__(self) -> str:
        shown = " + ".join(f"{n}/{p:g}s" for n, p in self.windows)
        return (f"SharedLimiter({self.budget!r}, {shown}, in_flight={len(self._slots)}, "
                f"waiting={self._waiting[0]}+{self._waiting[1]}bg)")

    @property
    def waiting(self) -> tuple[int, int]:
        """(foreground, background) waiters right now, wherever they wait."""
        return self._waiting[0], self._waiting[1]

    async def acquire(self, *, background: bool = False) -> None:
        """Wait for a slot of this process's limiter and of the shared budget; pair with `release()`."""
        self._waiting[background] += 1
        try:
            while not await self._attempt(background):
                pass
        finally:
            self._waiting[background] -= 1

    async def _attempt(self, background: bool) -> bool:
        """One pass through the gates, the local limiter and the turn; True when the budget granted a slot.
        A background waiter passes the foreground gate first: it never asks while pauses are refused."""
        gates = self._gates[: 1 + background]
        for gate in gates:
            await gate.wait()
        await self._local.acquire(background=background)
        verdict: Slot | float | None = None
        try:
            await self._turn.acquire(background=background)
            try:
                if all(gate.is_open for gate in gates):     # else one ahead was refused meanwhile: back to the gate
                    verdict = await self._budgets.take(self.budget, self.shared, background=background)
            finally:
                self._turn.release(used=False)
        except BaseException:
            self._local.release(used=False)
            raise
        priority = "background" if background else "foreground"
        if isinstance(verdict, Slot):
            self._slots.append(verdict)
            BUDGET_SLOTS.labels(self.budget, priority).inc()
            return True
        self._local.release(used=False)
        if verdict is not None:
            BUDGET_WAITS.labels(self.budget, priority).inc()
            gates[-1].close(max(_MIN_WAIT, verdict))
        return False

    def release(self, *, used: bool = True) -> None:
        """The request is over (answered, failed or cancelled). `used=False`: nothing was sent."""
        slot = self._slots.popleft()
        self._local.release(used=used)
        task = asyncio.get_running_loop().create_task(self._done(slot, used), name=f"budget-done-{slot.id}")
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    async def _done(self, slot: Slot, used: bool) -> None:
        try:
            await self._budgets.done(slot, used=used)
        except Exception as exc:  # noqa: BLE001 - the slot stays in flight until the budget's staleness bound
            log.warning("vendor.budget_not_told", budget=self.budget, error=type(exc).__name__, detail=str(exc)[:200])
            return
        if not used:                            # a slot is free at once: whoever waits may ask again
            for gate in self._gates:
                gate.open()

    async def drain(self) -> None:
        """Return once the shared budget was told of every release so far."""
        while self._telling:
            await asyncio.gather(*self._telling)

    def slot(self, *, background: bool = False) -> AbstractAsyncContextManager[None]:
        """`async with limiter.slot(): <one HTTP request>`."""
        return slot(self, background=background)


class SharedLimiters:
    """A `MakeLimiter` for one set of clients on shared budgets: one `SharedLimiter` per budget key, made on
    first use (the clients of one Instantly workspace share it, as they share a local limiter without it)."""

    def __init__(self, budgets: SharedBudget, *, background_share: float = DEFAULT_BACKGROUND_SHARE) -> None:
        self._budgets = budgets
        self._share = background_share
        self._made: dict[str, SharedLimiter] = {}

    def __call__(self, budget: str, windows: Sequence[tuple[int, float]]) -> SharedLimiter:
        limiter = self._made.get(budget)
        if limiter is None:
            limiter = self._made[budget] = SharedLimiter(budget, windows, self._budgets,
                                                         background_share=self._share)
        return limiter

    def __getitem__(self, budget: str) -> SharedLimiter:
        return self._made[budget]

    async def drain(self) -> None:
        """Return once every limiter's releases reached the shared budget."""
        for limiter in list(self._made.values()):
            await limiter.drain()

