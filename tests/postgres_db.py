"""A fresh PostgreSQL database per test, for the `postgres` params of the state and outbox tests.

The server: BOT_TEST_POSTGRES_URL, else the local one (postgresql://postgres@127.0.0.1:5432/postgres, trust
auth); scripts/test.sh always provides one. A server that does not answer fails the test in CI (env CI
set) and skips it elsewhere. Each database is named `cgtest_<random>` and dropped afterwards, with any
connection a test left open.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from bot.state.pg_outbox import PostgresOutbox
from bot.state.pg_schema import upgrade
from bot.state.postgres import open_pool

__all__ = ["SERVER_URL", "fresh_database", "open_outbox"]

SERVER_URL = os.environ.get("BOT_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


async def _admin() -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(SERVER_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        problem = f"no PostgreSQL at BOT_TEST_POSTGRES_URL or 127.0.0.1:5432 ({str(exc).strip().splitlines()[0]})"
    if os.environ.get("CI"):
        pytest.fail(f"{problem}: run the tests with scripts/test.sh", pytrace=False)
    pytest.skip(f"{problem}; see scripts/test.sh")


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create an empty database on the test server; yield its postgresql:// URL; drop it on exit."""
    name = f"cgtest_{secrets.token_hex(6)}"
    async with await _admin() as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield urlsplit(SERVER_URL)._replace(path=f"/{name}").geturl()
        finally:
            await admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@asynccontextmanager
async def open_outbox(url: str) -> AsyncIterator[PostgresOutbox]:
    """A PostgreSQL outbox on its own pool (one worker process), the database upgraded."""
    async with open_pool(url, max_size=2) as pool:
        await upgrade(pool)
        async with PostgresOutbox.open(pool) as outbox:
            yield outbox
