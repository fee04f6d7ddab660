"""The shipped alert rules (alert-pause, alert-release, alert-unscoped) through the worker, from real payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.breaker import Breaker
from bot.broker.base import Delivery, Verdict
from bot.executor import Executor
from bot.inventory import Inventory
from bot.notify import Notice
from bot.ruleset import load_rules
from bot.sources import normalize
from bot.state.base import Hold
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignStatus
from bot.worker import Worker
from tests.conftest import REPO, FakeVendor, FrozenClock

PAYLOADS = REPO / "tests" / "payloads"
INVENTORY = {
    "smartlead:501": ["anna@acme-mail.io"], "smartlead:502": ["bob@acme-mail.io"],
    "smartlead:503": ["carl@other.io"], "leadterra:camp_7": ["dora@other.io"],
    **{f"smartlead:{n}": [f"s{n}@bulk.io"] for n in range(510, 516)},
}


class Recorder:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def notify(self, notice: Notice) -> None:
        self.notices.append(notice)


class Bot:
    """Shipped rules over SQLite, fake vendors (every campaign active), an inventory, recorded notices."""

    def __init__(self, store: SqliteStateStore, clock: FrozenClock, *, rules: Path = REPO / "rules",
                 breaker_limit: int = 5) -> None:
        self.vendors = {"smartlead": FakeVendor("smartlead"), "leadterra": FakeVendor("leadterra", can_read_state=False),
                        "inbox": FakeVendor("inbox")}
        for ref in INVENTORY:
            vendor, _, campaign_id = ref.partition(":")
            self.vendors[vendor].statuses[campaign_id] = CampaignStatus.ACTIVE
        self.recorder = Recorder()
        self.executor = Executor(store, self.vendors, clock=clock, notifier=self.recorder,
                                 breaker=Breaker(limit=breaker_limit))
        self.worker = Worker(store=store, rules=load_rules(rules), executor=self.executor, clock=clock,
                             inventory=Inventory(INVENTORY))
        self.store, self.clock = store, clock

    async def post(self, body: bytes | dict[str, Any], source: str = "alertmanager") -> list[Verdict]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        verdicts = []
        for event in normalize(source, raw, received_at=self.clock()):
            outcome = await self.worker.handle(Delivery(event.model_dump_json().encode(), event.id, "k", 0, False))
            verdicts.append(outcome.verdict)
        return verdicts

    def writes(self, vendor: str = "smartlead") -> list[tuple[str, str]]:
        return self.vendors[vendor].writes()

    async def holds(self, campaign: str) -> list[str]:
        async with self.store.transaction() as tx:
            return [h.owner for h in await tx.holds(campaign)]


def alert(status: str, fingerprint: str, starts: str = "2026-11-23T08:00:00Z", **labels: str) -> dict[str, Any]:
    one = {"status": status, "labels": {"alertname": "Test", **labels}, "annotations": {"summary": "s"},
           "startsAt": starts, "endsAt": "2026-11-23T08:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
           "fingerprint": fingerprint}
    return {"version": "4", "receiver": "campaign-guard", "groupKey": "{}:{}", "alerts": [one]}


@pytest.fixture
def bot(store: SqliteStateStore, clock: FrozenClock) -> Bot:
    return Bot(store, clock)


async def test_firing_pauses_exactly_the_labelled_campaigns_under_the_alerts_holds(bot: Bot) -> None:
    assert await bot.post((PAYLOADS / "alertmanager_firing.json").read_bytes()) == [Verdict.ACK] * 2
    assert bot.writes() == [("pause", "501"), ("pause", "502")]            # sender_domain, then campaign labels
    assert bot.writes("leadterra") == [("pause", "camp_7")]
    assert await bot.holds("smartlead:501") == ["alert:432b58e2a3726e97", "alert:9c0d27e1f4b1a6d2"]
    assert await bot.holds("smartlead:503") == []
    [decision] = [r for r in await bot.store.audit(campaign="leadterra:camp_7") if r.kind == "decision"]
    assert decision.rule == "alert-pause" and decision.outcome == "hold_placed"
    assert decision.detail == ("alertmanager alert SendingDomainBlacklisted firing: "
                               "campaigns 501, 502 and camp_7 send from a listed IP")


async def test_resume_only_after_every_alert_resolved_and_never_over_a_person(bot: Bot) -> None:
    await bot.post((PAYLOADS / "alertmanager_firing.json").read_bytes())
    async with bot.store.transaction() as tx:                              # someone pauses 502 meanwhile
        await bot.executor.hold(tx, Hold("smartlead:502", "user:U1", "person", "list under review", bot.clock()))
    await bot.post((PAYLOADS / "alertmanager_resolved.json").read_bytes())  # the domain alert resolves
    assert [w for w in bot.writes() if w[0] == "resume"] == []             # the campaign alert still holds both
    assert await bot.holds("smartlead:501") == ["alert:432b58e2a3726e97"]
    await bot.post(alert("resolved", "432b58e2a3726e97", "2026-11-23T08:56:30Z",
                         campaign="smartlead:501, smartlead:502 leadterra:camp_7"))
    assert [w for w in bot.writes() if w[0] == "resume"] == [("resume", "501")]
    assert bot.writes("leadterra")[-1] == ("resume", "camp_7")
    assert await bot.holds("smartlead:502") == ["user:U1"]
    assert bot.vendors["smartlead"].statuses["502"] is CampaignStatus.PAUSED


async def test_a_repeated_notification_makes_no_second_vendor_call(bot: Bot) -> None:
    body = alert("firing", "aaaa000000000001", campaign="smartlead:503")
    assert await bot.post(body) == [Verdict.ACK]
    assert await bot.post(body) == [Verdict.ACK]                            # a duplicate is acked too
    assert bot.worker.handled["duplicate"] == 1 and bot.writes() == [("pause", "503")]
    await bot.post(alert("resolved", "aaaa000000000001", campaign="smartlead:503"))
    await bot.post(alert("resolved", "aaaa000000000001", campaign="smartlead:503"))
    assert bot.writes() == [("pause", "503"), ("resume", "503")]


async def test_the_same_alert_firing_again_later_pauses_again(bot: Bot) -> None:
    await bot.post(alert("firing", "aaaa000000000002", sender_email="Carl@Other.io"))
    await bot.post(alert("resolved", "aaaa000000000002", sender_email="Carl@Other.io"))
    await bot.post(alert("firing", "aaaa000000000002", "2026-11-23T11:00:00Z", sender_email="Carl@Other.io"))
    assert bot.writes() == [("pause", "503"), ("resume", "503"), ("pause", "503")]


async def test_a_vendor_wide_alert_trips_the_blast_radius_breaker(store: SqliteStateStore, clock: FrozenClock) -> None:
    bot = Bot(store, clock, breaker_limit=3)
    await bot.post(alert("firing", "bbbb000000000001", vendor="smartlead", alertname="WorkspaceReputation"))
    assert len(bot.writes()) == 3                                          # 9 smartlead campaigns in the inventory
    async with store.transaction() as tx:
        parked = await tx.pending()
    assert len(parked) == 6 and {p.hold.owner for p in parked} == {"alert:bbbb000000000001"}
    kinds = [n.kind for n in bot.recorder.notices]
    assert kinds.count("breaker_open") == 1 and kinds.count("pending_decision") == 6
    assert bot.writes("leadterra") == []


async def test_an_alert_mapping_to_no_known_campaign_is_recorded_and_notified(bot: Bot) -> None:
    await bot.post(alert("firing", "cccc000000000001", sender_domain="unknown.example"))
    [row] = await bot.store.audit()
    assert (row.rule, row.outcome) == ("alert-pause", "no_campaign")
    assert "sender_domain=unknown.example" in row.detail
    assert [n.kind for n in bot.recorder.notices] == ["no_campaign"]
    assert bot.writes() == []


async def test_an_explicit_campaign_label_is_acted_on_even_if_the_inventory_does_not_know_it(bot: Bot) -> None:
    """The alert named the campaign: the inventory (a sender → campaign map, incomplete by nature) is not asked."""
    assert "smartlead:999" not in bot.worker._inventory
    bot.vendors["smartlead"].statuses["999"] = CampaignStatus.ACTIVE
    await bot.post(alert("firing", "cccc000000000003", campaign="smartlead:999"))
    assert bot.writes() == [("pause", "999")]
    assert await bot.holds("smartlead:999") == ["alert:cccc000000000003"]


async def test_an_alert_naming_only_invalid_campaign_ids_pauses_nothing(bot: Bot) -> None:
    await bot.post(alert("firing", "cccc000000000004", campaign="smartlead:abc, nothing"))
    [row] = await bot.store.audit()
    assert (row.rule, row.outcome) == ("alert-pause", "no_campaign")
    assert bot.writes() == []


async def test_an_alert_without_scope_labels_is_reported(bot: Bot) -> None:
    await bot.post(alert("firing", "cccc000000000002", alertname="DiskFull", instance="db1"))
    declined, row = await bot.store.audit()
    assert (declined.rule, declined.outcome) == ("alert-pause", "declined")     # recorded, never silent
    assert "names no campaign" in declined.detail
    assert (row.rule, row.outcome) == ("alert-unscoped", "no_campaign")
    assert row.detail.startswith("alertmanager alert DiskFull has no campaign, sender_email, sender_domain or "
                                 "vendor label")
    assert [n.kind for n in bot.recorder.notices] == ["no_campaign"]


async def test_grafana_alerts_pause_and_release_but_its_nodata_alerts_do_not(bot: Bot) -> None:
    await bot.post((PAYLOADS / "grafana_nodata.json").read_bytes(), source="grafana")
    assert bot.writes() == []
    await bot.post((PAYLOADS / "grafana_firing.json").read_bytes(), source="grafana")
    assert bot.writes() == [("pause", "501"), ("pause", "502")]
    await bot.post((PAYLOADS / "grafana_resolved.json").read_bytes(), source="grafana")
    assert bot.writes()[2:] == [("resume", "501"), ("resume", "502")]


async def test_a_rule_can_narrow_alerts_by_severity(store: SqliteStateStore, clock: FrozenClock,
                                                   tmp_path: Path) -> None:
    text = (REPO / "rules" / "alert-pause.yaml").read_text()
    (tmp_path / "alert-pause.yaml").write_text(text.replace("when:\n", "when:\n  data.labels.severity: {eq: critical}\n"))
    (tmp_path / "alert-release.yaml").write_text((REPO / "rules" / "alert-release.yaml").read_text())
    bot = Bot(store, clock, rules=tmp_path)
    await bot.post(alert("firing", "dddd000000000001", campaign="smartlead:501", severity="warning"))
    await bot.post(alert("firing", "dddd000000000002", campaign="smartlead:502", severity="critical"))
    assert bot.writes() == [("pause", "502")]


async def test_resolving_an_alert_withdraws_the_pauses_the_breaker_parked_for_it(
    store: SqliteStateStore, clock: FrozenClock
) -> None:
    bot = Bot(store, clock, breaker_limit=3)
    await bot.post(alert("firing", "bbbb000000000002", vendor="smartlead"))
    await bot.post(alert("resolved", "bbbb000000000002", vendor="smartlead"))
    assert [w for w in bot.writes() if w[0] == "resume"] != []                # the 3 paused ones came back
    async with store.transaction() as tx:
        assert await tx.pending() == []


async def test_a_late_firing_after_the_resolution_pauses_nothing(store: SqliteStateStore, clock: FrozenClock) -> None:
    bot = Bot(store, clock)
    await bot.post(alert("firing", "cccc000000000003", campaign="smartlead:501"))
    await bot.post(alert("resolved", "cccc000000000003", campaign="smartlead:501"))
    assert bot.writes() == [("pause", "501"), ("resume", "501")]
    # an HA peer delivers the same firing late: its id differs from the first one's only if the first was
    # lost, so simulate that with a new group key (the event id is fingerprint + status + startsAt)
    late = alert("firing", "cccc000000000003", campaign="smartlead:501")
    async with store.transaction() as tx:
        await tx.remove_hold("smartlead:501", "alert:cccc000000000003")
    await store_forget_firing(store)
    assert await bot.post(late) == [Verdict.ACK]
    assert bot.writes() == [("pause", "501"), ("resume", "501")]
    assert await bot.holds("smartlead:501") == []


async def test_release_reaches_campaigns_held_even_if_the_inventory_changed(
    store: SqliteStateStore, clock: FrozenClock
) -> None:
    bot = Bot(store, clock)
    await bot.post(alert("firing", "dddd000000000004", sender_domain="acme-mail.io"))
    assert sorted(bot.writes()) == [("pause", "501"), ("pause", "502")]
    bot.worker._inventory = Inventory({"smartlead:501": ["anna@elsewhere.io"]})   # senders moved since
    await bot.post(alert("resolved", "dddd000000000004", sender_domain="acme-mail.io"))
    assert sorted(w for w in bot.writes() if w[0] == "resume") == [("resume", "501"), ("resume", "502")]


async def store_forget_firing(store: SqliteStateStore) -> None:
    """Forget the recorded firing event, as if that delivery had been lost (only the resolution is known)."""
    async with store.transaction() as tx:
        await tx._db.execute("DELETE FROM events WHERE type = 'alert.firing'")
