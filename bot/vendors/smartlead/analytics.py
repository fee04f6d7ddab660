"""Pure parsers of Smartlead's analytics and email-account answers (docs/vendors.md §1.4, §1.5, §8.2, §8.6).

Contract:

* `GET /analytics/campaign/overall-stats?start_date=&end_date=&limit=&offset=` (§1.4) answers
  `{"ok": true, "data": {"campaign_wise_performance": [{id, campaign_name, sent, opened, replied, bounced,
  open_rate, reply_rate, bounce_rate, ...}]}}` with the rates as PERCENT STRINGS ("1.6%", "9%"). It counts
  only what happened between the two dates (YYYY-MM-DD), so lifetime totals need a window that starts
  before any campaign's first send: `LOOKBACK_DAYS`. It gives no first-send time, and no other documented
  read does (the statistics rows carry none; the per-lead variant's `sent_time` would cost a read per
  campaign and lead): `CampaignMetrics.started_at` stays None, as do `unsubscribed` (not in this answer).
* `GET /email-accounts/?offset=&limit=` (§1.5, limit 1-100) answers a bare array of accounts whose
  `warmup_details.warmup_reputation` is a string ("95%"); get-by-id gives the number 95 and
  `is_warmup_blocked` (the documented contradiction [X]). Both are read by `mailbox_health`.
  These answers hold SMTP/IMAP passwords (§8.2): only the fields `MailboxHealth` names are read out of an
  account (`from_email`, `id`, `is_smtp_success`, `is_imap_success`, the warmup reputation, status,
  blocked flag and reason, and campaign ids if listed), and nothing here logs or raises with any of it.

Tolerance (§8.6): rates as "1.6%", "9 %", "1.6" or 1.6 (all percent: 0.016); counts as numbers or numeric
strings; "", null, "N/A" and anything else unreadable → None ("not said", never 0). An entry without a
valid id (a Smartlead campaign id; an account's `from_email`) is skipped, never guessed. The numbers are
read by `bot.vendors.numbers` with `digits_only` (plain decimal strings: "1e3" is not a count).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlencode

from bot.vendors.base import CampaignMetrics, MailboxHealth
from bot.vendors.numbers import count, fraction, percent
from bot.vendors.smartlead import CAMPAIGN_ID

__all__ = [
    "LOOKBACK_DAYS",
    "MAILBOX_PAGE",
    "MAX_PAGES",
    "STATS_PAGE",
    "Page",
    "campaign_metrics_of",
    "email_accounts_query",
    "mailbox_health_of",
    "mailbox_page",
    "metrics_page",
    "overall_stats_query",
    "parse_count",
    "parse_flag",
    "parse_percent",
    "parse_reputation",
]

T = TypeVar("T")

#: overall-stats' window reaches back this many days: ten years, longer than Smartlead has existed
#: (launched 2021 [G]), so every campaign's whole life, hence its lifetime totals, is inside it. The
#: window ends tomorrow (UTC), so today's sends count in any account time zone ahead of UTC.
LOOKBACK_DAYS: Final = 3650
#: entries asked per page: email-accounts allows 1-100 (§1.5 [C]); overall-stats documents no bound,
#: so the same 100 is asked and its pages are read until one comes back empty (a lower cap the vendor
#: applied silently would otherwise end the read early).
MAILBOX_PAGE: Final = 100
STATS_PAGE: Final = 100
#: pages read at most per poll (10,000 campaigns or mailboxes per key): a vendor that never ends a
#: listing cannot keep a poll going
MAX_PAGES: Final = 100

_ACCOUNT_ID: Final = re.compile(r"[0-9A-Za-z_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing: the entries that parsed, and how many the vendor listed (parsed or not),
    which is what paging counts."""

    items: tuple[T, ...]
    listed: int


def overall_stats_query(today: date, offset: int, limit: int = STATS_PAGE) -> str:
    """The overall-stats query string for one page, dates written YYYY-MM-DD (see `LOOKBACK_DAYS`)."""
    start, end = today - timedelta(days=LOOKBACK_DAYS), today + timedelta(days=1)
    return urlencode({"start_date": start.isoformat(), "end_date": end.isoformat(), "limit": limit,
                      "offset": offset})


def email_accounts_query(offset: int, limit: int = MAILBOX_PAGE) -> str:
    """The email-accounts query string for one page."""
    return urlencode({"offset": offset, "limit": limit})


def parse_percent(value: Any) -> float | None:
    """A Smartlead rate as a fraction: "1.6%" → 0.016, "9%" → 0.09; a bare number is read as percent too
    (the same field's unit), so 1.6 → 0.016. Negative, "", null, "N/A" → None."""
    return fraction(value, bare="percent", capped=False, digits_only=True)


def parse_reputation(value: Any) -> float | None:
    """A warmup reputation 0-100 from the number 95 (get-by-id) or the string "95%" (the list); None when
    missing, unreadable or above 100."""
    return percent(value, digits_only=True)


def parse_count(value: Any) -> int | None:
    """A count from a number (an integral float too) or a numeric string ("12"); None otherwise."""
    return count(value, digits_only=True)


def parse_flag(value: Any) -> bool | None:
    """true/false as JSON booleans or the strings "true"/"false"; None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _campaign_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    return text if CAMPAIGN_ID.fullmatch(text) else None


def campaign_metrics_of(item: Any) -> CampaignMetrics | None:
    """One `campaign_wise_performance` entry as `CampaignMetrics`; None without a valid campaign id."""
    if not isinstance(item, dict):
        return None
    campaign_id = _campaign_id(item.get("id", item.get("campaign_id")))
    if campaign_id is None:
        return None
    return CampaignMetrics(
        campaign_id=campaign_id, sent=parse_count(item.get("sent")), bounced=parse_count(item.get("bounced")),
        replied=parse_count(item.get("replied")), opened=parse_count(item.get("opened")),
        bounce_rate=parse_percent(item.get("bounce_rate")), reply_rate=parse_percent(item.get("reply_rate")),
    )


def _warmup_blocked(account: dict[str, Any], warmup: dict[str, Any]) -> bool | None:
    """Blocked when anything says so (the explicit flag, a blocked reason, status BLOCKED): a guard would
    rather look at a mailbox once too often. False when the vendor described the warmup and none did."""
    flags = [parse_flag(holder.get("is_warmup_blocked")) for holder in (warmup, account)]
    reason = warmup.get("blocked_reason")
    status = warmup.get("status")
    if (True in flags or (isinstance(reason, str) and reason.strip())
            or (isinstance(status, str) and status.strip().upper() == "BLOCKED")):
        return True
    if False in flags or isinstance(status, str) or "blocked_reason" in warmup:
        return False
    return None


def _campaign_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    found: dict[str, None] = {}
    for entry in value:
        campaign_id = _campaign_id(entry.get("id") if isinstance(entry, dict) else entry)
        if campaign_id is not None:
            found[campaign_id] = None
    return tuple(found)


def mailbox_health_of(item: Any) -> MailboxHealth | None:
    """One email account as `MailboxHealth`, reading only the fields it names; None without a usable
    `from_email`. The rest of the account (passwords, hosts, user names) is never looked at."""
    if not isinstance(item, dict):
        return None
    email = item.get("from_email")
    if not isinstance(email, str) or "@" not in email.strip() or len(email) > 320:
        return None
    raw_id = item.get("id")
    account_id = str(raw_id).strip() if isinstance(raw_id, int | str) and not isinstance(raw_id, bool) else ""
    warmup = item.get("warmup_details")
    warmup = warmup if isinstance(warmup, dict) else {}
    reputation = warmup.get("warmup_reputation", item.get("warmup_reputation"))
    return MailboxHealth(
        email=email.strip().lower(), account_id=account_id if _ACCOUNT_ID.fullmatch(account_id) else "",
        smtp_ok=parse_flag(item.get("is_smtp_success")), imap_ok=parse_flag(item.get("is_imap_success")),
        reputation=parse_reputation(reputation), warmup_blocked=_warmup_blocked(item, warmup),
        campaigns=_campaign_ids(item.get("campaigns")),
    )


def _page(entries: list[Any], parse: Callable[[Any], T | None]) -> Page[T]:
    return Page(tuple(parsed for parsed in map(parse, entries) if parsed is not None), len(entries))


def metrics_page(body: Any) -> Page[CampaignMetrics] | None:
    """The campaigns of one overall-stats answer (`data.campaign_wise_performance`; also tolerated: the
    list under `data` or at the top, and an empty `data` as no campaigns); None when the answer is not one
    of these shapes."""
    entries: Any = None
    if isinstance(body, dict) and body.get("ok", True) is not False:
        data = body.get("data", body)
        # `"data": {}` says "no campaigns"; a bare `{}` is what an empty or non-JSON answer decodes to
        empty: list[Any] | None = [] if "data" in body and data == {} else None
        entries = data.get("campaign_wise_performance", empty) if isinstance(data, dict) else data
    elif isinstance(body, list):
        entries = body
    return _page(entries, campaign_metrics_of) if isinstance(entries, list) else None


def mailbox_page(body: Any) -> Page[MailboxHealth] | None:
    """The accounts of one email-accounts answer (a bare array, or `{"data": [...]}` with or without a
    success flag, §1.2's envelope drift); None when the answer is not one of these shapes."""
    entries: Any = body
    if isinstance(body, dict):
        failed = body.get("ok") is False or body.get("success") is False
        entries = None if failed else body.get("data")
    return _page(entries, mailbox_health_of) if isinstance(entries, list) else None
