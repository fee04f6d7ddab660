"""Composition root for the long-running processes: builds and wires web receiver, worker, or both."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Final

import aiohttp
import structlog
from aiohttp import web

from bot.accounts import Accounts, load_accounts
from bot.breaker import Breaker
from bot.broker import make_broker
from bot.broker.base import Broker
from bot.config import Settings
from bot.digest import DIGEST_CHECK_SECONDS, DigestPlan, send_digest
from bot.errors import BotError, ConfigError
from bot.executor import Executor
from bot.fleet import Duties, Writers, holder_id
from bot.inventory import Inventory, load_inventory_file
from bot.inventory_refresh import InventoryRefresher
from bot.log import register_secret
from bot.metrics import HEARTBEAT, OUTBOX_QUEUED, PARKED_DECISIONS
from bot.notify import Notifier
from bot.poller import Poller, known_campaigns
from bot.ruleset import RuleSet, load_rules
from bot.slack.delivery import SlackDeliverer, SlackNotifier
from bot.slack.operator import SlackOperator
from bot.state.open import open_state
from bot.state.outbox import Outbox
from bot.state.protocol import StateStore
from bot.vendors.build import build_vendors, dry_routes
from bot.vendors.ratelimit import BACKGROUND_SHARE
from bot.web import health
from bot.web.app import create_app
from bot.worker import MAX_MESSAGE_BYTES, Worker

__all__ = ["GC_YOUNG", "Services", "running", "serve_until_stopped", "settle_heap"]

log = structlog.get_logger(__name__)


@dataclass
class Services:
    """What a started process holds; `port` is the bound HTTP port (useful when 0 was asked)."""

    settings: Settings
    broker: Broker
    rules: RuleSet
    store: StateStore | None = None
    worker: Worker | None = None
    port: int | None = None
    outbox: Outbox | None = None
    inventory_refresher: InventoryRefresher | None = None
    duties: Duties | None = None
    poller: Poller | None = None


def _register_secrets(settings: Settings) -> None:
    register_secret(*settings.secrets())


def _warn_closed_sources(settings: Settings) -> None:
    """Webhooks fail closed without a secret: say at start which sources will answer 401."""
    token = settings.webhook_token is not None
    opened = {spec.name: (spec.webhook_token and token) or any(
        settings.vendor(spec.name).secret(key) is not None for key in spec.webhook_secrets)
        for spec in settings.vendors()}
    closed = [source for source, ok in {
        **opened,
        "events": token,
        "alertmanager": token or settings.alertmanager_token is not None,
        "grafana": token or settings.alertmanager_token is not None or settings.grafana_webhook_secret is not None,
        "slack": settings.slack_signing_secret is not None,
    }.items() if not ok]
    if closed:
        log.warning("webhook.sources_closed", sources=closed,
                    hint="set BOT_WEBHOOK_TOKEN, BOT_<VENDOR>_WEBHOOK_SECRET, BOT_ALERTMANAGER_TOKEN, "
                         "BOT_SLACK_SIGNING_SECRET; these answer 401 until then")


def _listen(settings: Settings) -> list[socket.socket]:
    """Bind and listen on BOT_HTTP_HOST:BOT_HTTP_PORT before anything else starts (one socket per address
    the host resolves to, as asyncio would); ConfigError naming the setting when that is impossible.
    Connections wait in the backlog until the app serves them, once the worker consumes."""
    host, port = settings.http_host, settings.http_port
    where = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {where} (BOT_HTTP_HOST): {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"cannot listen on {where} (BOT_HTTP_PORT): address in use") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"cannot listen on {where} (BOT_HTTP_PORT): permission denied") from None
        raise ConfigError(f"cannot listen on {where} (BOT_HTTP_HOST / BOT_HTTP_PORT): "
                          f"{exc.strerror or exc}") from None
    return sockets


async def _heartbeat(beat: Callable[[], Awaitable[None]], every: float, duties: list[asyncio.Task[None]],
                     sample: Callable[[], Awaitable[None]] | None = None) -> None:
    """Beat (bot.state.open.State.beat) every sweep interval while the event loop turns and the periodic duties
    (the sweeper, the drift watch) are still running: what `campaign-guard healthcheck` reads. A dead sweeper, or a loop
    blocked for longer than the check's `--max-age`, makes the worker unhealthy. Each beat is also the time of
    /metrics' heartbeat and of `sample` (the gauges read from the state)."""
    while not any(duty.done() for duty in duties):
        try:
            await beat()
            HEARTBEAT.set_to_current_time()
        except BotError as exc:             # the database is unreachable: the next beat may get through
            log.warning("worker.heartbeat_failed", error=str(exc))
        if sample is not None:
            try:
                await sample()
            except Exception as exc:  # noqa: BLE001 - a gauge that cannot be read never stops the heartbeat
                log.warning("worker.metrics_sample_failed", error=type(exc).__name__)
        await asyncio.sleep(every)
    log.error("worker.heartbeat_stopped", reason="a periodic duty ended", duties=[d.get_name() for d in duties])


async def _sample(store: StateStore, outbox: Outbox) -> None:
    """The gauges /metrics reads from the state: Slack messages waiting in the outbox, pauses the breaker parked."""
    OUTBOX_QUEUED.set(len(await outbox.items(status="queued")))
    async with store.transaction() as tx:
        PARKED_DECISIONS.set(len(await tx.pending()))


async def _inventory(settings: Settings, store: StateStore) -> Inventory:
    """The static mapping file (if any) plus every (campaign, sender) pair learned from events so far."""
    inventory = Inventory(load_inventory_file(settings.inventory_file) if settings.inventory_file else None)
    for campaign, sender in await store.inventory():
        inventory.add(campaign, sender or None)
    return inventory


async def _reload(store: StateStore, inventory: Inventory) -> None:
    """Add what the store's inventory has and this worker's does not (another worker learned it)."""
    for campaign, sender in await store.inventory():
        inventory.add(campaign, sender or None)


async def _every(duty: Callable[[], Awaitable[object]], seconds: float, name: str) -> None:
    """Run a duty of this worker's own periodically (the fleet's duties: bot.fleet.Duties). A failed round
    is logged; the next one comes all the same."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await duty()
        except BotError as exc:
            log.warning(f"{name}.failed", error=str(exc))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _serve_metrics(settings: Settings, stack: AsyncExitStack) -> None:
    """A worker's own /metrics and /healthz on BOT_HTTP_HOST:BOT_METRICS_PORT (a worker has no web receiver):
    its events, polls, rate budgets and heartbeat are there for Prometheus (deploy/prometheus/alerts.yml)."""
    app = web.Application()
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/healthz", health.healthz)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    try:
        await web.TCPSite(runner, settings.http_host, settings.metrics_port).start()
    except OSError as exc:
        raise ConfigError(f"cannot serve /metrics on {settings.http_host}:{settings.metrics_port} "
                          f"(BOT_METRICS_PORT): {exc.strerror or exc}") from None
    log.info("metrics.started", host=settings.http_host, port=settings.metrics_port)


async def _slack(settings: Settings, outbox: Outbox, stack: AsyncExitStack,
                 accounts: Accounts) -> SlackNotifier | None:
    """The outbox's background deliverer (always: a worker answers the commands a separate `web` process
    accepted), and with a bot token and a channel (BOT_SLACK_CHANNEL or an account's) the notifier for
    channel notices, each to its campaign's account channel (else None: notices are logged)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    deliverer = SlackDeliverer(outbox, token=token, api_url=settings.slack_api_url,
                               retry_delays=settings.slack_retry_delays, max_attempts=settings.slack_max_attempts)
    await deliverer.start()
    stack.push_async_callback(deliverer.stop)
    if not token or not (settings.slack_channel or any(a.slack_channel for a in accounts)):
        return None
    return SlackNotifier(outbox, channel=settings.slack_channel, digest_seconds=settings.slack_digest_seconds,
                         accounts=accounts)


async def _start_worker(settings: Settings, services: Services, stack: AsyncExitStack,
                        notifier: Notifier | None) -> None:
    """State, vendors, executor, Slack operator, inventory; then consume, sweep and refresh in the background.
    Everything started is registered on `stack` so it stops in reverse order."""
    rules, broker = services.rules, services.broker
    # SQLite: one worker per database file (bot.state.worker_lock); `web` alone never opens the state
    state = await stack.enter_async_context(open_state(settings))
    store, outbox = state.store, state.outbox
    session = await stack.enter_async_context(
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.vendor_timeout))
    )
    accounts = load_accounts(settings)
    # one client per account, by route; in a fleet, each credential's (workspace's) budget shared in PostgreSQL;
    # background reads (polls, drift) take at most BOT_POLL_SHARE of each window, in the process and in the fleet
    share = BACKGROUND_SHARE.set(settings.poll_share)
    try:
        vendors = build_vendors(settings, session, accounts, budgets=state.budgets,
                                background_share=settings.poll_share)
    finally:
        BACKGROUND_SHARE.reset(share)
    dry = dry_routes(vendors)
    slack_notifier = await _slack(settings, outbox, stack, accounts)
    notifier = notifier or slack_notifier
    holder = holder_id()
    writers = Writers(state.leases, holder, seconds=settings.lease_seconds)
    executor = Executor(
        store, vendors, dry_run_vendors=dry, override_for=timedelta(days=settings.override_days),
        notifier=notifier, writers=writers,
        breaker=Breaker(settings.breaker_limit, timedelta(seconds=settings.breaker_window),
                        timedelta(seconds=settings.pending_ttl)),
    )
    renewing = asyncio.create_task(writers.run(), name="writer-leases")
    stack.push_async_callback(_cancel, renewing)
    inventory = await _inventory(settings, store)
    operator = SlackOperator(store=store, outbox=outbox, executor=executor, vendors=vendors,
                             dry_run_vendors=dry, settings=settings, accounts=accounts, listed=inventory.listed)
    worker = Worker(store=store, rules=rules, executor=executor, inventory=inventory,
                    operator=operator, max_retries=len(settings.retry_delays),
                    concurrent_actions=settings.concurrent_actions,
                    max_message_bytes=max(MAX_MESSAGE_BYTES, 2 * settings.max_body_bytes), accounts=accounts)
    services.store, services.worker, services.outbox = store, worker, outbox
    recovered = await worker.start(frozenset(vendors) - dry)
    await broker.consume_batches(worker.handle_batch, size=settings.batch_size)
    stack.push_async_callback(broker.stop_consuming, settings.drain_seconds)
    # background duties: each on one worker of the fleet at a time (bot.fleet), the others standing by
    fleet = services.duties = Duties(state.leases, holder, seconds=settings.lease_seconds)
    duties = [asyncio.create_task(fleet.run("sweep", settings.sweep_seconds, worker.sweep), name="sweeper")]
    if settings.reconcile_seconds > 0:      # the drift watch
        duties.append(asyncio.create_task(fleet.run("watch", settings.reconcile_seconds, worker.watch), name="watch"))
    if settings.inventory_refresh > 0:      # first refresh at once, in the background
        refresher = services.inventory_refresher = InventoryRefresher(inventory, store, vendors)
        duties.append(asyncio.create_task(fleet.run("inventory", settings.inventory_refresh, refresher.refresh,
                                                    first=True), name="inventory"))
    poller = services.poller = Poller(vendors, broker, seconds=settings.poll_seconds,
                                      campaigns=known_campaigns(inventory, store))
    if poller.enabled:                      # vendor analytics and mailbox health, published as events
        duties.append(asyncio.create_task(fleet.run("poll", settings.poll_seconds, poller.run_once), name="poll"))
    digest = DigestPlan.from_settings(settings, accounts)
    if digest is not None and slack_notifier is not None:   # each channel's daily digest, once per day
        duties.append(asyncio.create_task(fleet.run("digest", DIGEST_CHECK_SECONDS,
                                                    partial(send_digest, store, outbox, digest)), name="digest"))
    if settings.uses_postgres:              # what the fleet's other workers learned: read every sweep
        duties.append(asyncio.create_task(_every(partial(_reload, store, inventory), settings.sweep_seconds,
                                                 "inventory_reload"), name="inventory-reload"))
    for duty in duties:
        stack.push_async_callback(_cancel, duty)
    heartbeat = asyncio.create_task(_heartbeat(state.beat, settings.sweep_seconds, duties,
                                               partial(_sample, store, outbox)), name="heartbeat")
    stack.push_async_callback(_cancel, heartbeat)
    log.info("worker.started", rules=[r.name for r in rules.rules], dry_run_vendors=sorted(dry),
             recovered=recovered, prefetch=settings.prefetch, batch_size=settings.batch_size)


@asynccontextmanager
async def running(settings: Settings, *, with_web: bool, with_worker: bool,
                  notifier: Notifier | None = None) -> AsyncIterator[Services]:
    """Start the requested parts; on exit stop taking work, drain, and close in reverse order.
    `notifier` replaces the configured one (Slack, else the log) for the executor's notices (tests)."""
    _register_secrets(settings)
    rules = load_rules(settings.rules_dir)              # fail fast on a bad rule file
    async with AsyncExitStack() as stack:
        # the port first: a busy port is one line naming BOT_HTTP_PORT, before any broker or worker starts
        listening = _listen(settings) if with_web else []
        for sock in listening:
            stack.callback(sock.close)
        broker = make_broker(settings)
        await broker.start()
        stack.push_async_callback(broker.close)
        services = Services(settings, broker, rules)
        if with_worker:
            await _start_worker(settings, services, stack, notifier)
            if not with_web and settings.metrics_port:
                await _serve_metrics(settings, stack)
        if with_web:                                    # served once the worker consumes; stopped before it
            _warn_closed_sources(settings)
            runner = web.AppRunner(create_app(settings, broker), access_log=None, shutdown_timeout=5)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            for sock in listening:
                await web.SockSite(runner, sock).start()
            services.port = runner.addresses[0][1] if runner.addresses else settings.http_port
            log.info("web.started", host=settings.http_host, port=services.port)
        yield services
        log.info("process.stopping")


async def serve_until_stopped(settings: Settings, *, with_web: bool, with_worker: bool) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully (in-flight messages finish or are redelivered)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings, with_web=with_web, with_worker=with_worker):
        settle_heap()
        await stop.wait()


#: the garbage collector's young generation: collected every this many new container objects (CPython's
#: default, 700, made a worker spend about 7% of its CPU in ~100 collections per 1,000 events; bench.load)
GC_YOUNG: Final = 10_000


def settle_heap() -> None:
    """Once started: leave what start-up built (modules, pydantic validators, rules, settings: most of the
    heap, and alive till exit) out of the garbage collector's full passes, which then walk only what was
    made since (a full pass in the middle of a burst of webhooks stalls the loop for less: webhook →
    decision p99), and collect the young generation less often (`GC_YOUNG`: a batch of events makes and
    drops thousands of dicts, nearly none in a cycle)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, middle, old)
