"""Open the state BOT_STATE_URL names: a SQLite file (one worker per file) or PostgreSQL (a fleet of workers).

The composition roots (bot.service, bot.cli) open state only through here; what they get back are the
protocols (bot.state.protocol.StateStore, bot.state.outbox.Outbox), whichever the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Final

from bot.config import Settings
from bot.state import pg_workers, worker_lock
from bot.state.leases import MemoryLeases
from bot.state.outbox import Outbox, SqliteOutbox
from bot.state.pg_budget import PostgresBudgets
from bot.state.pg_leases import PostgresLeases
from bot.state.pg_outbox import PostgresOutbox
from bot.state.pg_schema import upgrade
from bot.state.pg_workers import Heartbeat
from bot.state.postgres import PostgresStateStore, open_pool, where
from bot.state.protocol import Leases, StateStore
from bot.state.sqlite import SqliteStateStore
from bot.state.worker_lock import WorkerLock
from bot.vendors.budget import SharedBudget

__all__ = ["State", "check_worker", "open_state", "open_store", "pool_size", "state_name", "upgrade_state"]

#: a worker's PostgreSQL connections beyond one per message in flight (BOT_PREFETCH): the sweep, the drift
#: watch, the Slack deliverer, the Slack operator's outbox writes, the leases and the rate budgets
_SPARE_CONNECTIONS: Final = 6


def pool_size(settings: Settings) -> int:
    """A worker's PostgreSQL connections at most: one per campaign it reconciles at once, two for its batch
    transactions (one open, the next beginning before its COMMIT), and spares for the outbox, heartbeats,
    leases and rate budgets."""
    return settings.concurrent_actions + 2 + _SPARE_CONNECTIONS


@dataclass(frozen=True, slots=True)
class State:
    """What a worker holds: its store, its Slack outbox, and its heartbeat (`beat`, awaited every sweep;
    what `campaign-guard healthcheck` reads)."""

    store: StateStore
    outbox: Outbox
    beat: Callable[[], Awaitable[None]]
    #: the claims one writer per campaign and each duty once stand on (bot.fleet): the fleet's, in PostgreSQL;
    #: this process's, for a SQLite worker (alone on its file)
    leases: Leases
    #: the fleet's shared vendor rate budgets (PostgreSQL); None: each client's own limiters (one SQLite worker)
    budgets: SharedBudget | None = None


def state_name(settings: Settings) -> str:
    """The state database, as messages name it: the SQLite path, or PostgreSQL's host:port/db (no password)."""
    return where(settings.state_url) if settings.uses_postgres else str(settings.state_path)


def open_state(settings: Settings) -> AbstractAsyncContextManager[State]:
    """The worker's state, closed on exit. SQLite: the worker lock first (ConfigError naming the holder
    when another worker has the file), the heartbeat touches it. PostgreSQL: no worker lock (workers wait
    for each other per key, bot.state.postgres), the schema upgraded, the heartbeat a row
    (bot.state.pg_workers)."""
    return _postgres_state(settings) if settings.uses_postgres else _sqlite_state(settings)


@asynccontextmanager
async def _sqlite_state(settings: Settings) -> AsyncIterator[State]:
    path = settings.state_path
    with WorkerLock.acquire(path) as lock:
        async def beat() -> None:
            lock.beat()

        async with SqliteStateStore.open(path) as store, SqliteOutbox.open(path) as outbox:
            yield State(store, outbox, beat, MemoryLeases())


@asynccontextmanager
async def _postgres_state(settings: Settings) -> AsyncIterator[State]:
    """One pool for the store, the outbox and the heartbeat."""
    async with open_pool(settings.state_url, max_size=pool_size(settings)) as pool:
        await upgrade(pool)
        async with PostgresOutbox.open(pool) as outbox, Heartbeat.open(pool) as heartbeat:
            yield State(PostgresStateStore(pool), outbox, heartbeat.beat, PostgresLeases(pool),
                        PostgresBudgets(pool, stale_after=2 * settings.vendor_timeout))


def open_store(settings: Settings) -> AbstractAsyncContextManager[StateStore]:
    """The store alone (the CLI's `audit`, `decisions`): no worker lock, no outbox, no heartbeat."""
    if settings.uses_postgres:
        return PostgresStateStore.open(settings.state_url, max_size=2)
    return SqliteStateStore.open(settings.state_path)


async def upgrade_state(settings: Settings) -> str:
    """Create the state database's schema, or bring it up to date (`campaign-guard db upgrade`); returns
    one line saying where it stands. StateError when the database cannot be reached or refuses."""
    if settings.uses_postgres:
        async with open_pool(settings.state_url, max_size=1) as pool:
            version = await upgrade(pool)
        return f"PostgreSQL state database {state_name(settings)}: schema version {version}"
    async with SqliteStateStore.open(settings.state_path), SqliteOutbox.open(settings.state_path):
        pass                        # opening creates the tables and adds the columns an older release lacks
    return f"SQLite state database {state_name(settings)}: up to date"


def check_worker(settings: Settings, *, max_age: float) -> str | None:
    """None when the worker on the state database is alive and beat within `max_age` seconds; else why not.
    SQLite: its lock file (no lock taken, no database opened); PostgreSQL: this host's heartbeat row."""
    if settings.uses_postgres:
        return pg_workers.check_alive(settings.state_url, max_age=max_age)
    return worker_lock.check_alive(settings.state_path, max_age=max_age)
