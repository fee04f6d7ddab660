"""The decision core's promises, one problem each (worker + executor + reconciler over SQLite, fake vendors):
holds per rule and key, releases on a clock, the breaker counting real pauses, ownership with evidence,
the drift watch, dry run carried into live mode, durability."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from bot.breaker import Breaker
from bot.broker.base import Delivery
from bot.errors import StaleRecord, VendorNotFound
from bot.events import CampaignRef, Event
from bot.executor import Executor
from bot.ruleset import load_rules
from bot.state.base import CampaignRecord, Hold, HoldKind, Pending
from bot.state.sqlite import SqliteStateStore
from bot.vendors.base import CampaignStatus
from bot.worker import Worker
from tests.conftest import REPO, FakeVendor, FrozenClock


class Recorder:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    async def notify(self, notice: object) -> None:
        self.kinds.append(notice.kind)  # type: ignore[attr-defined]


class Bot:
    def __init__(self, store: SqliteStateStore, clock: FrozenClock, *, dry: frozenset[str] = frozenset(),
                 breaker: Breaker | None = None) -> None:
        self.vendors = {"smartlead": FakeVendor("smartlead"), "leadterra": FakeVendor("leadterra", can_read_state=False),
                        "inbox": FakeVendor("inbox")}
        self.notices = Recorder()
        self.executor = Executor(store, self.vendors, dry_run_vendors=dry, clock=clock, notifier=self.notices,
                                 breaker=breaker, override_for=timedelta(days=7))
        self.worker = Worker(store=store, rules=load_rules(REPO / "rules"), executor=self.executor, clock=clock)
        self.store, self.clock, self.n = store, clock, 0

    async def event(self, event_type: str, campaign: str, **data: object) -> None:
        self.n += 1
        event = Event(id=f"e{self.n}", type=event_type, source="smartlead" if campaign.startswith("smartlead") else
                      "events", occurred_at=self.clock(), campaign=campaign, data=data)
        await self.worker.handle(Delivery(event.model_dump_json().encode(), event.id, event.routing_key, 0, False))

    async def spike(self, campaign: str, sends: int = 100, bounces: int = 3) -> None:
        for _ in range(sends):
            await self.event("email.sent", campaign)
        for _ in range(bounces):
            await self.event("email.bounced", campaign)

    async def holds(self, campaign: str) -> list[str]:
        async with self.store.transaction() as tx:
            return [h.owner for h in await tx.holds(campaign)]

    async def record(self, campaign: str) -> CampaignRecord:
        async with self.store.transaction() as tx:
            return await tx.campaign(campaign)

    def writes(self, vendor: str = "smartlead") -> list[tuple[str, str]]:
        return self.vendors[vendor].writes()


@pytest.fixture
def bot(store: SqliteStateStore, clock: FrozenClock) -> Bot:
    return Bot(store, clock)


# --------------------------------------------------------------------------- 1. holds per rule and key

async def test_a_release_lifts_only_the_hold_of_the_campaign_that_recovered(bot: Bot) -> None:
    for campaign_id in ("1", "2"):
        bot.vendors["smartlead"].statuses[campaign_id] = CampaignStatus.ACTIVE
        await bot.event("campaign.metrics", f"smartlead:{campaign_id}", reply_rate=0.001, sent=400)
    assert bot.writes() == [("pause", "1"), ("pause", "2")]
    assert await bot.holds("smartlead:1") == ["rule:reply-rate-floor@smartlead:1"]

    bot.clock.advance(hours=30)                                    # past the first cooldown's minimum hold
    await bot.event("campaign.metrics", "smartlead:1", reply_rate=0.02, sent=900)
    bot.clock.advance(hours=7)                                     # held above the release threshold for 6h+
    await bot.event("campaign.metrics", "smartlead:1", reply_rate=0.02, sent=1000)
    await bot.event("campaign.metrics", "smartlead:2", reply_rate=0.001, sent=1000)   # still at 0.1%

    assert bot.writes() == [("pause", "1"), ("pause", "2"), ("resume", "1")]
    assert await bot.holds("smartlead:2") == ["rule:reply-rate-floor@smartlead:2"]
    release = next(r for r in await bot.store.audit(campaign="smartlead:1") if r.action == "release")
    assert release.inputs["value"] == 0.02 and release.inputs["key"] == "smartlead:1"
    assert not [r for r in await bot.store.audit(campaign="smartlead:2") if r.action in ("release", "resume")]


async def test_a_release_lifts_a_hold_placed_before_holds_were_per_key(bot: Bot) -> None:
    bot.vendors["smartlead"].statuses["1"] = CampaignStatus.ACTIVE
    await bot.event("campaign.metrics", "smartlead:1", reply_rate=0.001, sent=400)
    async with bot.store.transaction() as tx:                      # as an older release stored it
        await tx.remove_hold("smartlead:1", "rule:reply-rate-floor@smartlead:1")
        await tx.add_hold(Hold("smartlead:1", "rule:reply-rate-floor", HoldKind.RULE, "old", bot.clock()))
    bot.clock.advance(hours=30)
    await bot.event("campaign.metrics", "smartlead:1", reply_rate=0.02, sent=900)
    bot.clock.advance(hours=7)
    await bot.event("campaign.metrics", "smartlead:1", reply_rate=0.02, sent=1000)
    assert await bot.holds("smartlead:1") == [] and bot.writes()[-1] == ("resume", "1")


# --------------------------------------------------------------------------- releases on a clock

async def test_a_release_due_on_the_clock_happens_in_the_sweep_without_any_event(bot: Bot) -> None:
    bot.vendors["smartlead"].statuses["1"] = CampaignStatus.ACTIVE
    await bot.event("campaign.metrics", "smartlead:1", reply_rate=0.001, sent=400)
    bot.clock.advance(hours=1)
    await bot.event("campaign.metrics", "smartlead:1", reply_rate=0.02, sent=500)   # recovered, then silence
    bot.clock.advance(hours=10)
    await bot.worker.sweep()
    assert bot.writes() == [("pause", "1")]                        # 11h: before the 24h minimum hold
    declined = [r for r in await bot.store.audit(campaign="smartlead:1") if r.outcome == "declined"]
    assert len(declined) == 1 and "cooldown" in declined[0].detail
    bot.clock.advance(hours=14)
    await bot.worker.sweep()
    assert bot.writes() == [("pause", "1"), ("resume", "1")]
    await bot.worker.sweep()
    assert bot.writes() == [("pause", "1"), ("resume", "1")]       # once


# --------------------------------------------------------------------------- 6. the breaker counts real pauses

async def test_the_breaker_counts_only_pauses_that_stop_a_running_campaign(store, clock) -> None:
    bot = Bot(store, clock, breaker=Breaker(limit=2))
    sl = bot.vendors["smartlead"]
    sl.statuses.update({"1": CampaignStatus.PAUSED, "2": CampaignStatus.COMPLETED, "4": CampaignStatus.ACTIVE,
                        "5": CampaignStatus.ACTIVE, "6": CampaignStatus.ACTIVE})
    for campaign_id in ("1", "2", "3"):                            # paused, completed, gone (404): no budget used
        if campaign_id == "3":
            sl.fail_next(1, VendorNotFound("smartlead", 404, "GET /campaigns/3"))
        await bot.spike(f"smartlead:{campaign_id}")
    await bot.spike("smartlead:4")
    await bot.spike("smartlead:5")
    assert bot.writes() == [("pause", "4"), ("pause", "5")]        # the two that were running
    await bot.spike("smartlead:6")                                 # the third real pause: parked
    assert bot.writes() == [("pause", "4"), ("pause", "5")]
    assert await bot.holds("smartlead:6") == ["pending:rule:bounce-guard@smartlead:6"]
    assert bot.notices.kinds.count("pending_decision") == 1 and "breaker_open" in bot.notices.kinds


async def test_dry_run_pauses_never_count_toward_the_breaker(store, clock) -> None:
    bot = Bot(store, clock, dry=frozenset({"smartlead"}), breaker=Breaker(limit=1))
    for campaign_id in ("1", "2", "3"):
        bot.vendors["smartlead"].statuses[campaign_id] = CampaignStatus.ACTIVE
        await bot.spike(f"smartlead:{campaign_id}")
    async with store.transaction() as tx:
        assert await tx.pending(status="pending") == []
        assert await tx.recent_pauses("smartlead", clock() - timedelta(hours=1)) == 0


# --------------------------------------------------------------------------- 7. ownership needs evidence

async def test_a_leadterra_draft_is_never_claimed_so_never_started(bot: Bot) -> None:
    bot.vendors["leadterra"].statuses["camp_1"] = CampaignStatus.DRAFT
    await bot.spike("leadterra:camp_1")
    assert bot.writes("leadterra") == [("pause", "camp_1")]        # a documented no-op on a draft
    assert not (await bot.record("leadterra:camp_1")).bot_paused
    unproven = next(r for r in await bot.store.audit() if r.kind == "action")
    assert unproven.outcome == "unproven" and "never resume it automatically" in unproven.detail
    async with bot.store.transaction() as tx:
        await bot.executor.release(tx, CampaignRef.parse("leadterra:camp_1"), "rule:bounce-guard", bot.clock(),
                                   why="test")
    async with bot.executor.lock(CampaignRef.parse("leadterra:camp_1")):
        await bot.executor.reconcile(CampaignRef.parse("leadterra:camp_1"))
    assert bot.writes("leadterra") == [("pause", "camp_1")] and bot.vendors["leadterra"].launched_drafts == []


async def test_a_leadterra_answer_without_a_status_is_not_a_pause(bot: Bot) -> None:
    await bot.spike("leadterra:camp_2")                            # unknown to the fake: an empty 200 answer
    record = await bot.record("leadterra:camp_2")
    assert not record.bot_paused and record.vendor_status == CampaignStatus.UNKNOWN
    assert await bot.holds("leadterra:camp_2") == ["rule:bounce-guard@leadterra:camp_2"]     # the hold stays


async def test_a_crash_while_a_pause_waits_for_the_rate_limit_never_claims_a_persons_pause(store, clock) -> None:
    bot = Bot(store, clock)
    sl = bot.vendors["smartlead"]
    sl.statuses["1"] = CampaignStatus.ACTIVE
    sl.gate = asyncio.Event()                                      # the pause waits for its rate-limit slot
    await bot.spike("smartlead:1", bounces=2)
    waiting = asyncio.ensure_future(bot.spike("smartlead:1", sends=0, bounces=1))
    await asyncio.wait_for(sl.at_gate.wait(), 5)                   # the pause waits for its slot now
    assert not waiting.done() and (await bot.record("smartlead:1")).pending is Pending.PAUSE   # not yet sent
    sl.set("1", CampaignStatus.PAUSED)                             # meanwhile a person pauses it in the UI
    waiting.cancel()                                               # the worker dies before the slot comes
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    sl.gate = None

    restarted = Bot(store, clock)
    restarted.vendors["smartlead"] = sl
    restarted.executor = Executor(store, restarted.vendors, clock=clock, notifier=restarted.notices)
    restarted.worker = Worker(store=store, rules=load_rules(REPO / "rules"), executor=restarted.executor, clock=clock)
    await restarted.worker.start(frozenset(restarted.vendors))
    assert not (await restarted.record("smartlead:1")).bot_paused  # the person's pause, not campaign-guard's
    assert sl.writes() == []


# --------------------------------------------------------------------------- drift

async def test_a_person_resuming_a_held_campaign_is_an_override_seen_by_the_drift_watch(bot: Bot) -> None:
    sl = bot.vendors["smartlead"]
    sl.statuses["1"] = CampaignStatus.ACTIVE
    await bot.spike("smartlead:1")
    sl.set("1", CampaignStatus.ACTIVE)                             # a person resumed it in the UI
    assert await bot.worker.watch() == 1
    assert await bot.holds("smartlead:1") == [] and "override" in bot.notices.kinds
    await bot.spike("smartlead:1")                                 # still bouncing: the override stands
    assert bot.writes() == [("pause", "1")]
    assert any(r.outcome == "suppressed" for r in await bot.store.audit(campaign="smartlead:1"))

    sl.set("1", CampaignStatus.PAUSED)                             # then the person paused it again
    await bot.worker.watch()
    assert bot.writes() == [("pause", "1")]                        # a person's pause: never resumed


async def test_drift_reads_wait_behind_nothing_and_skip_campaigns_with_a_pending_intent(bot: Bot) -> None:
    sl = bot.vendors["smartlead"]
    sl.statuses["1"] = CampaignStatus.ACTIVE
    await bot.spike("smartlead:1")
    reads = len(sl.calls)
    assert await bot.worker.watch() == 1
    assert len(sl.calls) == reads + 1 and sl.writes() == [("pause", "1")]   # one read, no write
    assert (await bot.record("smartlead:1")).checked_at == bot.clock()


async def test_a_campaign_deleted_at_the_vendor_is_no_longer_claimed_and_said_once(bot: Bot) -> None:
    sl = bot.vendors["smartlead"]
    sl.statuses["1"] = CampaignStatus.ACTIVE
    await bot.spike("smartlead:1")
    for _ in range(2):
        sl.fail_next(1, VendorNotFound("smartlead", 404, "GET /campaigns/1"))
        await bot.worker.watch()
    assert not (await bot.record("smartlead:1")).bot_paused
    drift = [r for r in await bot.store.audit(campaign="smartlead:1") if r.outcome == "drift"]
    assert len(drift) == 1 and "404" in drift[0].detail


# --------------------------------------------------------------------------- 12. dry run, then live

async def test_holds_recorded_in_dry_run_are_paused_when_the_vendor_goes_live(store, clock) -> None:
    dry = Bot(store, clock, dry=frozenset({"smartlead"}))
    await dry.spike("smartlead:1")
    assert dry.writes() == [] and (await dry.record("smartlead:1")).dry_paused

    live = Bot(store, clock)                                       # the key was added; restart on the same state
    live.vendors["smartlead"].statuses["1"] = CampaignStatus.ACTIVE
    assert await live.worker.start(frozenset({"smartlead", "leadterra", "inbox"})) == 1
    assert live.writes() == [("pause", "1")]
    record = await live.record("smartlead:1")
    assert record.bot_paused and not record.dry_paused
    carried = [r for r in await store.audit(campaign="smartlead:1") if r.outcome == "carried_live"]
    assert len(carried) == 1 and "live now" in carried[0].detail
    assert "carried_live" in live.notices.kinds


# --------------------------------------------------------------------------- the versioned record

async def test_a_write_based_on_a_stale_read_fails(store, clock) -> None:
    async with store.transaction() as tx:
        first = await tx.set_campaign(CampaignRecord("smartlead:1"), clock())
        await tx.set_campaign(first, clock())
        with pytest.raises(StaleRecord):
            await tx.set_campaign(first, clock())


# --------------------------------------------------------------------------- 9. durability

async def test_commits_are_durable_on_an_os_crash(store) -> None:
    async with store.transaction() as tx:
        assert await tx._one("PRAGMA synchronous", ()) == (2,)     # FULL
