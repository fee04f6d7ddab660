"""Alertmanager and Grafana normalizers: one event per alert, identity fingerprint + status + startsAt."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.errors import PayloadError
from bot.events import Event
from bot.sources import ALERT_SOURCES, normalize, webhook_sources

Payload = Callable[[str], bytes]


def events(source: str, body: bytes | dict[str, Any], received_at: datetime) -> list[Event]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return normalize(source, raw, received_at=received_at)


def test_alert_sources_have_their_own_intake() -> None:
    assert ALERT_SOURCES == {"alertmanager", "grafana"} and not ALERT_SOURCES & webhook_sources()


def test_grouped_alertmanager_notification_is_split_into_one_event_per_alert(
    payload: Payload, received_at: datetime
) -> None:
    first, second = events("alertmanager", payload("alertmanager_firing.json"), received_at)
    assert (first.type, first.source, first.campaign) == ("alert.firing", "alertmanager", None)
    assert first.id == "alertmanager:alert.firing:9c0d27e1f4b1a6d2|2026-11-23T08:55:00.123456+00:00"
    assert first.occurred_at == datetime(2026, 11, 23, 8, 55, 0, 123456, tzinfo=UTC)
    assert first.data == {
        "fingerprint": "9c0d27e1f4b1a6d2", "alertname": "SendingDomainBlacklisted", "status": "firing",
        "labels": {"alertname": "SendingDomainBlacklisted", "blacklist": "zen.spamhaus.org",
                   "sender_domain": "acme-mail.io", "severity": "critical"},
        "annotations": {"summary": "acme-mail.io is listed on zen.spamhaus.org",
                        "runbook_url": "https://runbooks.example.com/blacklist"},
        "summary": "acme-mail.io is listed on zen.spamhaus.org",
        "starts_at": "2026-11-23T08:55:00.123456+00:00", "ends_at": None,
        "generator_url": "http://prometheus:9090/graph?g0.expr=blacklist_listed%3E0",
        "receiver": "campaign-guard", "group_key": '{}:{alertname="SendingDomainBlacklisted"}',
        "truncated_alerts": 0, "external_url": "http://alertmanager:9093",
    }
    labels = second.data["labels"]
    assert isinstance(labels, dict) and labels["campaign"] == "smartlead:501, smartlead:502 leadterra:camp_7"
    assert second.data["summary"] == "campaigns 501, 502 and camp_7 send from a listed IP"    # description


def test_each_alert_keeps_its_own_status_and_truncation_is_carried(payload: Payload, received_at: datetime) -> None:
    firing, resolved = events("alertmanager", payload("alertmanager_truncated.json"), received_at)
    assert (firing.type, resolved.type) == ("alert.firing", "alert.resolved")     # the group says "firing"
    assert resolved.occurred_at == datetime(2026, 11, 23, 8, 58, tzinfo=UTC)      # endsAt
    assert resolved.data["ends_at"] == "2026-11-23T08:58:00+00:00"
    assert firing.data["truncated_alerts"] == resolved.data["truncated_alerts"] == 3
    assert firing.data["generator_url"] is None                                    # "" from the API


def test_identity_is_fingerprint_status_and_starts_at(payload: Payload, received_at: datetime) -> None:
    body = json.loads(payload("alertmanager_resolved.json"))
    resolved = events("alertmanager", body, received_at)[0]
    fired = events("alertmanager", payload("alertmanager_firing.json"), received_at)[0]
    assert resolved.data["fingerprint"] == fired.data["fingerprint"] and resolved.id != fired.id
    # an HA peer's copy (other receiver name, key order, later arrival) is the same event
    peer = dict(body, receiver="campaign-guard-b", externalURL="http://alertmanager-b:9093")
    assert events("alertmanager", peer, datetime(2026, 11, 23, 11, tzinfo=UTC))[0].id == resolved.id
    # the same alert firing again later is a new episode
    again = json.loads(payload("alertmanager_firing.json"))
    again["alerts"][0]["startsAt"] = "2026-11-24T01:00:00Z"
    assert events("alertmanager", again, received_at)[0].id != fired.id


def test_missing_fingerprint_is_derived_from_the_labels(received_at: datetime) -> None:
    alert = {"status": "firing", "labels": {"alertname": "X", "vendor": "smartlead"},
             "startsAt": "2026-11-23T08:00:00Z"}
    reordered = dict(alert, labels={"vendor": "smartlead", "alertname": "X"})
    one = events("alertmanager", {"alerts": [alert]}, received_at)[0]
    two = events("alertmanager", {"alerts": [reordered]}, received_at)[0]
    assert one.data["fingerprint"] == two.data["fingerprint"] and len(str(one.data["fingerprint"])) == 16
    assert one.data["fingerprint_derived"] is True and one.id == two.id


def test_grafana_notification(payload: Payload, received_at: datetime) -> None:
    [fired] = events("grafana", payload("grafana_firing.json"), received_at)
    [resolved] = events("grafana", payload("grafana_resolved.json"), received_at)
    assert fired.id == "grafana:alert.firing:c6eadffa33fcdf37|2026-11-23T07:51:03.157076+00:00"
    assert (fired.source, fired.type, resolved.type) == ("grafana", "alert.firing", "alert.resolved")
    assert fired.data["org_id"] == 1 and fired.data["values"] == {"B": 1, "C": 1}
    labels = fired.data["labels"]
    assert isinstance(labels, dict) and labels["sender_domain"] == "acme-mail.io"
    assert fired.data["dashboard_url"] == "https://grafana.example.com/d/postmaster?orgId=1"
    assert resolved.occurred_at == datetime(2026, 11, 23, 8, 20, 3, 157076, tzinfo=UTC)
    [nodata] = events("grafana", payload("grafana_nodata.json"), received_at)
    assert nodata.data["alertname"] == "DatasourceNoData" and "values" not in nodata.data


@pytest.mark.parametrize(
    ("source", "name", "reason"),
    [
        ("alertmanager", "alertmanager_bad_version.json", "field version: unsupported alertmanager webhook version"),
        ("alertmanager", "alertmanager_alerts_not_a_list.json", "field alerts: expected a JSON array"),
        ("alertmanager", "alertmanager_missing_starts_at.json", "field alerts[1].startsAt: expected an RFC 3339"),
        ("alertmanager", "malformed_truncated.json", "body is not valid JSON"),
        ("grafana", "grafana_legacy.json", "legacy Grafana alerting payload"),
        ("grafana", "grafana_label_not_a_string.json", "field alerts[0].labels.severity: expected a string"),
        ("grafana", "alertmanager_firing.json", "unsupported grafana webhook version '4'"),
    ],
)
def test_malformed_fixture_is_refused_with_the_field(
    payload: Payload, received_at: datetime, source: str, name: str, reason: str
) -> None:
    with pytest.raises(PayloadError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        events(source, payload(name), received_at)


@pytest.mark.parametrize(
    ("alert", "reason"),
    [
        ({"status": "pending"}, "alerts[0].status: expected firing or resolved"),
        ({"labels": {}}, "alerts[0].labels: an alert needs at least one label"),
        ({"labels": ["x"]}, "alerts[0].labels: expected a JSON object of strings"),
        ({"annotations": {"summary": None}}, "alerts[0].annotations.summary: expected a string"),
        ({"startsAt": "yesterday"}, "alerts[0].startsAt"),
        ({"startsAt": 1763888400}, "alerts[0].startsAt"),
        ({"startsAt": "0001-01-01T00:00:00Z"}, "alerts[0].startsAt"),
        ({"endsAt": "soon"}, "alerts[0].endsAt"),
        ({"fingerprint": "../../etc"}, "alerts[0].fingerprint"),
        ({"fingerprint": 42}, "alerts[0].fingerprint"),
    ],
)
def test_invalid_alert_fields_are_named(received_at: datetime, alert: dict[str, Any], reason: str) -> None:
    base = {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "2026-11-23T08:00:00Z",
            "fingerprint": "abc"}
    with pytest.raises(PayloadError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        events("alertmanager", {"version": "4", "alerts": [{**base, **alert}]}, received_at)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "expected a JSON object"),
        ({"alerts": []}, "at least one alert"),
        ({"alerts": [1]}, "field alerts[0]: expected a JSON object"),
        ({"alerts": [{}], "truncatedAlerts": -1}, "truncatedAlerts"),
    ],
)
def test_invalid_notifications(received_at: datetime, body: Any, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        events("alertmanager", body, received_at)
