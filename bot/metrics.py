"""Prometheus metrics, shared by the web receiver and the worker (one registry per process)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = [
    "DECISIONS",
    "EVENTS",
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
VENDOR_CALLS: Final = Counter(
    "campaign_guard_vendor_calls_total", "Vendor HTTP calls by vendor, operation and result.",
    ["vendor", "operation", "result"], registry=REGISTRY,
)


def render() -> bytes:
    """The Prometheus text exposition of every metric."""
    return generate_latest(REGISTRY)
