"""Prometheus metrics, shared by the web receiver and the worker (one registry per process)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "BUDGET_LIMIT",
    "BUDGET_SLOTS",
    "BUDGET_WAITS",
    "DECISIONS",
    "DECISION_SECONDS",
    "EVENTS",
    "HEARTBEAT",
    "OUTBOX_QUEUED",
    "PARKED_DECISIONS",
    "POLLS",
    "POLL_INTERVAL",
    "POLL_ITEMS",
    "POLL_LAST_SUCCESS",
    "REGISTRY",
    "VENDOR_CALLS",
    "WEBHOOKS",
    "WEBHOOK_SECONDS",
    "render",
]

REGISTRY: Final = CollectorRegistry(auto_describe=True)

WEBHOOKS: Final = Counter(
    "campaign_guard_webhooks_total", "Inbound HTTP requests by source and answer.", ["source", "status"],
    registry=REGISTRY,
)
WEBHOOK_SECONDS: Final = Histogram(
    "campaign_guard_webhook_seconds", "Time from request to answer, publish confirm included.", ["source"],
    registry=REGISTRY,
)
EVENTS: Final = Counter(
    "campaign_guard_events_total", "Messages handled by the worker, by outcome (ack, duplicate, retry, dead).",
    ["outcome"], registry=REGISTRY,
)
DECISIONS: Final = Counter(
    "campaign_guard_decisions_total", "Rule decisions by rule and action.", ["rule", "action"], registry=REGISTRY,
)
DECISION_SECONDS: Final = Histogram(
    "campaign_guard_decision_seconds", "Per message, the worker's time from taking a delivery to its outcome: "
    "recorded, judged by the rules, holds placed and the vendor reconciled (pause included), ready to ack.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0), registry=REGISTRY,
)
VENDOR_CALLS: Final = Counter(
    "campaign_guard_vendor_calls_total", "Vendor HTTP calls by vendor, operation and result.",
    ["vendor", "operation", "result"], registry=REGISTRY,
)


# --- polls (bot.poller): labelled by route (`smartlead`, `smartlead@acme`), never by key ---------------------
POLLS: Final = Counter(
    "campaign_guard_polls_total", "Poll attempts by route, kind (metrics, health) and result (ok, failed); a failed "
    "attempt is retried within the poll interval.", ["route", "kind", "result"], registry=REGISTRY,
)
POLL_LAST_SUCCESS: Final = Gauge(
    "campaign_guard_poll_last_success_timestamp_seconds", "Unix time of the last poll of a route and kind whose "
    "events were all published (alert on its age against campaign_guard_poll_interval_seconds).",
    ["route", "kind"], registry=REGISTRY,
)
POLL_ITEMS: Final = Counter(
    "campaign_guard_poll_items_total", "Campaigns (metrics) or mailboxes (health) polled and published, by route "
    "and kind.", ["route", "kind"], registry=REGISTRY,
)
POLL_INTERVAL: Final = Gauge(
    "campaign_guard_poll_interval_seconds", "BOT_POLL_SECONDS of the process that polls (0: polling off).",
    registry=REGISTRY,
)

# --- vendor rate budgets (bot.vendors.budget): labelled by budget (an account's route, `vendor#workspace`) -----
BUDGET_SLOTS: Final = Counter(
    "campaign_guard_budget_slots_total", "Rate-limit slots granted to this process, by budget and priority "
    "(foreground: pauses, resumes and their reads; background: polls and drift reads).",
    ["budget", "priority"], registry=REGISTRY,
)
BUDGET_WAITS: Final = Counter(
    "campaign_guard_budget_waits_total", "Times a request was told to wait because its budget was full (for "
    "background: its share of the window), by budget and priority.", ["budget", "priority"], registry=REGISTRY,
)
BUDGET_LIMIT: Final = Gauge(
    "campaign_guard_budget_limit_per_second", "The budget's sustained rate: its tightest window's limit over its "
    "period (requests per second, every process together).", ["budget"], registry=REGISTRY,
)

# --- the worker's own health ----------------------------------------------------------------------------------
HEARTBEAT: Final = Gauge(
    "campaign_guard_worker_heartbeat_timestamp_seconds", "Unix time of this worker's last heartbeat (every "
    "BOT_SWEEP_SECONDS while its background duties run).", registry=REGISTRY,
)
OUTBOX_QUEUED: Final = Gauge(
    "campaign_guard_outbox_queued", "Slack messages waiting in the outbox (queued: not yet sent, retried while "
    "Slack fails), sampled every heartbeat.", registry=REGISTRY,
)
PARKED_DECISIONS: Final = Gauge(
    "campaign_guard_decisions_parked", "Automated pauses the blast-radius breaker parked for a person to approve, "
    "sampled every heartbeat (above 0: the breaker tripped).", registry=REGISTRY,
)


def render() -> bytes:
    """The Prometheus text exposition of every metric."""
    return generate_latest(REGISTRY)
