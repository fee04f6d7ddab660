"""The pure parsers of Smartlead's overall-stats and email-account answers (§1.4, §1.5), over realistic
bodies with the documented contradictions: percent strings, "95%" vs 95, is_warmup_blocked vs a reason."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import parse_qs

import pytest

from bot.vendors.base import CampaignMetrics, MailboxHealth
from bot.vendors.smartlead.analytics import (
    LOOKBACK_DAYS,
    campaign_metrics_of,
    email_accounts_query,
    mailbox_health_of,
    mailbox_page,
    metrics_page,
    overall_stats_query,
    parse_count,
    parse_flag,
    parse_percent,
    parse_reputation,
)

SECRET = "hunter2-smtp-password"

#: overall-stats as the reference page shows it (§1.4)
OVERALL: dict[str, Any] = {"ok": True, "data": {"campaign_wise_performance": [
    {"id": 1042, "campaign_name": "Q3 outbound", "sent": 500, "opened": 210, "replied": 45, "bounced": 8,
     "open_rate": "42%", "reply_rate": "9%", "bounce_rate": "1.6%", "positive_reply_rate": "20%",
     "positive_replied": 9, "unique_lead_count": 480, "unique_open_count": 190},
    {"id": "1043", "campaign_name": "strings", "sent": "120", "opened": "", "replied": None, "bounced": "3",
     "open_rate": "N/A", "reply_rate": 2.5, "bounce_rate": "2.5 %"},
    {"id": "not-a-number", "sent": 5},
    {"id": 0, "sent": 5},
    "junk",
]}}

#: an email account as GET /email-accounts/ lists it (§1.5), credentials included
LISTED: dict[str, Any] = {
    "id": 2211, "from_name": "Ana", "from_email": " Ana@Sales.Example ", "username": "ana@sales.example",
    "password": SECRET, "imap_password": SECRET, "smtp_host": "smtp.sales.example", "type": "SMTP",
    "message_per_day": 40, "daily_sent_count": 12, "is_smtp_success": True, "is_imap_success": False,
    "smtp_failure_error": None, "imap_failure_error": f"login failed for {SECRET}", "campaign_count": 2,
    "warmup_details": {"status": "ACTIVE", "total_sent_count": 90, "total_spam_count": 1,
                       "warmup_reputation": "95%", "reply_rate": 30, "blocked_reason": None},
}

#: the same account as GET /email-accounts/{id}/ gives it: the number 95 and is_warmup_blocked [X]
BY_ID: dict[str, Any] = {**LISTED, "warmup_details": {
    **LISTED["warmup_details"], "warmup_reputation": 95, "is_warmup_blocked": False, "warmup_max_count": 40,
    "warmup_min_count": 10, "max_email_per_day": 40}, "campaigns": [{"id": 7, "name": "x"}, {"id": "8"}, {"id": "y"}]}


@pytest.mark.parametrize(("value", "expected"), [
    ("1.6%", 0.016), ("9%", 0.09), ("0%", 0.0), ("100%", 1.0), (" 2.5 % ", 0.025), ("33.33%", 0.3333),
    ("1.6", 0.016), (1.6, 0.016), (9, 0.09), (0, 0.0),
    ("", None), (None, None), ("N/A", None), ("-", None), ("-1%", None), (-1, None), (True, None),
    (float("nan"), None), (float("inf"), None), ("1,6%", None), ([], None), ({"value": 1}, None),
])
def test_parse_percent(value: Any, expected: float | None) -> None:
    assert parse_percent(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (12, 12), (0, 0), ("12", 12), (" 12 ", 12), (12.0, 12), ("12.0", 12),
    (12.5, None), ("12.5", None), (-1, None), ("-1", None), ("", None), (None, None), ("N/A", None),
    (True, None), ("1e3", None),
])
def test_parse_count(value: Any, expected: int | None) -> None:
    assert parse_count(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (95, 95.0), ("95%", 95.0), ("95", 95.0), (95.5, 95.5), (0, 0.0), ("100%", 100.0),
    (101, None), ("150%", None), ("", None), (None, None), ("N/A", None), (False, None),
])
def test_parse_reputation_takes_both_documented_forms(value: Any, expected: float | None) -> None:
    assert parse_reputation(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("FALSE", False), (1, None), (None, None), ("yes", None)])
def test_parse_flag(value: Any, expected: bool | None) -> None:
    assert parse_flag(value) is expected


def test_overall_stats_entries_become_metrics_and_bad_ids_are_skipped() -> None:
    page = metrics_page(OVERALL)
    assert page is not None and page.listed == 5
    assert page.items == (
        CampaignMetrics("1042", sent=500, bounced=8, replied=45, opened=210, bounce_rate=0.016, reply_rate=0.09),
        CampaignMetrics("1043", sent=120, bounced=3, replied=None, opened=None, bounce_rate=0.025, reply_rate=0.025),
    )
    assert all(item.started_at is None and item.unsubscribed is None for item in page.items)


def test_one_entry() -> None:
    assert campaign_metrics_of({"campaign_id": 5, "sent": 1}) == CampaignMetrics("5", sent=1)   # the other id name
    for bad in ({"id": True}, {"id": 1.0}, {"id": "12 34"}, {"id": "0123"}, {}, [1]):
        assert campaign_metrics_of(bad) is None


@pytest.mark.parametrize("body", [
    {"ok": True, "data": {"campaign_wise_performance": []}}, {"ok": True, "data": {}}, {"data": []}, [],
    {"campaign_wise_performance": []},
])
def test_empty_overall_stats_shapes(body: Any) -> None:
    page = metrics_page(body)
    assert page is not None and (page.items, page.listed) == ((), 0)


@pytest.mark.parametrize("body", [
    {}, {"ok": False, "data": {"campaign_wise_performance": []}}, {"ok": True, "data": {"campaigns": []}},
    {"ok": True, "data": "none"}, {"success": False, "error": {"code": "X"}}, "text", None,
])
def test_unknown_overall_stats_shapes_are_not_read_as_empty(body: Any) -> None:
    assert metrics_page(body) is None


def test_the_listed_account_takes_only_the_health_fields() -> None:
    health = mailbox_health_of(LISTED)
    assert health == MailboxHealth(email="ana@sales.example", account_id="2211", smtp_ok=True, imap_ok=False,
                                   reputation=95.0, warmup_blocked=False, campaigns=())
    assert SECRET not in repr(health)


def test_get_by_id_gives_the_same_health_and_its_campaigns() -> None:
    health = mailbox_health_of(BY_ID)
    assert health is not None and health.reputation == 95.0 and health.warmup_blocked is False
    assert health.campaigns == ("7", "8")


@pytest.mark.parametrize(("warmup", "top", "expected"), [
    ({"status": "ACTIVE", "blocked_reason": None}, {}, False),
    ({"status": "ACTIVE", "blocked_reason": "Spam folder rate too high"}, {}, True),
    ({"status": "BLOCKED", "blocked_reason": None}, {}, True),
    ({"status": "blocked"}, {}, True),
    ({"is_warmup_blocked": True, "status": "ACTIVE"}, {}, True),
    ({"is_warmup_blocked": False, "blocked_reason": "old reason"}, {}, True),     # any sign of a block counts
    ({"is_warmup_blocked": False}, {}, False),
    ({}, {"is_warmup_blocked": True}, True),
    ({"status": "INACTIVE"}, {}, False),
    ({}, {}, None),                                                                # the vendor said nothing
    ({"blocked_reason": " "}, {}, False),
])
def test_warmup_blocked_from_the_flag_the_reason_or_the_status(
    warmup: dict[str, Any], top: dict[str, Any], expected: bool | None
) -> None:
    health = mailbox_health_of({"from_email": "a@b.example", "warmup_details": warmup, **top})
    assert health is not None and health.warmup_blocked is expected


def test_what_the_vendor_does_not_say_stays_none() -> None:
    health = mailbox_health_of({"from_email": "a@b.example", "is_smtp_success": "maybe", "warmup_details": "x",
                                "id": {"nested": SECRET}})
    assert health == MailboxHealth(email="a@b.example")


@pytest.mark.parametrize("item", [
    {"from_email": None, "password": SECRET}, {"from_email": "no-at-sign", "password": SECRET}, {"id": 5},
    {"from_email": "a" * 320 + "@b.example"}, "a@b.example", None,
])
def test_an_account_without_a_usable_address_is_skipped(item: Any) -> None:
    assert mailbox_health_of(item) is None


def test_email_account_envelopes() -> None:
    for body in ([LISTED, {"from_email": None, "password": SECRET}], {"data": [LISTED, {"password": SECRET}]},
                 {"success": True, "data": [LISTED, 3]}):
        page = mailbox_page(body)
        assert page is not None and page.listed == 2 and [h.email for h in page.items] == ["ana@sales.example"]
    for bad in ({}, {"success": False, "data": []}, {"ok": False, "data": []}, {"data": {"password": SECRET}},
                "text"):
        assert mailbox_page(bad) is None


def test_queries() -> None:
    query = parse_qs(overall_stats_query(date(2026, 11, 30), offset=200))
    assert query == {"start_date": ["2016-12-02"], "end_date": ["2026-12-01"], "limit": ["100"], "offset": ["200"]}
    assert (date(2026, 11, 30) - date(2016, 12, 2)).days == LOOKBACK_DAYS
    assert parse_qs(email_accounts_query(100)) == {"offset": ["100"], "limit": ["100"]}
