"""The worker's handler: one queued event → recorded, evaluated, acted on, then acked.

Not responsible for: broker mechanics (bot.broker), rule maths (bot.engine), vendor calls (bot.executor).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any, Final, Protocol

import structlog
from pydantic import ValidationError
from structlog.contextvars import bound_contextvars

from bot.accounts import Accounts
from bot.broker.base import Delivery, Outcome
from bot.broker.policy import exception_reason
from bot.engine import TICK_FLAGS, Decision, Evaluation, evaluate, key_value, tick, ticking
from bot.errors import BotError, RetryableError, VendorUnavailable
from bot.events import CampaignRef, Event, utcnow
from bot.executor import Executor
from bot.inventory import Inventory
from bot.metrics import DECISION_SECONDS, EVENTS
from bot.ruleset import Rule, RuleSet
from bot.state.protocol import StateStore, Transaction
from bot.vocabulary import Act

__all__ = ["MAX_MESSAGE_BYTES", "EventOperator", "Worker"]

log = structlog.get_logger(__name__)


#: Larger messages are dead-lettered unread: no intake makes one (BOT_MAX_BODY_BYTES bounds every request),
#: and parsing and recording one would stall the worker and bloat the state database.
MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024


def _invalid(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(body)"
    return f"invalid event: {where}: {first['msg']} ({exc.error_count()} error(s))"


class _Item:
    """One event of a batch on its way through `Worker.handle_batch`."""

    __slots__ = ("campaign", "client", "delivery", "event", "index", "keys", "new", "outcome", "pairs", "rules",
                 "touched")

    def __init__(self, index: int, delivery: Delivery, event: Event) -> None:
        self.index, self.delivery, self.event = index, delivery, event
        self.campaign = str(event.campaign) if event.campaign else None
        self.client: str | None = None
        self.keys: dict[str, str | None] = {}       # rule keys found once for all the event's rules
        self.rules: tuple[Rule, ...] = ()
        #: each rule's (rule name, key) window, None for a rule with no key on this event
        self.pairs: list[tuple[str, str] | None] = []
        self.new = False
        self.touched: set[str] = set()
        self.outcome: tuple[Outcome, str] | None = None     # set once decided (or failed)

    def place(self, accounts: Accounts, inventory: Inventory) -> None:
        """Which account's campaign this is (AccountError when that is not one), and its client label."""
        if self.event.campaign is not None:
            placed = accounts.place(self.event.campaign, inventory.listed)
            if placed is not self.event.campaign:     # `place` gives the ref itself when it is placed
                self.event = self.event.model_copy(update={"campaign": placed})
                self.campaign = str(placed)
        self.client = accounts.client(self.event.campaign)


class _Group:
    """Items of the batches that arrived while another group was being judged: judged in one transaction."""

    __slots__ = ("done", "items")

    def __init__(self, done: asyncio.Future[None] | None = None) -> None:
        self.done = done if done is not None else asyncio.get_running_loop().create_future()
        self.items: list[_Item] = []

    @classmethod
    def of(cls, items: list[_Item]) -> _Group:
        group = cls()
        group.items = items
        return group


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
        accounts: Accounts | None = None, concurrent_actions: int = 16,
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
        #: one group's transaction at a time (FIFO: groups are judged in the order they formed; `_judge`)
        self._deciding = asyncio.Lock()
        #: campaigns reconciled at once across the batches in flight (`Settings.concurrent_actions`)
        self._acting = asyncio.Semaphore(concurrent_actions)
        self._forming: _Group | None = None
        self._judging: set[asyncio.Task[None]] = set()

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

    def _count(self, labels: Counter[str]) -> None:
        for label, count in labels.items():
            EVENTS.labels(label).inc(count)
        self.handled.update(labels)
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
        """Decisions the clock takes (engine.tick): a paused campaign gets no more send events, so every
        active window of a rule with a `release` is judged on the clock too, and so is every window waiting
        for an age (`due`: "no reply after 48 hours" is decided at hour 48, not at the next event). Returns
        how many campaigns it touched."""
        touched: set[str] = set()
        for rule in self._rules.rules:
            if not ticking(rule):
                continue
            windows: dict[str, dict[str, Any]] = {}
            for flag in TICK_FLAGS:
                windows.update(await self._store.windows_where(rule.name, flag))
            for key, state in windows.items():
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
        """Decide one delivery's fate (`handle_batch` of one)."""
        return (await self.handle_batch([delivery]))[0]

    async def handle_batch(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Decide the fate of deliveries handed over together, in delivery order. Acks only after the
        effects and their records are stored.

        1. Parse each (poison → dead) and place its campaign in an account.
        2. Record and evaluate them in ONE transaction, in order (so a campaign's events are judged in the
           order they came): one INSERT for the events, one read of every rule window they reach. Batches
           handed over while another one's transaction runs are judged together in the next (`_judge`):
           the busier the worker, the larger its transactions. Should a transaction fail, each of its
           events is taken again in a transaction of its own, so one bad event costs only its own outcome.
        3. Reconcile every campaign they touched (concurrently, each under its lock); an event is retried
           when a campaign it touched could not be reconciled.
        Events people send (Slack) go to the operator, one by one, after the others.
        """
        started = time.perf_counter()
        outcomes: list[tuple[Outcome, str] | None] = [None] * len(deliveries)
        items: list[_Item] = []
        by_people: list[_Item] = []
        for index, delivery in enumerate(deliveries):
            event = self._parse(delivery.body)
            if isinstance(event, str):
                log.error("message.invalid", reason=event, message_id=delivery.message_id)
                outcomes[index] = Outcome.dead(event), "dead"
                continue
            item = _Item(index, delivery, event)
            if self._operator is not None and self._operator.handles(event):
                by_people.append(item)
                continue
            try:
                item.place(self._accounts, self._inventory)
                items.append(item)
            except BotError as exc:
                outcomes[index] = await self._failed(item, exc)
        if items:
            await self._judge(items)
            await self._settle_effects(items)
        for item in by_people:
            item.outcome = await self._by_operator(item)
        for item in (*items, *by_people):
            outcomes[item.index] = item.outcome
        elapsed = time.perf_counter() - started
        duration_ms, observe = round(elapsed * 1000, 2), DECISION_SECONDS.observe
        result, labels = [], Counter[str]()
        for delivery, decided in zip(deliveries, outcomes, strict=True):
            assert decided is not None
            outcome, label = decided
            labels[label] += 1
            observe(elapsed)
            # one line per message: debug when all went well (thousands a second), info otherwise
            (log.debug if label in ("ack", "duplicate") else log.info)(
                "event.handled", outcome=label, retries=delivery.retries, message_id=delivery.message_id,
                batch=len(deliveries), duration_ms=duration_ms)
            result.append(outcome)
        self._count(labels)
        return result

    async def _judge(self, items: list[_Item]) -> None:
        """Step 2 of `handle_batch`: join the group forming now (or start one), and wait until it was judged
        (`item.new`, `item.touched` set, or `item.outcome` when it failed).

        One group at a time is judged, in the order they formed (`_deciding`, FIFO); a group stops taking
        items when its turn comes. It is judged in a task of its own, so a batch cancelled meanwhile (its
        messages go back to the queue) leaves the others' judgement alone."""
        group = self._forming
        if group is None:
            group = self._forming = _Group(asyncio.get_running_loop().create_future())
            task = asyncio.get_running_loop().create_task(self._judge_group(group))
            self._judging.add(task)
            task.add_done_callback(self._judging.discard)
        group.items += items
        await asyncio.shield(group.done)

    async def _judge_group(self, group: _Group) -> None:
        try:
            await self._deciding.acquire()
            ended = False

            def end_turn() -> None:             # once: at the end of the block, or on the way out
                nonlocal ended
                if not ended:
                    ended = True
                    self._deciding.release()

            try:
                await self._fold_batch(group, end_turn)
            except Exception as exc:        # noqa: BLE001 (each event is taken again alone; see below)
                self._close(group)
                end_turn()
                await self._one_by_one(group.items, exc)
            finally:
                end_turn()
        except BaseException:               # cancelled (shutting down): nobody may ack what was not judged
            self._close(group)
            group.done.cancel()             # its batches are cancelled too: their messages go back to the queue
            raise
        self._close(group)
        group.done.set_result(None)

    def _close(self, group: _Group) -> None:
        """The group takes no more items: those handed over from now on form the next one."""
        if self._forming is group:
            self._forming = None

    async def _one_by_one(self, items: list[_Item], exc: Exception) -> None:
        """A group's transaction failed: each item again in a transaction of its own (its turn held through
        its commit: a rare path), so that only the items that fail get their outcome from it."""
        if len(items) == 1:
            items[0].outcome = await self._failed(items[0], exc)
            return
        log.warning("batch.split", events=len(items), error=f"{type(exc).__name__}: {exc}")
        for item in items:
            item.new, item.touched = False, set()
            try:
                async with self._deciding:
                    await self._fold_batch(_Group.of([item]), lambda: None)
            except Exception as failure:    # noqa: BLE001 (a bug in one event is that event's dead letter)
                item.outcome = await self._failed(item, failure)

    async def _fold_batch(self, group: _Group, end_turn: Callable[[], None]) -> None:
        """Record the group's events and run their rules in one transaction (see `handle_batch`), then
        `end_turn`. The group takes items until its transaction has begun (the store may make it wait: a
        COMMIT in progress), then it is closed and the next one forms.

        The turn ends with the transaction's block, not its commit: the next group's transaction comes
        after this one's all the same (SQLite: later in the same group commit; PostgreSQL: it waits on the
        rows and locks this one took until it commits), and on SQLite several groups share one COMMIT."""
        async with self._store.transaction() as tx:
            self._close(group)
            items, now = group.items, self._clock()
            recorded = await tx.record_events([(item.event, item.delivery.body) for item in items], now)
            wanted: list[tuple[str, str]] = []
            for item in items:
                item.new = item.event.id in recorded
                recorded.discard(item.event.id)     # the same id again in this batch is a duplicate
                if item.new:
                    item.rules = self._rules.for_type(item.event.type)
                    item.pairs = [(rule.name, key) if (key := key_value(rule.key, item.event, item.keys)) is not None
                                  else None for rule in item.rules]
                    wanted += [pair for pair in item.pairs if pair is not None]
            windows = await tx.take_windows(wanted)
            changed: dict[tuple[str, str], dict[str, Any]] = {}
            for item in items:
                item.touched = set()
                if item.new:
                    item.touched = await self._fold(tx, item, now, windows, changed)
            await tx.set_windows(changed, now)
            end_turn()                          # the next group's transaction may begin
        for item in items:
            if item.event.campaign is not None and not item.new:
                item.touched.add(item.campaign or "")   # a redelivery: finish what a crash or a retry left pending

    async def _fold(self, tx: Transaction, item: _Item, now: datetime,
                    windows: dict[tuple[str, str], dict[str, Any] | None],
                    changed: dict[tuple[str, str], dict[str, Any]]) -> set[str]:
        """One new event inside the batch's transaction: learn its sender, note a vendor start, run its
        rules over `windows` (those the batch took; what they change goes into both, for the next event and
        for `set_windows`). Returns the campaigns to reconcile. What may log runs with the event in the log
        context; the rules are pure, and an event that only moves windows (nearly all) needs none."""
        event, touched = item.event, set()
        learned = self._inventory.observe(event)
        if learned is not None:
            await tx.add_inventory(*learned, now)
        rules = item.rules
        if event.type in ("campaign.started", "alert.firing"):
            with self._context(item):
                if event.type == "campaign.started" and await self._executor.vendor_started(tx, event, now):
                    touched.add(str(event.campaign))
                if event.type == "alert.firing" and await self._executor.resolved_before(tx, event, now):
                    rules = ()          # a late duplicate of a firing that already resolved
        keys, client, pairs = item.keys, item.client, item.pairs if rules else []
        for rule, pair in zip(rules, pairs, strict=True):
            window = windows[pair] if pair is not None else None    # every pair was taken (`_fold_batch`)
            result = evaluate(rule, event, window, now, memo=keys, client=client)
            if result.window is not None and pair is not None:
                windows[pair] = changed[pair] = result.window
            if result.decisions or result.declined:
                with self._context(item):
                    touched |= await self._apply(tx, rule, pair[1] if pair is not None else None, result, now)
        return touched

    @staticmethod
    def _context(item: _Item) -> contextlib.AbstractContextManager[None]:
        return bound_contextvars(event_id=item.event.id, event_type=item.event.type, campaign=item.campaign)

    async def _settle_effects(self, items: list[_Item]) -> None:
        """Step 3 of `handle_batch`: reconcile the campaigns the decided items touched, each once."""
        decided = [item for item in items if item.outcome is None]
        touched = sorted({key for item in decided for key in item.touched})
        failures: dict[str, BaseException] = {}
        if touched:
            done = await asyncio.gather(*(self._acted(key) for key in touched), return_exceptions=True)
            failures = {key: exc for key, exc in zip(touched, done, strict=True) if isinstance(exc, BaseException)}
            for exc in failures.values():
                if not isinstance(exc, Exception):
                    raise exc                       # cancelled: the messages go back to the queue
        for item in decided:
            failed = next((failures[key] for key in sorted(item.touched) if key in failures), None)
            item.outcome = (await self._failed(item, failed) if failed is not None
                            else (Outcome.ack(), "ack" if item.new else "duplicate"))

    async def _acted(self, key: str) -> None:
        async with self._acting:
            await self._locked(key, self._executor.reconcile)

    async def _by_operator(self, item: _Item) -> tuple[Outcome, str]:
        assert self._operator is not None
        with self._context(item):
            try:
                new = await self._operator.handle(item.event)
            except Exception as exc:    # noqa: BLE001 (mapped to the message's outcome)
                return await self._failed(item, exc)
        return Outcome.ack(), "ack" if new else "duplicate"

    async def _failed(self, item: _Item, exc: BaseException) -> tuple[Outcome, str]:
        """The outcome of an event that failed with `exc`: retried (with the vendor's delay; the last
        attempt is recorded and notified before it is dead-lettered), or dead-lettered with the reason."""
        with self._context(item):
            delivery = item.delivery
            if isinstance(exc, VendorUnavailable):
                log.warning("event.retry", error=str(exc))
                campaign = item.event.campaign
                if self._max_retries is not None and delivery.retries >= self._max_retries and campaign:
                    await self._executor.gave_up(campaign, str(exc), attempts=delivery.retries + 1)
                    return Outcome.retry(str(exc), delay=exc.retry_after), "dead"
                return Outcome.retry(str(exc), delay=exc.retry_after), "retry"
            if isinstance(exc, RetryableError):
                log.warning("event.retry", error=str(exc))
                return Outcome.retry(str(exc)), "retry"
            if isinstance(exc, BotError):
                log.error("event.failed", error=str(exc))
                return Outcome.dead(f"{type(exc).__name__}: {exc}"), "dead"
            log.error("event.crashed", error=exception_reason(exc), exc_info=exc)
            return Outcome.dead(exception_reason(exc)), "dead"

    async def _reconcile(self, touched: AbstractSet[str]) -> None:
        """Reconcile each campaign under its lock; a failure propagates (the message is retried)."""
        for key in sorted(touched):
            await self._locked(key, self._executor.reconcile)

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
