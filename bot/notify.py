"""Notices about what the bot did, and the Notifier seam (logs by default; Slack plugs in here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

__all__ = ["LogNotifier", "Notice", "Notifier", "deliver"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing people should hear about.

    kind: paused | confirmed | unproven | resumed | skipped | failed | dry_run | shadow | suppressed |
          breaker_open | pending_decision | decision_expired | override | drift | withdrawn | carried_live
    """

    kind: str
    campaign: str | None
    text: str
    at: datetime
    rule: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    """Delivers notices. Must not raise and must not block a decision for long: queue and retry instead."""

    async def notify(self, notice: Notice) -> None: ...


class LogNotifier:
    """The default: one structured log line per notice."""

    async def notify(self, notice: Notice) -> None:
        log.info("notice.logged", kind=notice.kind, notice_campaign=notice.campaign, rule=notice.rule,
                 text=notice.text)


async def deliver(notifier: Notifier, notice: Notice) -> None:
    """Hand a notice to the notifier; a notifier failure never undoes or blocks a decision."""
    try:
        await notifier.notify(notice)
    except Exception:  # the notifier is a plug-in; the decision is already recorded
        log.exception("notice.failed", kind=notice.kind)
