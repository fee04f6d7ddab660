"""Background refresh of the campaign inventory from the vendor APIs that offer it.

Every `BOT_INVENTORY_REFRESH` seconds (and once at start; a fleet duty, bot.fleet) each vendor client implementing
`InventorySource` is asked for its campaigns and their senders. New (campaign, sender) pairs are
written to the state store's `inventory` table in one transaction, then added to the worker's
in-memory `Inventory`, so they survive restarts and a pair is never in memory but not on disk.
Pairs are only added, never removed (a sender taken off a campaign stays until the row is deleted).
A vendor that fails is logged (`inventory.refresh_failed`, key-free) and asked again next period;
the others are merged anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import structlog
from pydantic import ValidationError

from bot.errors import BotError
from bot.events import CampaignRef, utcnow
from bot.inventory import Inventory
from bot.log import scrub
from bot.state.protocol import StateStore
from bot.vendors.base import InventorySource

__all__ = ["InventoryRefresher"]

log = structlog.get_logger(__name__)


def _checked(route: str, mapping: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Only valid `vendor:id` keys of the route's vendor, as the route's account's campaigns
    (`smartlead@acme:123` for route `smartlead@acme`), and lower-cased sender emails."""
    vendor, _, account = route.partition("@")
    checked: dict[str, set[str]] = {}
    for campaign, senders in mapping.items():
        try:
            ref = CampaignRef.parse(campaign)
        except ValidationError:
            ref = None
        if ref is None or ref.vendor != vendor:
            log.warning("inventory.bad_campaign", vendor=route, campaign=str(campaign)[:80])
            continue
        checked[str(ref.of_account(account or None))] = {s.strip().lower() for s in senders if "@" in s}
    return checked


class InventoryRefresher:
    """Merges what `sources` (route → client: one per account, bot.vendors.build) report into `inventory`,
    persisting new pairs. Each account's campaigns are recorded as that account's."""

    def __init__(
        self, inventory: Inventory, store: StateStore, sources: Mapping[str, object], *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.inventory = inventory
        self._store = store
        self._sources = {name: s for name, s in sources.items() if isinstance(s, InventorySource)}
        self._clock = clock
        self.rounds = 0
        self._changed = asyncio.Event()

    @property
    def vendors(self) -> list[str]:
        return sorted(self._sources)

    async def refresh(self) -> int:
        """Ask every source once; returns the number of new (campaign, sender) pairs learned."""
        learned = 0
        for name, source in sorted(self._sources.items()):
            started = time.perf_counter()
            try:
                mapping = _checked(name, await source.inventory())
                new = await self._merge(mapping)
            except BotError as exc:
                log.warning("inventory.refresh_failed", vendor=name, error=scrub(str(exc))[:300])
                continue
            except Exception as exc:  # noqa: BLE001 - a bug must not end the loop; log its kind only
                log.error("inventory.refresh_failed", vendor=name, error=type(exc).__name__)
                continue
            learned += new
            log.info("inventory.refreshed", vendor=name, campaigns=len(mapping),
                     senders=sum(len(s) for s in mapping.values()), new=new,
                     duration_ms=round((time.perf_counter() - started) * 1000))
        self.rounds += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        return learned

    async def _merge(self, mapping: Mapping[str, set[str]]) -> int:
        """Persist what the inventory does not know yet, then add it. Returns the number of new pairs."""
        rows: list[tuple[str, str]] = []
        for campaign, senders in mapping.items():
            known = self.inventory.senders(campaign)
            if not senders and campaign not in self.inventory:
                rows.append((campaign, ""))         # a campaign with no sender known: vendor scope
            rows.extend((campaign, s) for s in sorted(senders) if s not in known)
        if not rows:
            return 0
        now = self._clock()
        async with self._store.transaction() as tx:
            for campaign, sender in rows:
                await tx.add_inventory(campaign, sender, now)
        for campaign, sender in rows:
            self.inventory.add(campaign, sender or None)
        return sum(1 for _, sender in rows if sender)

    # The timeout parameter is deliberate: every wait in a test must be bounded (ASYNC109).
    async def wait_rounds(self, count: int, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait (without polling) until `count` refreshes have completed since start."""
        async with asyncio.timeout(timeout):
            while self.rounds < count:
                await self._changed.wait()
