"""A fleet of workers on one state database: one writer per campaign, and each background duty once.

Both stand on the state's leases (bot.state.protocol.Leases: PostgreSQL's `leases` table for a fleet,
memory for a lone SQLite worker), claimed for `BOT_LEASE_SECONDS` and renewed at a third of that while
held. A worker killed or cut off stops renewing; its claims run out and the others take them over: the
campaigns it was acting on within the lease time (their redelivered messages wait for it), its duties too.

* `Writers.lock(campaign)`: everything that changes a campaign's holds, intents or vendor state runs
  under it (bot.executor). In the process, an asyncio lock per campaign keeps one coroutine at a time;
  across processes, the lease `writer:<campaign>`, polled with a capped backoff while another holds it.
  `Writers.fence(campaign)` is the last check before a vendor write (bot.reconciler's guard): the lease
  confirmed within two thirds of its time, else claimed again now, else `LeaseLost` and nothing is sent.
* `Duties.run(name, every, duty)`: the sweep, the drift watch and the inventory refresh run on the one
  worker holding `duty:<name>`; another takes over within the lease time when it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

import structlog

from bot.errors import BotError, RetryableError, StateError
from bot.state.protocol import Leases

__all__ = ["Duties", "LeaseLost", "Writers", "holder_id"]

log = structlog.get_logger(__name__)

#: waits between claims of a campaign another worker writes: from the first to the cap, doubling
_POLL: Final = (0.02, 0.5)


class LeaseLost(RetryableError):
    """This worker no longer holds a campaign's writer lease (it ran out): another may be acting on it."""


def holder_id() -> str:
    """This process, as lease holders are named: `host:pid:random` (a restarted pid is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Writers:
    """One writer per campaign, in this process and across the fleet (see the module docstring)."""

    def __init__(self, leases: Leases, holder: str, *, seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._leases = leases
        self.holder = holder
        self.seconds = seconds
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}
        #: campaign → when its lease was last confirmed (this process's clock, taken before the claim)
        self._held: dict[str, float] = {}

    @asynccontextmanager
    async def lock(self, campaign: str) -> AsyncIterator[None]:
        """Hold `campaign`'s writer lock for the block: wait for this process's other writer, then for the
        lease. The lease is released after the block (it runs out by itself if the release fails)."""
        lock = self._locks.setdefault(campaign, asyncio.Lock())
        self._waiters[campaign] = self._waiters.get(campaign, 0) + 1
        try:
            async with lock:
                await self._take(campaign)
                try:
                    yield
                finally:
                    self._held.pop(campaign, None)
                    with contextlib.suppress(StateError):
                        await self._leases.release(_writer(campaign), self.holder)
        finally:
            self._waiters[campaign] -= 1
            if not self._waiters[campaign]:
                del self._waiters[campaign], self._locks[campaign]

    async def _take(self, campaign: str) -> None:
        delay = _POLL[0]
        while not await self._claim(campaign):
            await asyncio.sleep(delay)          # another worker writes it: its lease ends by release or time
            delay = min(delay * 2, _POLL[1])

    async def _claim(self, campaign: str) -> bool:
        asked = self._clock()
        if await self._leases.claim(_writer(campaign), self.holder, self.seconds):
            self._held[campaign] = asked
            return True
        return False

    async def fence(self, campaign: str) -> None:
        """Right before a vendor write: the lease is still this worker's (confirmed lately, or claimed now);
        raises LeaseLost otherwise, and the write is not sent."""
        confirmed = self._held.get(campaign)
        if confirmed is None:
            raise LeaseLost(f"{campaign}: written outside its writer lock")
        if self._clock() - confirmed < self.seconds * 2 / 3 or await self._claim(campaign):
            return
        self._held.pop(campaign, None)
        raise LeaseLost(f"{campaign}: the writer lease ran out; another worker may be acting on it; retried")

    async def renew(self) -> None:
        """Extend every held lease (the renewer calls this every third of the lease time)."""
        for campaign in list(self._held):
            try:
                if not await self._claim(campaign) and campaign in self._held:
                    log.error("fleet.writer_lease_lost", campaign=campaign)
                    self._held.pop(campaign, None)
            except StateError as exc:           # the next renewal may get through; `fence` checks the age
                log.warning("fleet.renew_failed", campaign=campaign, error=str(exc))

    async def run(self) -> None:
        """Renew held leases until cancelled."""
        while True:
            await asyncio.sleep(self.seconds / 3)
            await self.renew()


def _writer(campaign: str) -> str:
    return f"writer:{campaign}"


class Duties:
    """Background duties run once across the fleet (see the module docstring)."""

    def __init__(self, leases: Leases, holder: str, *, seconds: float = 30.0) -> None:
        self._leases = leases
        self.holder = holder
        self.seconds = seconds
        #: duty name → rounds run by this worker (for operators and tests)
        self.rounds: dict[str, int] = {}

    async def run(self, name: str, every: float, duty: Callable[[], Awaitable[object]], *,
                  first: bool = False) -> None:
        """Until cancelled: claim the lease `duty:<name>` every third of the lease time (renewing it while
        held, also during a long round) and, while this worker holds it, run `duty` every `every` seconds
        (at once when `first`). A failed round is logged; the next comes all the same. Duties act on
        campaigns under their writer locks, so a round that outlives a lost lease does no harm."""
        lease = f"duty:{name}"
        holding = asyncio.Event()
        keeper = asyncio.create_task(self._keep(lease, holding), name=f"lease:{name}")
        due = time.monotonic() + (0 if first else every)
        try:
            while True:
                await holding.wait()
                if time.monotonic() >= due:
                    due = time.monotonic() + every
                    await self._round(name, duty)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            with contextlib.suppress(StateError):
                await self._leases.release(lease, self.holder)

    async def _keep(self, lease: str, holding: asyncio.Event) -> None:
        """Claim or renew `lease` every third of the lease time; `holding` says whether this worker has it."""
        while True:
            try:
                held = await self._leases.claim(lease, self.holder, self.seconds)
            except StateError as exc:
                log.warning("fleet.duty_claim_failed", duty=lease, error=str(exc))
                held = False
            if held and not holding.is_set():
                log.info("fleet.duty_taken", duty=lease, holder=self.holder)
            holding.set() if held else holding.clear()
            await asyncio.sleep(self.seconds / 3)

    async def _round(self, name: str, duty: Callable[[], Awaitable[object]]) -> None:
        try:
            await duty()
        except BotError as exc:
            log.warning(f"{name}.failed", error=str(exc))
        self.rounds[name] = self.rounds.get(name, 0) + 1
