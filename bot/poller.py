"""The poller: vendor analytics and mailbox health, read every `BOT_POLL_SECONDS`, published as events.

Webhooks say what happened to one message; some vendors' own numbers are only in their APIs (Smartlead's
campaign analytics, its mailboxes' SMTP/IMAP state and warmup reputation). Every `BOT_POLL_SECONDS` (a fleet
duty, bot.fleet: one worker of the fleet polls, another takes over within the lease time), for each account
route whose client implements `MetricsSource` and/or `HealthSource` (bot.vendors.base), the poller reads them
and publishes one event per campaign (`campaign.metrics`) and per mailbox (`account.health`) through the
broker, confirmed, like a webhook: the rules decide on them in the worker, never here.

- **Background.** The clients read with background priority: a poll waits behind every pause, resume and
  foreground read, and takes at most `BOT_POLL_SHARE` of each rate window (bot.vendors.budget).
- **Once per period.** Event ids name the route, the item and the poll period (bot.polling), so a round
  repeated within a period (a retry, a duty handed over, a redelivery) is recorded once by the worker; this
  process also skips what it already published for the period.
- **Failures are reported, never decided on.** A read or a publish that fails (the `VendorError` tree,
  `BrokerUnavailable`, a publish not confirmed in time) is logged (`poll.failed`, route and a key-free error)
  and counted (`campaign_guard_polls_total{result="failed"}`), then retried with backoff while the period
  lasts; the events already read are published without reading again. Routes are polled side by side: one
  failing or slow does not hold up the others.
- **Leadterra** lists no campaigns: its client is told which to poll (`FollowsCampaigns.follow`), asked at
  every poll: the campaigns of its account this worker knows (`known_campaigns`: the inventory, with what
  events showed, and those campaign-guard holds or paused).

Metrics: `campaign_guard_polls_total{route,kind,result}`, `campaign_guard_poll_items_total{route,kind}`,
`campaign_guard_poll_last_success_timestamp_seconds{route,kind}`, `campaign_guard_poll_interval_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Final, Literal, Protocol, runtime_checkable

import structlog
from pydantic import ValidationError

from bot.broker.base import Broker
from bot.engine import Target
from bot.errors import BotError
from bot.events import DEFAULT_ACCOUNT, CampaignRef, Event, utcnow
from bot.inventory import Inventory
from bot.log import scrub
from bot.metrics import POLL_INTERVAL, POLL_ITEMS, POLL_LAST_SUCCESS, POLLS
from bot.polling import health_event, metrics_event, period_of
from bot.state.protocol import StateStore
from bot.vendors.base import HealthSource, MetricsSource

__all__ = ["DEFAULT_RETRY_DELAYS", "FollowsCampaigns", "Kind", "KnownCampaigns", "PollRound", "Poller",
           "known_campaigns", "pollable"]

log = structlog.get_logger(__name__)

Kind = Literal["metrics", "health"]

#: waits between the attempts of a failed poll (the last repeats), as long as the period lasts
DEFAULT_RETRY_DELAYS: Final = (5.0, 30.0, 120.0, 300.0)
#: retries stop this share of the interval after the round began: the next round is the next chance
_RETRY_WITHIN: Final = 0.9
#: seconds a publish may wait for the broker's confirm before the attempt counts as failed
_PUBLISH_TIMEOUT: Final = 10.0


#: route → the ids (the vendor's own, `camp_...`) of the campaigns of that account campaign-guard knows
KnownCampaigns = Callable[[str], Awaitable[list[str]]]


@runtime_checkable
class FollowsCampaigns(Protocol):
    """A client that lists no campaigns of its own (Leadterra): it polls those `known()` names at every poll."""

    def follow(self, known: Callable[[], Awaitable[list[str]]] | None) -> None: ...


def known_campaigns(inventory: Inventory, store: StateStore) -> KnownCampaigns:
    """What a `FollowsCampaigns` client of `route` is told to poll: the campaigns of the route's account in the
    worker's inventory (the inventory file, the pairs the fleet persisted, every campaign this worker's events
    showed) and those campaign-guard holds or paused (the state)."""

    async def known(route: str) -> list[str]:
        scope = route if "@" in route else f"{route}@{DEFAULT_ACCOUNT}"
        refs = {str(ref) for ref in inventory.resolve([Target("vendor", scope)])}
        refs.update(await store.watched_campaigns())
        ids: set[str] = set()
        for text in refs:
            try:
                ref = CampaignRef.parse(text)
            except ValidationError:
                continue
            if ref.route == route:
                ids.add(ref.id)
        return sorted(ids)

    return known


def pollable(vendors: Mapping[str, object]) -> dict[str, list[Kind]]:
    """Route → the kinds its client can poll (`metrics`: `MetricsSource`, `health`: `HealthSource`). Dry-run
    routes (bot.vendors.dryrun: no key, or BOT_DRY_RUN) call no vendor, reads included: they poll nothing."""
    kinds: dict[str, list[Kind]] = {}
    for route, client in sorted(vendors.items()):
        found: list[Kind] = []
        if isinstance(client, MetricsSource):
            found.append("metrics")
        if isinstance(client, HealthSource):
            found.append("health")
        if found:
            kinds[route] = found
    return kinds


@dataclass
class PollRound:
    """What one round did: events published per (route, kind), and what failed for good this period."""

    period: int
    published: dict[tuple[str, str], int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)        # already published this period
    failed: list[tuple[str, str]] = field(default_factory=list)


class Poller:
    """Polls `vendors` (route → client, bot.vendors.build) every `seconds` and publishes on `broker`.

    `campaigns(route)`: the campaign ids to poll for a route whose client lists none (`FollowsCampaigns`:
    Leadterra), asked by the client at each poll (`known_campaigns`). `retry_delays`: waits between failed attempts (the last repeats), within
    `_RETRY_WITHIN` of the interval. `clock`: the time events carry and periods are counted in."""

    def __init__(
        self, vendors: Mapping[str, object], broker: Broker, *, seconds: float,
        campaigns: KnownCampaigns | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        publish_timeout: float = _PUBLISH_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not retry_delays:
            raise ValueError("give at least one retry delay")
        self.seconds = seconds
        self._vendors = dict(vendors)
        self.kinds = pollable(vendors) if seconds > 0 else {}
        self._broker = broker
        if campaigns is not None:
            for route, kinds in self.kinds.items():
                client = vendors[route]
                if "metrics" in kinds and isinstance(client, FollowsCampaigns):
                    client.follow(partial(campaigns, route))
        self._delays = tuple(retry_delays)
        self._publish_timeout = publish_timeout
        self._clock = clock
        #: (route, kind) → the last period whose events were all published by this process
        self._done: dict[tuple[str, str], int] = {}
        self.rounds = 0
        self._changed = asyncio.Event()
        POLL_INTERVAL.set(seconds)

    @property
    def enabled(self) -> bool:
        """False when polling is off (`BOT_POLL_SECONDS=0`) or no configured client can poll."""
        return bool(self.kinds)

    async def run_once(self) -> PollRound:
        """One round: every route side by side, each kind once per period (retried within the period)."""
        now = self._clock()
        report = PollRound(period_of(now, self.seconds))
        if not self.enabled:
            return report
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds * _RETRY_WITHIN
        await asyncio.gather(*(self._route(route, kinds, now, report, deadline)
                               for route, kinds in self.kinds.items()))
        self.rounds += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return report

    # The timeout parameter is deliberate: every wait in a test must be bounded (ASYNC109).
    async def wait_rounds(self, count: int, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait (without polling) until `count` rounds have completed since start."""
        async with asyncio.timeout(timeout):
            while self.rounds < count:
                await self._changed.wait()

    async def _route(self, route: str, kinds: list[Kind], now: datetime, report: PollRound, deadline: float) -> None:
        """A route's kinds one after the other (they share its rate budget)."""
        for kind in kinds:
            if self._done.get((route, kind)) == report.period:
                report.skipped.append((route, kind))
                continue
            published = await self._poll(route, kind, now, report.period, deadline)
            if published is None:
                report.failed.append((route, kind))
            else:
                report.published[(route, kind)] = published
                self._done[(route, kind)] = report.period

    async def _poll(self, route: str, kind: Kind, now: datetime, period: int, deadline: float) -> int | None:
        """Read (once it succeeded, not again) and publish what is left, until done or out of time; the number
        of events published, or None when the period ran out first."""
        loop = asyncio.get_running_loop()
        events: list[Event] | None = None
        sent = 0
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                if events is None:
                    events = await self._read(route, kind, now, period)
                while sent < len(events):
                    await self._publish(events[sent])
                    sent += 1
            except (BotError, TimeoutError) as exc:
                error = ("broker did not confirm in time" if isinstance(exc, TimeoutError)
                         else f"{type(exc).__name__}: {scrub(str(exc))[:300]}")
            except Exception as exc:  # noqa: BLE001 - a bug in one route must not end the round; its kind only
                POLLS.labels(route, kind, "failed").inc()
                log.error("poll.failed", route=route, kind=kind, attempt=attempt, error=type(exc).__name__,
                          retry_in=None)
                return None
            else:
                POLLS.labels(route, kind, "ok").inc()
                POLL_ITEMS.labels(route, kind).inc(sent)
                POLL_LAST_SUCCESS.labels(route, kind).set(time.time())
                log.info("poll.done", route=route, kind=kind, period=period, items=sent, attempts=attempt,
                         duration_ms=round((time.perf_counter() - started) * 1000))
                return sent
            POLLS.labels(route, kind, "failed").inc()
            delay = self._delays[min(attempt, len(self._delays)) - 1]
            retry = loop.time() + delay < deadline
            log.warning("poll.failed", route=route, kind=kind, attempt=attempt, error=error,
                        read=events is not None, published=sent, retry_in=delay if retry else None)
            if not retry:
                return None
            await asyncio.sleep(delay)

    async def _read(self, route: str, kind: Kind, now: datetime, period: int) -> list[Event]:
        """The route's items of `kind` as events; an item the events cannot carry (an invalid id) is left out."""
        client = self._vendors[route]
        events: list[Event] = []
        if kind == "metrics":
            assert isinstance(client, MetricsSource)
            for item in await client.campaign_metrics():
                try:
                    events.append(metrics_event(route, item, now, period))
                except ValidationError:
                    log.warning("poll.bad_item", route=route, kind=kind, campaign_id=str(item.campaign_id)[:80])
        else:
            assert isinstance(client, HealthSource)
            for health in await client.mailbox_health():
                try:
                    events.append(health_event(route, health, now, period))
                except ValidationError:
                    log.warning("poll.bad_item", route=route, kind=kind, email=str(health.email)[:80])
        return events

    async def _publish(self, event: Event) -> None:
        async with asyncio.timeout(self._publish_timeout):
            await self._broker.publish(event.model_dump_json().encode(), message_id=event.id,
                                       routing_key=event.routing_key)
