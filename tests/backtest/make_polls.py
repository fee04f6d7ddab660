"""Generates tests/backtest/fixtures/polls.jsonl: 50 hours of recorded vendor polls (and a few webhooks) for
the backtests of the rules on polled events. Deterministic (no randomness).

Run `.venv/bin/python tests/backtest/make_polls.py` after changing it; test_polls.py checks that the committed
file is exactly what this script produces. The events are made by bot.polling's own functions, as the poller
publishes them: one `campaign.metrics` per campaign and one `account.health` per mailbox every 15 minutes
(lifetime totals, `period` = the poll interval's number), from 2026-11-09 00:00 UTC for 50 hours.

Campaigns (route `smartlead` unless said), polled every period:
- smartlead:2001          healthy: 10 sends a poll, 1% bounced, 3% replied
- smartlead:2002          bounce spike seen by webhooks first: webhook sends 4 a poll (minutes 1, 4, 7, 10), a
                          bounce after every 100th of the first 200, then after every 20th; the vendor's own
                          `bounce_rate` (lifetime) crosses 3% only at 400 sends. No reply webhook at all.
- smartlead:2003          bounce spike seen by analytics first: 5% bounced from the start, `bounce_rate` not
                          given (bounced / sent decides); webhooks (sends, the same bounces, one reply) only
                          from 05:00 on
- smartlead:2004          10% bounced, but 40 sends at most: under the minimum sample
- smartlead@acme:2005     no reply ever: 10 sends a poll, started 2026-11-09 00:00
- smartlead:2006          no reply, but 1 send a poll: never 500 sends
- smartlead:2007          no reply after 600 sends, but the vendor gives no start time: "not said"

Mailboxes (`account.health`), every period unless said:
- ana@acme-mail.example   route smartlead@acme: SMTP failing at 10:00 and 10:15 on day 1, healthy from 10:30
- bo@acme-mail.example    route smartlead: warmup reputation 65 from 05:00 to 14:45, 85 from 15:00; no poll of
                          it from 17:45 to 19:30 (a gap of 2 h 15 min)
- cy@acme-mail.example    route smartlead: warmup blocked, reputation not given, SMTP/IMAP fine
INVENTORY (which campaign sends from which mailbox) is passed to the backtest: ana@acme-mail.example sends for
smartlead@acme:2005 and :2008 AND for the default account's smartlead:2001 (which her acme trouble must not
touch); bo for smartlead:2001; cy for smartlead:2006.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.events import Event
from bot.polling import health_event, metrics_event, period_of
from bot.vendors.base import CampaignMetrics, MailboxHealth

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "polls.jsonl"
START = datetime(2026, 11, 9, tzinfo=UTC)
POLL = timedelta(minutes=15)
POLLS = 50 * 4
INVENTORY: dict[str, list[str]] = {
    "smartlead@acme:2005": ["ana@acme-mail.example"],
    "smartlead@acme:2008": ["ana@acme-mail.example"],
    "smartlead:2001": ["ana@acme-mail.example", "bo@acme-mail.example"],
    "smartlead:2006": ["cy@acme-mail.example"],
}


def at(poll: int, minutes: int = 0) -> datetime:
    return START + poll * POLL + timedelta(minutes=minutes)


def _webhook(kind: str, campaign: str, n: int, when: datetime, **data: Any) -> Event:
    vendor, _, cid = campaign.partition(":")
    return Event(id=f"{vendor}:{kind}:{cid}-{n}", type=kind, source="smartlead", occurred_at=when,
                 campaign=campaign, data={"sender_email": "dee@acme-mail.example", **data})


def _bounces_2002(sent: int) -> int:
    """Bounces among the first `sent` sends of 2002: after every 100th of the first 200, then every 20th."""
    return min(sent, 200) // 100 + max(0, sent - 200) // 20


def _webhooks() -> list[Event]:
    found = []
    for poll in range(POLLS):
        for k, minute in enumerate((1, 4, 7, 10)):
            i = poll * 4 + k                                  # 2002's send number
            found.append(_webhook("email.sent", "smartlead:2002", i, at(poll, minute)))
            if (i < 200 and i % 100 == 99) or (i >= 200 and i % 20 == 19):
                found.append(_webhook("email.bounced", "smartlead:2002", i, at(poll, minute) + timedelta(seconds=20),
                                      bounce_type="hard"))
            if poll >= 20:                                    # 2003's webhooks, from 05:00
                j = (poll - 20) * 4 + k
                found.append(_webhook("email.sent", "smartlead:2003", j, at(poll, minute)))
                if j % 20 == 19:
                    found.append(_webhook("email.bounced", "smartlead:2003", j,
                                          at(poll, minute) + timedelta(seconds=20), bounce_type="hard"))
                if j == 40:
                    found.append(_webhook("email.replied", "smartlead:2003", j, at(poll, minute) + timedelta(hours=1)))
    return found


def _metrics(poll: int) -> list[tuple[str, CampaignMetrics]]:
    n = poll + 1
    sent_2002 = n * 4
    sent_2003 = n * 4
    return [
        ("smartlead", CampaignMetrics("2001", sent=10 * n, bounced=n // 10, replied=3 * n // 10, opened=4 * n,
                                      unsubscribed=0, bounce_rate=round(n // 10 / (10 * n), 4),
                                      reply_rate=round(3 * n // 10 / (10 * n), 4), started_at=START)),
        ("smartlead", CampaignMetrics("2002", sent=sent_2002, bounced=_bounces_2002(sent_2002), replied=0,
                                      bounce_rate=round(_bounces_2002(sent_2002) / sent_2002, 4), reply_rate=0.0,
                                      started_at=START)),
        ("smartlead", CampaignMetrics("2003", sent=sent_2003, bounced=sent_2003 // 20, replied=1,
                                      started_at=START)),
        ("smartlead", CampaignMetrics("2004", sent=min(n, 40), bounced=min(n, 40) // 10, replied=2,
                                      bounce_rate=round(min(n, 40) // 10 / min(n, 40), 4), started_at=START)),
        ("smartlead@acme", CampaignMetrics("2005", sent=10 * n, bounced=0, replied=0, bounce_rate=0.0,
                                           reply_rate=0.0, started_at=START)),
        ("smartlead", CampaignMetrics("2006", sent=n, bounced=0, replied=0, bounce_rate=0.0, reply_rate=0.0,
                                      started_at=START)),
        ("smartlead", CampaignMetrics("2007", sent=min(6 * n, 600), bounced=0, replied=0, bounce_rate=0.0,
                                      reply_rate=0.0, started_at=None)),
    ]


def _mailboxes(poll: int) -> list[tuple[str, MailboxHealth]]:
    found = [("smartlead@acme", MailboxHealth("ana@acme-mail.example", "11", smtp_ok=poll not in (40, 41),
                                              imap_ok=True, reputation=97, warmup_blocked=False,
                                              campaigns=("2005", "2008")))]
    if not 71 <= poll <= 78:                                  # bo's polls failed from 17:45 to 19:30
        found.append(("smartlead", MailboxHealth("bo@acme-mail.example", "12", smtp_ok=True, imap_ok=True,
                                                 reputation=65 if 20 <= poll < 60 else 85, warmup_blocked=False,
                                                 campaigns=("2001",))))
    found.append(("smartlead", MailboxHealth("cy@acme-mail.example", "13", smtp_ok=True, imap_ok=True,
                                             reputation=None, warmup_blocked=True, campaigns=("2006",))))
    return found


def events() -> list[Event]:
    found = _webhooks()
    for poll in range(POLLS):
        now = at(poll)
        period = period_of(now, POLL.total_seconds())
        found += [metrics_event(route, item, now, period) for route, item in _metrics(poll)]
        found += [health_event(route, item, now, period) for route, item in _mailboxes(poll)]
    return sorted(found, key=lambda e: e.occurred_at)


def generate() -> list[str]:
    return [event.model_dump_json() for event in events()]


if __name__ == "__main__":
    FIXTURE.write_text("\n".join(generate()) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
