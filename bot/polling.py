"""Polled vendor numbers as canonical events: `campaign.metrics` and `account.health`.

A poll (bot.vendors.base `MetricsSource`, `HealthSource`) returns what the vendor's own analytics and
mailbox endpoints say; these pure functions turn each item into one event that travels the same pipeline
as a webhook. The event id names the route, the item and the poll period (`period`: the poll interval's
number since the epoch), so a poll repeated within one period (a retry, a duty handed over, a broker
redelivery) is recorded once, and each period's numbers are recorded once per campaign or mailbox.

A mailbox is `healthy` when nothing the vendor says is wrong: SMTP and IMAP not failing, warmup not
blocked. Its reputation is left to the rules (their threshold), never judged here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.events import CampaignRef, Event
from bot.vendors.base import CampaignMetrics, MailboxHealth

__all__ = ["health_event", "metrics_event", "period_of", "problems"]


def period_of(now: datetime, seconds: float) -> int:
    """The poll period `now` falls in: whole intervals of `seconds` since the epoch."""
    return int(now.timestamp() // seconds) if seconds > 0 else int(now.timestamp())


def _account(route: str) -> str | None:
    return route.partition("@")[2] or None


def metrics_event(route: str, item: CampaignMetrics, now: datetime, period: int) -> Event:
    """One campaign's polled numbers as a `campaign.metrics` event of `route` (`smartlead@acme`)."""
    vendor = route.partition("@")[0]
    ref = CampaignRef(vendor=vendor, id=item.campaign_id, account=_account(route))
    data: dict[str, Any] = {
        "sent": item.sent, "bounced": item.bounced, "replied": item.replied, "opened": item.opened,
        "unsubscribed": item.unsubscribed, "bounce_rate": item.bounce_rate, "reply_rate": item.reply_rate,
        "started_at": item.started_at.isoformat() if item.started_at is not None else None,
        "period": period, "polled": True,
    }
    return Event(id=f"poll:{ref}:{period}", type="campaign.metrics", source=vendor, occurred_at=now,
                 campaign=ref, data=data)


def problems(item: MailboxHealth) -> list[str]:
    """What the vendor says is wrong with the mailbox, in words (empty: healthy)."""
    found = []
    if item.smtp_ok is False:
        found.append("SMTP failing")
    if item.imap_ok is False:
        found.append("IMAP failing")
    if item.warmup_blocked:
        found.append("warmup blocked")
    return found


def health_event(route: str, item: MailboxHealth, now: datetime, period: int) -> Event:
    """One mailbox's polled health as an `account.health` event of `route` (no campaign: the rules scope
    it to the campaigns that send from `data.email`)."""
    vendor = route.partition("@")[0]
    found = problems(item)
    data: dict[str, Any] = {
        "email": item.email, "account_id": item.account_id, "route": route,
        "smtp_ok": item.smtp_ok, "imap_ok": item.imap_ok, "reputation": item.reputation,
        "warmup_blocked": item.warmup_blocked, "healthy": not found, "problems": found,
        "campaigns": list(item.campaigns), "period": period, "polled": True,
    }
    return Event(id=f"poll:{route}:mailbox:{item.email}:{period}", type="account.health", source=vendor,
                 occurred_at=now, data=data)
