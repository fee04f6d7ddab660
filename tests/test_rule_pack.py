"""Every shipped rule in rules/ does what its file says, through the worker and a recording vendor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.accounts import Account, Accounts
from bot.breaker import Breaker
from bot.broker.base import Delivery, Verdict
from bot.events import DEFAULT_ACCOUNT, CampaignRef, Event
from bot.executor import Executor
from bot.inventory import Inventory
from bot.notify import Notice
from bot.polling import health_event, metrics_event
from bot.ruleset import load_rules
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignMetrics, CampaignStatus, MailboxHealth
from bot.vendors.spec import VendorConfig
from bot.worker import Worker
from tests.conftest import REPO, FakeVendor, FrozenClock


class Bot:
    """The shipped rules over a real SQLite store and fake vendors, with a hand-moved clock. `routes`: named
    accounts (`smartlead@acme`), each with its own fake vendor, besides every vendor's default account."""

    def __init__(self, store: SqliteStateStore, clock: FrozenClock, *, breaker: Breaker | None = None,
                 routes: tuple[str, ...] = (), inventory: Inventory | None = None,
                 notifier: Any = None) -> None:
        self.vendors = {"smartlead": FakeVendor("smartlead"), "leadterra": FakeVendor("leadterra", can_read_state=False),
                        "inbox": FakeVendor("inbox")}
        self.vendors.update({route: FakeVendor(route.partition("@")[0]) for route in routes})
        accounts = Accounts([Account(r.partition("@")[0], r.partition("@")[2] or DEFAULT_ACCOUNT,
                                     VendorConfig(r.partition("@")[0], {})) for r in self.vendors])
        self.executor = Executor(store, self.vendors, clock=clock, breaker=breaker, notifier=notifier)
        self.worker = Worker(store=store, rules=load_rules(REPO / "rules"), executor=self.executor, clock=clock,
                             inventory=inventory, accounts=accounts)
        self.store, self.clock, self._n = store, clock, 0

    def active(self, *refs: str) -> None:
        for ref in refs:
            parsed = CampaignRef.parse(ref)
            self.vendors[parsed.vendor].statuses[parsed.id] = CampaignStatus.ACTIVE

    async def send(self, event_type: str, campaign: str | None = "smartlead:1", *, source: str | None = None,
                   count: int = 1, **data: Any) -> None:
        for _ in range(count):
            self._n += 1
            event = Event(id=f"e{self._n}", type=event_type, occurred_at=self.clock(), campaign=campaign,
                          source=source or (campaign.split(":")[0] if campaign else "smartlead"), data=data)
            outcome = await self.worker.handle(Delivery(event.model_dump_json().encode(), event.id, "k", 0, False))
            assert outcome.verdict is Verdict.ACK, outcome.reason

    async def deliver(self, event: Event) -> None:
        outcome = await self.worker.handle(Delivery(event.model_dump_json().encode(), event.id, "k", 0, False))
        assert outcome.verdict is Verdict.ACK, outcome.reason

    def writes(self, vendor: str = "smartlead") -> list[tuple[str, str]]:
        return self.vendors[vendor].writes()

    async def outcomes(self, campaign: str | None = None) -> list[tuple[str, str]]:
        return [(r.action, r.outcome) for r in await self.store.audit(campaign=campaign)]


@pytest.fixture
def bot(store: SqliteStateStore, clock: FrozenClock) -> Bot:
    return Bot(store, clock)


async def test_spam_complaint_guard_pauses_at_three_per_thousand(bot: Bot) -> None:
    bot.active("smartlead:1", "smartlead:2")
    await bot.send("email.sent", "smartlead:1", count=500)
    await bot.send("email.complained", "smartlead:1", count=2)          # 0.4 %
    await bot.send("email.sent", "smartlead:2", count=1000)
    await bot.send("email.complained", "smartlead:2", count=2)          # 0.2 %
    assert bot.writes() == [("pause", "1")]


async def test_unsubscribe_spike_guard(bot: Bot) -> None:
    bot.active("leadterra:camp_9")
    await bot.send("email.sent", "leadterra:camp_9", count=200)
    await bot.send("lead.unsubscribed", "leadterra:camp_9", count=3)
    assert bot.writes("leadterra") == []
    await bot.send("lead.unsubscribed", "leadterra:camp_9")
    assert bot.writes("leadterra") == [("pause", "camp_9")]


async def test_reply_rate_floor_with_hysteresis_hold_time_and_escalating_cooldown(bot: Bot) -> None:
    bot.active("inbox:abc")

    async def rate(value: float, sent: int) -> None:
        await bot.send("campaign.metrics", "inbox:abc", source="events", reply_rate=value, sent=sent)

    await rate(0.001, 200)                                            # too early: under 300 sends
    assert bot.writes("inbox") == []
    await rate(0.004, 400)
    assert bot.writes("inbox") == [("pause", "abc")]
    assert [h.owner for h in await _holds(bot, "inbox:abc")] == ["rule:reply-rate-floor@inbox:abc"]
    await rate(0.008, 450)                                            # between the thresholds
    bot.clock.advance(hours=7)
    await rate(0.009, 460)
    assert bot.writes("inbox") == [("pause", "abc")]                  # never released under 1 %
    await rate(0.012, 470)
    bot.clock.advance(hours=5)
    await rate(0.011, 480)
    assert bot.writes("inbox") == [("pause", "abc")]                  # above 1 % for 5 h only
    bot.clock.advance(hours=1)
    await rate(0.011, 490)                                            # 6 h above 1 %, but 13 h after the trip:
    assert bot.writes("inbox") == [("pause", "abc")]                  # the first trip is held at least 24 h
    bot.clock.advance(hours=11)
    await rate(0.011, 495)
    assert bot.writes("inbox") == [("pause", "abc"), ("resume", "abc")]
    # Bad again an hour later: the cooldown never delays a pause ...
    bot.clock.advance(hours=1)
    await rate(0.003, 500)
    assert bot.writes("inbox")[-1] == ("pause", "abc")
    # ... it holds the second trip at least 72 h, however soon it recovers.
    await rate(0.02, 510)
    bot.clock.advance(hours=71)
    await rate(0.02, 520)
    assert bot.writes("inbox")[-1] == ("pause", "abc")
    bot.clock.advance(hours=1)
    await rate(0.02, 530)
    assert bot.writes("inbox")[-1] == ("resume", "abc") and len(bot.writes("inbox")) == 4


async def test_reply_rate_floor_releases_only_the_campaign_that_recovered(bot: Bot) -> None:
    bot.active("inbox:abc", "inbox:xyz")
    for ref in ("inbox:abc", "inbox:xyz"):
        await bot.send("campaign.metrics", ref, source="events", reply_rate=0.001, sent=400)
    assert sorted(bot.writes("inbox")) == [("pause", "abc"), ("pause", "xyz")]
    await bot.send("campaign.metrics", "inbox:abc", source="events", reply_rate=0.03, sent=500)
    bot.clock.advance(hours=24)
    await bot.send("campaign.metrics", "inbox:abc", source="events", reply_rate=0.03, sent=510)
    assert bot.writes("inbox")[-1] == ("resume", "abc")
    assert [h.owner for h in await _holds(bot, "inbox:xyz")] == ["rule:reply-rate-floor@inbox:xyz"]
    assert ("resume", "xyz") not in bot.writes("inbox")
    released = [r for r in await bot.store.audit() if r.kind == "decision" and r.action == "release"]
    assert [(r.campaign, r.inputs["key"], r.inputs["value"]) for r in released] == [("inbox:abc", "inbox:abc", 0.03)]


async def test_sender_disconnected_stays_within_the_accounts_vendor(bot: Bot) -> None:
    bot.active("smartlead:1", "leadterra:camp_9")
    await bot.send("email.sent", "smartlead:1", from_email="ana@sales.example")
    await bot.send("email.sent", "leadterra:camp_9", from_email="ana@sales.example")
    await bot.send("account.disconnected", None, source="smartlead", email="ana@sales.example", reason="SMTP auth")
    assert bot.writes() == [("pause", "1")]
    assert bot.writes("leadterra") == []
    assert [h.owner for h in await _holds(bot, "smartlead:1")] == ["rule:sender-disconnected@ana@sales.example"]


async def test_sender_disconnected_pauses_every_campaign_using_the_account(bot: Bot) -> None:
    bot.active("smartlead:1", "smartlead:2", "smartlead:3")
    await bot.send("email.sent", "smartlead:1", from_email="Ana@Sales.example")
    await bot.send("email.sent", "smartlead:2", from_email="ana@sales.example")
    await bot.send("email.sent", "smartlead:3", from_email="bo@sales.example")
    await bot.send("account.disconnected", None, source="smartlead", email="ana@sales.example", reason="SMTP auth")
    assert sorted(bot.writes()) == [("pause", "1"), ("pause", "2")]
    audit = await bot.store.audit(campaign="smartlead:1")
    assert "ana@sales.example disconnected: SMTP auth" in audit[0].detail


async def test_account_that_maps_to_no_campaign_is_recorded_not_dropped(bot: Bot) -> None:
    await bot.send("account.disconnected", None, source="smartlead", email="ghost@sales.example", reason="x")
    assert bot.writes() == []
    assert ("pause", "no_campaign") in await bot.outcomes()


async def test_vendor_paused_campaign_gets_a_vendor_hold_the_bot_never_fights(bot: Bot) -> None:
    bot.vendors["inbox"].statuses["abc"] = CampaignStatus.PAUSED
    await bot.send("campaign.paused", "inbox:abc", by="system")
    assert bot.writes("inbox") == []
    holds = [h.owner for h in await _holds(bot, "inbox:abc")]
    assert holds == ["vendor"]
    await bot.send("campaign.paused", "inbox:xyz", by="user")              # a person's pause: no hold
    assert await _holds(bot, "inbox:xyz") == []
    await bot.send("campaign.started", "inbox:abc")                         # the vendor lifted it
    assert await _holds(bot, "inbox:abc") == []
    assert bot.writes("inbox") == []


async def test_resume_detected_at_the_vendor_is_a_person_override(bot: Bot) -> None:
    bot.active("inbox:abc")
    await bot.send("campaign.metrics", "inbox:abc", source="events", reply_rate=0.001, sent=400)
    assert bot.writes("inbox") == [("pause", "abc")]
    bot.clock.advance(minutes=5)
    bot.vendors["inbox"].statuses["abc"] = CampaignStatus.ACTIVE            # someone resumed it in Inbox
    await bot.send("campaign.started", "inbox:abc")
    assert await _holds(bot, "inbox:abc") == []
    bot.clock.advance(days=2)
    await bot.send("campaign.metrics", "inbox:abc", source="events", reply_rate=0.001, sent=600)
    assert bot.writes("inbox") == [("pause", "abc")]                       # the override wins
    assert ("pause", "suppressed") in await bot.outcomes("inbox:abc")


async def test_blast_radius_breaker_parks_pauses_until_a_person_approves(store, clock) -> None:
    bot = Bot(store, clock, breaker=Breaker(limit=2, window=timedelta(minutes=10), ttl=timedelta(hours=1)))
    refs = [f"smartlead:{n}" for n in range(1, 5)]
    bot.active(*refs)
    for ref in refs:
        await bot.send("email.sent", ref, count=50)
        await bot.send("email.bounced", ref, count=2)
    assert bot.writes() == [("pause", "1"), ("pause", "2")]
    async with store.transaction() as tx:
        parked = await tx.pending()
    assert [p.hold.campaign for p in parked] == ["smartlead:3", "smartlead:4"]
    async with store.transaction() as tx:
        ref = await bot.executor.approve_pending(tx, parked[0].id, by="user:U1", now=clock())
        await bot.executor.reject_pending(tx, parked[1].id, by="user:U1", now=clock())
    await bot.worker.sweep()
    assert str(ref) == "smartlead:3" and bot.writes() == [("pause", "1"), ("pause", "2"), ("pause", "3")]
    assert [h.owner for h in await _holds(bot, "smartlead:4")] == []


async def test_parked_decisions_expire(store, clock) -> None:
    bot = Bot(store, clock, breaker=Breaker(limit=1, window=timedelta(minutes=10), ttl=timedelta(hours=1)))
    bot.active("smartlead:1", "smartlead:2")
    for ref in ("smartlead:1", "smartlead:2"):
        await bot.send("email.sent", ref, count=50)
        await bot.send("email.bounced", ref, count=2)
    clock.advance(hours=2)
    await bot.worker.sweep()
    assert ("pause", "expired") in await bot.outcomes("smartlead:2")
    assert bot.writes() == [("pause", "1")]


async def _holds(bot: Bot, campaign: str) -> list[Any]:
    async with bot.store.transaction() as tx:
        return await tx.holds(campaign)


# Issue 13: warnings, the analytics bounce guard, mailbox health, no outcome -----------------------------------


class Notices:
    def __init__(self) -> None:
        self.seen: list[Notice] = []

    async def notify(self, notice: Notice) -> None:
        self.seen.append(notice)


async def test_bounce_guard_warns_once_at_two_percent_before_it_pauses(store: SqliteStateStore,
                                                                       clock: FrozenClock) -> None:
    notices = Notices()
    bot = Bot(store, clock, notifier=notices)
    bot.active("smartlead:1")
    await bot.send("email.sent", count=100)
    await bot.send("email.bounced", count=2)                           # 2 of the last 100 sends
    await bot.send("email.sent", count=10)                             # 2/110: still warned, no second notice
    assert [(n.kind, n.campaign) for n in notices.seen] == [("warning", "smartlead:1")]
    assert notices.seen[0].text == "bounce rate 2.0% (2 bounces over the last 100 sends): pauses at 3%"
    assert await _holds(bot, "smartlead:1") == [] and bot.writes() == []
    assert await bot.outcomes("smartlead:1") == [("notify", "warned")]
    await bot.send("email.bounced", count=2)                           # 4/110 = 3.6%
    assert bot.writes() == [("pause", "1")]
    assert [n.kind for n in notices.seen] == ["warning", "paused"]


def _poll(ref: str, now: Any, period: int = 1, **numbers: Any) -> Event:
    vendor_route, _, campaign_id = ref.rpartition(":")
    return metrics_event(vendor_route, CampaignMetrics(campaign_id, **numbers), now, period)


async def test_the_two_bounce_guards_place_one_hold_whichever_sees_the_bounces_first(bot: Bot) -> None:
    bot.active("smartlead:1", "smartlead:2")
    # smartlead:1: the webhooks first, then the vendor's analytics agree
    await bot.send("email.sent", "smartlead:1", count=60)
    await bot.send("email.bounced", "smartlead:1", count=2)
    await bot.deliver(_poll("smartlead:1", bot.clock(), 1, sent=60, bounced=3, bounce_rate=0.05))
    # smartlead:2: the analytics first (no rate given: bounced / sent), then the webhooks agree
    await bot.deliver(_poll("smartlead:2", bot.clock(), 1, sent=100, bounced=4))
    await bot.send("email.sent", "smartlead:2", count=60)
    await bot.send("email.bounced", "smartlead:2", count=3)
    await bot.deliver(_poll("smartlead:2", bot.clock(), 2, sent=160, bounced=7, bounce_rate=0.0438))
    assert sorted(bot.writes()) == [("pause", "1"), ("pause", "2")]
    for ref in ("smartlead:1", "smartlead:2"):
        assert [h.owner for h in await _holds(bot, ref)] == [f"rule:bounce-guard@{ref}"]
        assert (await bot.outcomes(ref)).count(("pause", "hold_placed")) == 1
    rules = {r.rule for r in await bot.store.audit() if r.outcome == "hold_placed"}
    assert rules == {"bounce-guard", "bounce-guard-analytics"}


async def test_a_person_resuming_a_bounce_hold_is_not_fought_by_either_guard(bot: Bot) -> None:
    bot.active("smartlead:1")
    await bot.deliver(_poll("smartlead:1", bot.clock(), 1, sent=100, bounced=5))
    assert bot.writes() == [("pause", "1")]
    bot.clock.advance(minutes=5)
    bot.vendors["smartlead"].statuses["1"] = CampaignStatus.ACTIVE      # a person resumed it at the vendor
    await bot.send("campaign.started", "smartlead:1")
    await bot.deliver(_poll("smartlead:1", bot.clock(), 2, sent=110, bounced=6))
    await bot.send("email.sent", "smartlead:1", count=60)
    await bot.send("email.bounced", "smartlead:1", count=3)
    assert bot.writes() == [("pause", "1")]
    assert sorted(h.owner for h in await _holds(bot, "smartlead:1")) == [     # markers, no hold
        "suppressed:bounce-guard", "suppressed:bounce-guard-analytics"]
    assert [r.rule for r in await bot.store.audit(campaign="smartlead:1") if r.outcome == "suppressed"] == [
        "bounce-guard-analytics", "bounce-guard"]


async def test_polled_metrics_under_the_sample_or_without_counts_decide_nothing(bot: Bot) -> None:
    bot.active("smartlead:1")
    await bot.deliver(_poll("smartlead:1", bot.clock(), 1, sent=49, bounced=10, bounce_rate=0.2))
    await bot.deliver(_poll("smartlead:1", bot.clock(), 2, bounced=10, bounce_rate=0.2))
    await bot.deliver(_poll("smartlead:1", bot.clock(), 3, sent=300, replied=0, reply_rate=0.0))
    assert bot.writes() == [] and await bot.outcomes() == []          # reply-rate-floor leaves polls alone


def _mailbox(route: str, period: int, now: Any, **health: Any) -> Event:
    return health_event(route, MailboxHealth("ana@acme-mail.example", "7", **health), now, period)


async def test_an_unhealthy_mailbox_pauses_its_routes_campaigns_until_six_healthy_hours(
        store: SqliteStateStore, clock: FrozenClock) -> None:
    inventory = Inventory({"smartlead@acme:5": ["ana@acme-mail.example"], "smartlead@acme:6": ["bo@acme-mail.example"],
                           "smartlead:5": ["ana@acme-mail.example"], "instantly@acme:c5": ["ana@acme-mail.example"]})
    bot = Bot(store, clock, routes=("smartlead@acme", "instantly@acme"), inventory=inventory)
    bot.vendors["smartlead@acme"].statuses.update({"5": CampaignStatus.ACTIVE, "6": CampaignStatus.ACTIVE})
    bot.active("smartlead:5")
    await bot.deliver(_mailbox("smartlead@acme", 1, clock(), smtp_ok=True, imap_ok=True, reputation=64))
    assert bot.writes("smartlead@acme") == [("pause", "5")]          # acme's campaign of ana only
    assert bot.writes() == [] and bot.writes("instantly@acme") == []
    assert [h.owner for h in await _holds(bot, "smartlead@acme:5")] == ["rule:mailbox-health@ana@acme-mail.example"]
    for period in range(2, 26):                                       # healthy every 15 min, from 15 min to 6 h
        clock.advance(minutes=15)
        await bot.deliver(_mailbox("smartlead@acme", period, clock(), smtp_ok=True, imap_ok=True, reputation=90))
        await bot.worker.tick()
    assert bot.writes("smartlead@acme") == [("pause", "5")]
    clock.advance(minutes=14)                                         # 5 h 59 min healthy
    assert await bot.worker.tick() == 0
    clock.advance(minutes=1)                                          # 6 h since the first healthy poll
    assert await bot.worker.tick() == 1                               # on the clock, no poll needed
    assert bot.writes("smartlead@acme") == [("pause", "5"), ("resume", "5")]


async def test_no_reply_after_500_sends_and_48_hours_by_the_vendors_analytics(bot: Bot) -> None:
    bot.active("smartlead:1", "smartlead:2")
    start = bot.clock()
    await bot.deliver(_poll("smartlead:1", bot.clock(), 1, sent=600, replied=0, started_at=start))
    await bot.deliver(_poll("smartlead:2", bot.clock(), 1, sent=600, replied=0, started_at=None))
    bot.clock.advance(hours=47, minutes=45)
    await bot.deliver(_poll("smartlead:1", bot.clock(), 2, sent=900, replied=0, started_at=start))
    assert bot.writes() == []
    bot.clock.advance(minutes=15)
    await bot.deliver(_poll("smartlead:1", bot.clock(), 3, sent=910, replied=0, started_at=start))
    await bot.deliver(_poll("smartlead:2", bot.clock(), 3, sent=910, replied=0, started_at=None))
    assert bot.writes() == [("pause", "1")]
    assert [h.owner for h in await _holds(bot, "smartlead:1")] == ["rule:no-outcome@smartlead:1"]
    (row,) = [r for r in await bot.store.audit(campaign="smartlead:1") if r.outcome == "hold_placed"]
    assert row.rule == "no-outcome-analytics" and row.detail == (
        "no reply after 910 sends in 48h since the first send (the vendor's own analytics)")


async def test_no_reply_webhooks_are_only_a_shadow_decision(bot: Bot) -> None:
    bot.active("smartlead:1")
    await bot.send("email.sent", count=500)
    bot.clock.advance(hours=48)
    await bot.send("email.sent")
    assert bot.writes() == []
    assert ("pause", "would_pause") in await bot.outcomes("smartlead:1")
