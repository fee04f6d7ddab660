"""The state database's tables: recorded events, holds, campaign records, rule windows, audit, and
what the breaker, overrides and inventory keep. Created idempotently when the store opens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA", "db_time"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, source TEXT NOT NULL, campaign TEXT,
    occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_campaign ON events (campaign, occurred_at);
CREATE INDEX IF NOT EXISTS events_resolved ON events (type) WHERE type = 'alert.resolved';
CREATE TABLE IF NOT EXISTS holds (
    campaign TEXT NOT NULL, owner TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL,
    created_at TEXT NOT NULL, event_ids TEXT NOT NULL, details TEXT NOT NULL,
    PRIMARY KEY (campaign, owner));
CREATE TABLE IF NOT EXISTS campaigns (
    campaign TEXT PRIMARY KEY, bot_paused INTEGER NOT NULL DEFAULT 0, pending TEXT,
    dry_paused INTEGER NOT NULL DEFAULT 0, vendor_status TEXT, updated_at TEXT,
    version INTEGER NOT NULL DEFAULT 0, vendor_marker TEXT, sent_at TEXT, checked_at TEXT);
CREATE INDEX IF NOT EXISTS campaigns_pending ON campaigns (pending) WHERE pending IS NOT NULL;
CREATE TABLE IF NOT EXISTS windows (
    rule TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (rule, key));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, campaign TEXT,
    rule TEXT, action TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL,
    event_ids TEXT NOT NULL, inputs TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_campaign ON audit (campaign, id);
CREATE TABLE IF NOT EXISTS inventory (
    campaign TEXT NOT NULL, sender TEXT NOT NULL DEFAULT '', seen_at TEXT NOT NULL,
    PRIMARY KEY (campaign, sender));
CREATE TABLE IF NOT EXISTS pause_log (vendor TEXT NOT NULL, campaign TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pause_log_vendor ON pause_log (vendor, at);
CREATE TABLE IF NOT EXISTS pending_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, campaign TEXT NOT NULL, owner TEXT NOT NULL, kind TEXT NOT NULL,
    reason TEXT NOT NULL, event_ids TEXT NOT NULL, details TEXT NOT NULL, created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL, status TEXT NOT NULL, decided_by TEXT, decided_at TEXT);
CREATE TABLE IF NOT EXISTS overrides (
    campaign TEXT NOT NULL, rule TEXT NOT NULL, by TEXT NOT NULL, created_at TEXT NOT NULL,
    until TEXT NOT NULL, PRIMARY KEY (campaign, rule));
"""

#: Columns added since the first release: (table, column, definition), added to an older database at open.
MIGRATIONS: Final = (
    ("campaigns", "version", "INTEGER NOT NULL DEFAULT 0"),
    ("campaigns", "vendor_marker", "TEXT"),
    ("campaigns", "sent_at", "TEXT"),
    ("campaigns", "checked_at", "TEXT"),
)


def db_time(value: datetime) -> str:
    """How timestamps are stored: ISO 8601 in UTC (sorts as text)."""
    return value.astimezone(UTC).isoformat()
