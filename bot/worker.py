"""The worker's handler: one queued event → recorded, evaluated, acted on, then acked.

Not responsible for: broker mechanics (bot.broker), rule maths (bot.engine), vendor calls (bot.executor).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Final, Protocol

import structlog
from pydantic import ValidationError
from structlog.contextvars import bound_contextvars

from bot.accounts import Accounts
from bot.broker.base import Delivery, Outcome
from bot.engine import Decision, Evaluation, evaluate, key_value, tick, ticking
from bot.errors import BotError, RetryableError, VendorUnavailable
from bot.events import CampaignRef, Event, utcnow
from bot.executor import Executor
from bot.inventory import Inventory
from bot.metrics import EVENTS
from bot.ruleset import Rule, RuleSet
from bot.state.protocol import StateStore, Transaction
from bot.vocabulary import Act

__all__ = ["MAX_MESSAGE_BYTES", "EventOperator", "Worker"]

log = structlog.get_logger(__name__)
_NONE: Final[frozenset[str]] = frozenset()


#: Larger messages are dead-lettered unread: no intake makes one (BOT_MAX_BODY_BYTES bounds every request),
#: and parsing and recording one would stall the worker and bloat the state database.
MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024


def _invalid(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(body)"
    return f"invalid event: {where}: {first['msg']} ({exc.error_count()} error(s))"


class EventOperator(Protocol):
    """Handles events people send (Slack commands and clicks) instead of the rules: records the event
    itself (False for a redelivery), acts, and raises RetryableError to be retried."""

    def handles(self, event: Event) -> bool: ...

    async def handle(self, event: Event) -> bool: ...


class Worker:
    """Consumes events: dedupe by id, fold into rule windows, place holds, reconcile the campaign."""

    def __init__(
        self, *, store: StateStore, rules: RuleSet, executor: Executor,
        clock: Callable[[], datetime] = utcnow, inventory: Inventory | None = None, max_retries: int | None = None,
        operator: EventOperator | None = None, max_message_bytes: int = MAX_MESSAGE_BYTES,
        accounts: Accounts | None = None,
    ) -> None:
        self._store = store
        #: the configured accounts: an event's campaign is placed in one (`Accounts.place`) before the rules
        self._accounts = accounts if accounts is not None else Accounts([])
        self._max_message_bytes = max_message_bytes
        self._operator = operator
        self._rules = rules
        self._executor = executor
        self._clock = clock
        self._inventory = inventory if inventory is not None else Inventory()   # an empty one is falsy
        #: the broker's retry budget; the last failing attempt is recorded and notified before dead-lettering
        self._max_retries = max_retries
        #: outcome label → count, for operators (/metrics has the same) and for tests to wait on
        self.handled: Counter[str] = Counter()
        #: wait_handled's callers: (reached?, future); checked on each count, so a count costs nothing else
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    async def wait_handled(self, count: int, *, outcome: str | None = None) -> None:
        """Wait until `count` messages (of `outcome`, if given) were handled. Bound it with asyncio.timeout."""
        def reached() -> bool:
            return (self.handled[outcome] if outcome else self.handled.total()) >= count

        if reached():
            return
        waiter = (reached, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await waiter[1]
        finally:
            self._waiters.remove(waiter)

    async def _count(self, label: str) -> None:
        EVENTS.labels(label).inc()
        self.handled[label] += 1
        for reached, future in self._waiters:
            if not future.done() and reached():
                future.set_result(None)

    async def start(self, live_vendors: AbstractSet[str]) -> int:
        """At start: carry into live mode what a dry run of a vendor that is live now held, then finish
        vendor actions left pending; returns how many campaigns were reconciled."""
        for key in await self._store.dry_paused_campaigns():
            ref = CampaignRef.parse(key)
            if ref.route in live_vendors:
                async with self._executor.lock(ref), self._store.transaction() as tx:
                    await self._executor.go_live(tx, ref, self._clock())
        return await self.recover()

    async def recover(self) -> int:
        """Finish vendor actions left pending by a crash or an exhausted retry; returns how many."""
        keys = await self._store.pending_campaigns()
        for key in keys:
            await self._each(key, self._executor.reconcile, "campaign.recovery_deferred")
        return len(keys)

    async def watch(self) -> int:
        """The drift watch: re-read every campaign held or paused by campaign-guard (in the background of
        the rate budget) and act on what people changed at the vendor; returns how many were read."""
        keys = await self._store.watched_campaigns()
        for key in keys:
            await self._each(key, self._executor.check, "campaign.check_deferred")
        return len(keys)

    async def _each(self, key: str, step: Callable[[CampaignRef], Awaitable[None]], deferred: str) -> None:
        """`step` under the campaign's lock; a failure is logged (a background duty goes on to the next)."""
        try:
            await self._locked(key, step)
        except RetryableError as exc:
            log.warning(deferred, error=str(exc), campaign=key)
        except BotError as exc:
            log.error(deferred, error=str(exc), campaign=key)

    async def _locked(self, key: str, step: Callable[[CampaignRef], Awaitable[None]]) -> None:
        ref = CampaignRef.parse(key)
        with bound_contextvars(campaign=key):
            async with self._executor.lock(ref):
                await step(ref)

    async def sweep(self) -> None:
        """Expire parked decisions, release what the clock releases, then finish pending vendor actions
        (e.g. a pause approved from the CLI)."""
        async with self._store.transaction() as tx:
            await self._executor.expire_pending(tx, self._clock())
        await self.tick()
        await self.recover()

    async def tick(self) -> int:
        """Time-based releases: a paused campaign gets no more send events, so every active window of a rule
        with a `release` is judged on the clock too (engine.tick). Returns how many campaigns it touched."""
        touched: set[str] = set()
        for rule in self._rules.rules:
            if not ticking(rule):
                continue
            for key, state in await self._store.windows_where(rule.name, "active"):
                now = self._clock()
                result = tick(rule, key, state, now)
                if result.window is None and not result.decisions and not result.declined:
                    continue
                async with self._store.transaction() as tx:
                    if await tx.window(rule.name, key) != state:
                        continue            # an event moved this window meanwhile: it judged it already
                    touched |= await self._apply(tx, rule, key, result, now)
        await self._reconcile(touched)
        return len(touched)

    def _parse(self, body: bytes) -> Event | str:
        """The event, or why the message is poison."""
        if len(body) > self._max_message_bytes:
            return f"message too large: {len(body)} bytes > {self._max_message_bytes}"
        try:
            return Event.model_validate_json(body)
        except ValidationError as exc:
            return _invalid(exc)

    async def handle(self, delivery: Delivery) -> Outcome:
        """Decide the delivery's fate. Acks only after the effect and its record are stored."""
        started = time.perf_counter()
        event = self._parse(delivery.body)
        if isinstance(event, str):
            await self._count("dead")
            log.error("message.invalid", reason=event, message_id=delivery.message_id)
            return Outcome.dead(event)
        campaign = str(event.campaign) if event.campaign else None
        with bound_contextvars(event_id=event.id, event_type=event.type, campaign=campaign):
            outcome, label = await self._guarded(event, delivery)
            await self._count(label)
            # one line per message: debug when all went well (thousands a second), info otherwise
            (log.debug if label in ("ack", "duplicate") else log.info)(
                "event.handled", outcome=label, retries=delivery.retries,
                duration_ms=round((time.perf_counter() - started) * 1000, 2))
            return outcome

    async def _guarded(self, event: Event, delivery: Delivery) -> tuple[Outcome, str]:
        try:
            new = await self._process(event, delivery.body)
        except VendorUnavailable as exc:
            log.warning("event.retry", error=str(exc))
            if self._max_retries is not None and delivery.retries >= self._max_retries and event.campaign:
                await self._executor.gave_up(event.campaign, str(exc), attempts=delivery.retries + 1)
                return Outcome.retry(str(exc), delay=exc.retry_after), "dead"
            return Outcome.retry(str(exc), delay=exc.retry_after), "retry"
        except RetryableError as exc:
            log.warning("event.retry", error=str(exc))
            return Outcome.retry(str(exc)), "retry"
        except BotError as exc:
            log.error("event.failed", error=str(exc))
            return Outcome.dead(f"{type(exc).__name__}: {exc}"), "dead"
        return Outcome.ack(), ("ack" if new else "duplicate")

    async def _process(self, event: Event, body: bytes) -> bool:
        """Record, evaluate and act in one transaction, then reconcile every campaign it touched.

        Returns False for a duplicate. A duplicate's campaign is reconciled, which finishes a vendor action
        a crash or a failed attempt left pending (start-up and the periodic sweep cover the rest).
        """
        if self._operator is not None and self._operator.handles(event):
            return await self._operator.handle(event)
        if event.campaign is not None:      # which account's campaign: AccountError when that is not one
            placed = self._accounts.place(event.campaign, self._inventory.listed)
            if placed != event.campaign:
                event = event.model_copy(update={"campaign": placed})
        client = self._accounts.client(event.campaign)
        now = self._clock()
        touched: set[str] = set()
        async with self._store.transaction() as tx:
            new = await tx.record_event(event, now, body=body)
            if new:
                learned = self._inventory.observe(event)
                if learned is not None:
                    await tx.add_inventory(*learned, now)
                if event.type == "campaign.started" and await self._executor.vendor_started(tx, event, now):
                    touched.add(str(event.campaign))
                rules = self._rules.for_type(event.type)
                if event.type == "alert.firing" and await self._executor.resolved_before(tx, event, now):
                    rules = ()                  # a late duplicate of a firing that already resolved
                keys: dict[str, str | None] = {}
                await tx.take_windows([(rule.name, key) for rule in rules
                                       if (key := key_value(rule.key, event, keys)) is not None])
                for rule in rules:
                    touched |= await self._evaluate(tx, rule, event, now, keys, client)
        if event.campaign is not None and not new:
            touched.add(str(event.campaign))    # a redelivery: finish what a crash or a retry left pending
        await self._reconcile(touched)
        return new

    async def _reconcile(self, touched: AbstractSet[str]) -> None:
        """Reconcile each campaign under its lock; a failure propagates (the message is retried)."""
        for key in sorted(touched):
            await self._locked(key, self._executor.reconcile)

    async def _evaluate(self, tx: Transaction, rule: Rule, event: Event, now: datetime,
                        keys: dict[str, str | None], client: str | None) -> AbstractSet[str]:
        """Run one rule; apply its decisions to the campaigns they designate. Returns campaigns to reconcile."""
        key = key_value(rule.key, event, keys)
        result = evaluate(rule, event, await tx.window(rule.name, key) if key else None, now, memo=keys,
                          client=client)
        if not result.decisions and not result.declined:
            if result.window is not None and key is not None:
                await tx.set_window(rule.name, key, result.window, now)
            return _NONE
        return await self._apply(tx, rule, key, result, now)

    async def _apply(self, tx: Transaction, rule: Rule, key: str | None, result: Evaluation, now: datetime) -> set[str]:
        """Store the rule's window and apply its decisions (recording those it declined); returns the
        campaigns to reconcile."""
        if result.window is not None and key is not None:
            await tx.set_window(rule.name, key, result.window, now)
        for declined in result.declined:
            await self._executor.declined(tx, declined, now)
        touched: set[str] = set()
        for decision in result.decisions:
            with bound_contextvars(rule=rule.name):
                touched |= await self._decide(tx, rule, decision, now)
        return touched

    async def _decide(self, tx: Transaction, rule: Rule, decision: Decision, now: datetime) -> set[str]:
        """Apply one decision to every campaign it designates; returns those to reconcile.

        A release also reaches every campaign its owners hold today, whatever the inventory says now, and
        withdraws the pauses the breaker parked for them: a resolved alert leaves nothing behind.
        """
        campaigns = self._inventory.resolve(decision.targets)
        if decision.action == Act.RELEASE and not decision.shadow:
            held = await self._executor.withdraw(tx, decision, now)
            campaigns = sorted({*campaigns, *held}, key=str)
        if not campaigns and rule.action is not None:       # say so rather than silently doing nothing
            await self._executor.unmatched(tx, decision, now)
        return {str(ref) for ref in campaigns if await self._executor.apply(tx, decision, ref, now)}
