"""Inventory.resolve: sender scopes stay within the event's vendor; through the engine's targets too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.engine import Target, evaluate
from bot.events import Event
from bot.inventory import Inventory
from bot.ruleset import load_rule
from tests.conftest import REPO

T0 = datetime(2026, 11, 23, tzinfo=UTC)
SHARED = {
    "smartlead:1": ["ana@sales.example"], "smartlead:2": ["bo@sales.example"],
    "leadterra:camp_7": ["ana@sales.example"], "inbox:abc": ["cy@sales.example"],
}


def _resolve(*targets: Target) -> list[str]:
    return [str(ref) for ref in Inventory(SHARED).resolve(targets)]


def test_sender_account_resolves_within_its_vendor() -> None:
    assert _resolve(Target("sender_account", "ana@sales.example", "smartlead")) == ["smartlead:1"]
    assert _resolve(Target("sender_account", "ana@sales.example", "leadterra")) == ["leadterra:camp_7"]
    assert _resolve(Target("sender_account", "ana@sales.example", "inbox")) == []


def test_sender_domain_resolves_within_its_vendor() -> None:
    assert _resolve(Target("sender_domain", "sales.example", "smartlead")) == ["smartlead:1", "smartlead:2"]
    assert _resolve(Target("sender_domain", "sales.example", "inbox")) == ["inbox:abc"]


def test_without_a_vendor_sender_scopes_span_every_vendor() -> None:
    assert _resolve(Target("sender_account", "ana@sales.example")) == ["leadterra:camp_7", "smartlead:1"]
    assert _resolve(Target("sender_domain", "sales.example")) == [
        "inbox:abc", "leadterra:camp_7", "smartlead:1", "smartlead:2"]


def test_campaign_and_vendor_targets_ignore_the_vendor_field() -> None:
    assert _resolve(Target("campaign", "leadterra:camp_9", "smartlead")) == ["leadterra:camp_9"]
    assert _resolve(Target("vendor", "smartlead", "smartlead")) == ["smartlead:1", "smartlead:2"]


def test_a_smartlead_disconnect_pauses_no_leadterra_campaign() -> None:
    rule = load_rule(REPO / "rules" / "sender-disconnected.yaml")
    event = Event(id="d1", type="account.disconnected", source="smartlead", occurred_at=T0,
                  data={"email": "Ana@Sales.example", "reason": "SMTP auth"})
    (decision,) = evaluate(rule, event, None, T0).decisions
    assert decision.targets == (Target("sender_account", "ana@sales.example", "smartlead"),)
    assert decision.owner == "rule:sender-disconnected@ana@sales.example"
    assert [str(ref) for ref in Inventory(SHARED).resolve(decision.targets)] == ["smartlead:1"]


def test_an_alert_naming_a_sender_without_a_vendor_label_applies_across_vendors() -> None:
    rule = load_rule(REPO / "rules" / "alert-pause.yaml")

    def firing(**labels: Any) -> Event:
        return Event(id="a1", type="alert.firing", source="alertmanager", occurred_at=T0,
                     data={"fingerprint": "f00d", "alertname": "Blacklisted", "summary": "s", "labels": dict(labels)})

    (decision,) = evaluate(rule, firing(sender_email="ana@sales.example"), None, T0).decisions
    assert [str(r) for r in Inventory(SHARED).resolve(decision.targets)] == ["leadterra:camp_7", "smartlead:1"]
    (decision,) = evaluate(rule, firing(sender_email="ana@sales.example", vendor="leadterra"), None, T0).decisions
    assert [str(r) for r in Inventory(SHARED).resolve(decision.targets)] == ["leadterra:camp_7"]
