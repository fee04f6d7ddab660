"""Instantly analytics and account answers → `CampaignMetrics` / `MailboxHealth` (pure functions).

Sources (docs/vendors.md §4 and developer.instantly.ai, read 2026-11):

* `GET /campaigns/analytics` [C] (developer.instantly.ai "Get campaign analytics"): a bare array, one object
  per campaign (every campaign of the workspace without `id`/`ids`), lifetime totals without dates
  [G: the page does not say what an omitted range means]. Fields [C]: `campaign_id`, `campaign_name`,
  `campaign_status`, `emails_sent_count`, `bounced_count`, `reply_count`, `open_count`,
  `unsubscribed_count`, `leads_count`, `contacted_count`, ... `reply_count` is taken as `replied`; the
  separate `reply_count_automatic` suggests it excludes auto-replies [G]. Instantly gives no rates here.
* `GET /campaigns/analytics/daily?campaign_id=&start_date=&end_date=` [C path; fields C from the page's
  example, copied by a third party]: a bare array of `{date: "YYYY-MM-DD", sent, contacted, opened,
  unique_opened, replies, unique_replies, clicks, ...}`, no campaign id in the rows (one call per
  campaign) and no `bounced` or `unsubscribed` [read when present, G]. The rows are summed, and
  `started_at` is the first day with `sent > 0`, at 00:00 UTC [G: the day is the workspace's; the
  first email went out some time that day, so `started_at` can be up to a day early].
* `GET /accounts?limit=&starting_after=` [C]: `{"items": [Account], "next_starting_after": "<cursor>"}`,
  cursor pagination (`limit` 1-100: documented for Instantly's other cursor lists, G here). Account
  fields [C]: `email`, `status` (1 Active, 2 Paused, -1 Connection Error, -2 Soft Bounce Error, -3 Sending
  Error), `warmup_status` (0 Paused, 1 Active, -1 Banned, -2 Spam Folder Unknown, -3 Permanent
  Suspension), `stat_warmup_score` (e.g. 85), `status_message`. How those map onto SMTP/IMAP health and a
  warmup block is [G], see `ACCOUNT_STATUS` and `WARMUP_BLOCKED`. The answer lists no campaigns per
  account: `MailboxHealth.campaigns` stays empty (the inventory's mapping applies).

Counts are never invented: a field absent, null, negative, fractional or not a number is None
(`bot.vendors.numbers`).
Only the fields named here are read from an account: nothing else of it (its status message, signature,
any credential a future answer might carry) is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Final

from bot.vendors.base import CampaignMetrics, MailboxHealth
from bot.vendors.instantly import CAMPAIGN_ID
from bot.vendors.numbers import count, percent

__all__ = ["ACCOUNT_STATUS", "WARMUP_BLOCKED", "DailyTotals", "account_health", "campaign_totals", "count",
           "daily_totals", "merge_daily", "parse_accounts", "score"]

#: account `status` → (smtp_ok, imap_ok) [G: Instantly says "Connection Error" without saying which of
#: the two failed, so both; a soft-bounce or sending error is a sending (SMTP) failure; Paused says nothing].
ACCOUNT_STATUS: Final[dict[int, tuple[bool | None, bool | None]]] = {
    1: (True, True),
    2: (None, None),
    -1: (False, False),
    -2: (False, None),
    -3: (False, None),
}
#: account `warmup_status` → warmup_blocked [G: Banned and Permanent Suspension block warmup; Spam
#: Folder Unknown stops it (warmup cannot rescue its emails); Paused is the owner's choice, not a block].
WARMUP_BLOCKED: Final[dict[int, bool]] = {1: False, 0: False, -1: True, -2: True, -3: True}

#: overview field → CampaignMetrics field
_OVERVIEW: Final = {"sent": "emails_sent_count", "bounced": "bounced_count", "replied": "reply_count",
                    "opened": "open_count", "unsubscribed": "unsubscribed_count"}
#: CampaignMetrics field → the daily row's field(s), first present wins
_DAILY: Final = {"sent": ("sent",), "bounced": ("bounced",), "replied": ("replies",),
                 "opened": ("opened",), "unsubscribed": ("unsubscribed",)}


def score(value: Any) -> float | None:
    """A 0-100 warmup score from a number, a numeric string or a percent string (`85`, `"85"`, `"85%"`); None
    outside 0-100 or when not a number (`bot.vendors.numbers.percent`)."""
    return percent(value)


def _code(value: Any) -> int | None:
    """An enum code (`-1`, `"-1"`); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _rows(body: Any, *wrappers: str) -> list[dict[str, Any]]:
    """The objects of a bare array, or of the first of `wrappers` holding one."""
    if isinstance(body, dict):
        body = next((body[w] for w in wrappers if isinstance(body.get(w), list)), None)
    return [row for row in body if isinstance(row, dict)] if isinstance(body, list) else []


def campaign_totals(body: Any) -> list[CampaignMetrics]:
    """One `CampaignMetrics` per campaign of a `GET /campaigns/analytics` answer (a bare array, or wrapped in
    `items`/`data`), in the answer's order; rows without a valid campaign id are left out, a repeated one
    counts once (its first row). `started_at` is left None: the daily series says it."""
    found: dict[str, CampaignMetrics] = {}
    for row in _rows(body, "items", "data"):
        campaign_id = row.get("campaign_id", row.get("id"))
        if not isinstance(campaign_id, str) or not CAMPAIGN_ID.fullmatch(campaign_id.strip()):
            continue
        campaign_id = campaign_id.strip()
        if campaign_id not in found:
            found[campaign_id] = CampaignMetrics(
                campaign_id=campaign_id, sent=count(row.get(_OVERVIEW["sent"])),
                bounced=count(row.get(_OVERVIEW["bounced"])), replied=count(row.get(_OVERVIEW["replied"])),
                opened=count(row.get(_OVERVIEW["opened"])), unsubscribed=count(row.get(_OVERVIEW["unsubscribed"])))
    return list(found.values())


@dataclass(frozen=True, slots=True)
class DailyTotals:
    """A campaign's daily rows summed. A count is None unless every row gives it; `started_at`: the first
    day with `sent > 0` at 00:00 UTC, None when no row shows a send."""

    sent: int | None = None
    bounced: int | None = None
    replied: int | None = None
    opened: int | None = None
    unsubscribed: int | None = None
    started_at: datetime | None = None
    days: int = 0


def _day(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    return next((n for key in keys if (n := count(row.get(key))) is not None), None)


def daily_totals(body: Any) -> DailyTotals:
    """Sum a `GET /campaigns/analytics/daily` answer (a bare array, or wrapped in `items`/`data`). Rows
    without a parsable `date` are ignored; no row at all: every count None (the series says nothing)."""
    rows = [(day, row) for row in _rows(body, "items", "data") if (day := _day(row.get("date"))) is not None]
    if not rows:
        return DailyTotals()
    totals: dict[str, int | None] = {}
    for name, keys in _DAILY.items():
        values = [_first(row, keys) for _, row in rows]
        totals[name] = None if any(v is None for v in values) else sum(v for v in values if v is not None)
    sending = sorted(day for day, row in rows if (_first(row, _DAILY["sent"]) or 0) > 0)
    started = datetime(sending[0].year, sending[0].month, sending[0].day, tzinfo=UTC) if sending else None
    return DailyTotals(sent=totals["sent"], bounced=totals["bounced"], replied=totals["replied"],
                       opened=totals["opened"], unsubscribed=totals["unsubscribed"], started_at=started,
                       days=len(rows))


def merge_daily(item: CampaignMetrics, daily: DailyTotals | None) -> CampaignMetrics:
    """`item` with the daily series' `started_at`, and its sums for the counts the overview left None."""
    if daily is None:
        return item
    filled = {name: getattr(daily, name) for name in _DAILY if getattr(item, name) is None}
    return replace(item, started_at=daily.started_at or item.started_at,
                   **{name: value for name, value in filled.items() if value is not None})


def account_health(item: Any) -> MailboxHealth | None:
    """A `MailboxHealth` from one Instantly Account object; None without a usable `email`. Only `email`,
    `status`, `warmup_status` and `stat_warmup_score` are read."""
    if not isinstance(item, dict):
        return None
    email = item.get("email")
    if not isinstance(email, str) or "@" not in email.strip():
        return None
    status, warmup = _code(item.get("status")), _code(item.get("warmup_status"))
    smtp_ok, imap_ok = ACCOUNT_STATUS.get(status, (None, None)) if status is not None else (None, None)
    return MailboxHealth(
        email=email.strip().lower(),
        account_id=email.strip(),                  # Instantly names an account by its email (`/accounts/{email}`)
        smtp_ok=smtp_ok, imap_ok=imap_ok,
        reputation=score(item.get("stat_warmup_score")),
        warmup_blocked=WARMUP_BLOCKED.get(warmup) if warmup is not None else None,
    )


def parse_accounts(body: Any) -> tuple[list[MailboxHealth], int, str | None]:
    """(health of each account, how many items the page held, the next page's cursor or None) of one
    `GET /accounts` page. The cursor is `next_starting_after` when it is a non-empty string."""
    items = _rows(body, "items", "data")
    healths = list(_healths(items))
    cursor = body.get("next_starting_after") if isinstance(body, dict) else None
    return healths, len(items), cursor.strip() if isinstance(cursor, str) and cursor.strip() else None


def _healths(items: list[dict[str, Any]]) -> Iterator[MailboxHealth]:
    for item in items:
        health = account_health(item)
        if health is not None:
            yield health
