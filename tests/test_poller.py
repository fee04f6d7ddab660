"""The Poller with fake sources and a recording broker: events per item with per-period ids, published confirmed;
a round repeated within a period reads and publishes nothing again (a new period does); a failed read or publish
is retried with backoff within the period and reported (`poll.failed`, key-free, counted), never more than the
period allows; one route failing or hanging does not hold up the others; 0 turns polling off; dry-run routes and
clients without the protocols poll nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.errors import BrokerUnavailable, VendorAuthError, VendorUnavailable
from bot.inventory import Inventory
from bot.metrics import REGISTRY
from bot.poller import Poller, known_campaigns, pollable
from bot.polling import period_of
from bot.vendors.base import CampaignMetrics, MailboxHealth
from bot.vendors.dryrun import DryRunVendor
from tests.conftest import FakeVendor, FrozenClock

SECRET = "sk_live_9f8e7d6c5b4a"


class RecordingBroker:
    """Publishes confirmed into a list; `failures` are raised by the next publishes, one each."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, Any]]] = []
        self.failures: list[BaseException] = []
        self.changed = asyncio.Event()

    async def publish(self, body: bytes, *, message_id: str, routing_key: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.published.append((message_id, routing_key, json.loads(body)))
        self.changed.set()

    def ids(self) -> list[str]:
        return [message_id for message_id, _, _ in self.published]

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.published) < count:
                self.changed.clear()
                await self.changed.wait()


class Source:
    """A vendor client that polls (both protocols); `failures` are raised by the next reads, one each; `gate`:
    reads wait for it (a slow vendor)."""

    def __init__(self, metrics: Iterable[CampaignMetrics] = (), health: Iterable[MailboxHealth] = ()) -> None:
        self.metrics = list(metrics)
        self.health = list(health)
        self.failures: list[BaseException] = []
        self.reads: list[str] = []
        self.gate: asyncio.Event | None = None

    async def _read(self, kind: str) -> None:
        self.reads.append(kind)
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)

    async def campaign_metrics(self) -> list[CampaignMetrics]:
        await self._read("metrics")
        return self.metrics

    async def mailbox_health(self) -> list[MailboxHealth]:
        await self._read("health")
        return self.health


class MetricsOnly:
    def __init__(self) -> None:
        self.reads = 0

    async def campaign_metrics(self) -> list[CampaignMetrics]:
        self.reads += 1
        return [CampaignMetrics("7", sent=100, bounced=1)]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def poller(vendors: dict[str, object], broker: RecordingBroker, clock: FrozenClock, **kwargs: Any) -> Poller:
    kwargs.setdefault("retry_delays", (0.0,))
    return Poller(vendors, broker, seconds=kwargs.pop("seconds", 900), clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_each_item_becomes_one_event_with_a_period_id_published_on_its_routing_key(clock: FrozenClock) -> None:
    broker = RecordingBroker()
    default = Source(metrics=[CampaignMetrics("101", sent=200, bounced=12, bounce_rate=0.06)],
                     health=[MailboxHealth("ana@acme.io", account_id="9", smtp_ok=False)])
    acme = Source(metrics=[CampaignMetrics("202", sent=50)])
    report = await poller({"smartlead": default, "smartlead@acme": acme}, broker, clock).run_once()
    period = period_of(clock(), 900)
    assert report.period == period and report.failed == []
    assert report.published == {("smartlead", "metrics"): 1, ("smartlead", "health"): 1,
                                ("smartlead@acme", "metrics"): 1, ("smartlead@acme", "health"): 0}
    by_id = {message_id: (key, body) for message_id, key, body in broker.published}
    assert set(by_id) == {f"poll:smartlead:101:{period}", f"poll:smartlead@acme:202:{period}",
                          f"poll:smartlead:mailbox:ana@acme.io:{period}"}
    key, body = by_id[f"poll:smartlead:101:{period}"]
    assert body["type"] == "campaign.metrics" and body["campaign"] == "smartlead:101"
    assert body["data"]["bounce_rate"] == 0.06 and body["data"]["sent"] == 200 and body["data"]["polled"] is True
    assert key == "smartlead.campaign.metrics"
    assert by_id[f"poll:smartlead@acme:202:{period}"][1]["campaign"] == "smartlead@acme:202"
    key, body = by_id[f"poll:smartlead:mailbox:ana@acme.io:{period}"]
    assert body["type"] == "account.health" and body["data"]["healthy"] is False
    assert body["data"]["problems"] == ["SMTP failing"] and key == "smartlead.account.health"


async def test_a_round_repeated_within_a_period_reads_nothing_again_and_the_next_period_does(
        clock: FrozenClock) -> None:
    broker = RecordingBroker()
    source = Source(metrics=[CampaignMetrics("101", sent=10)])
    polls = poller({"smartlead": source}, broker, clock, seconds=900)
    clock.current = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)       # 5 s into a 900 s period
    await polls.run_once()
    clock.advance(seconds=600)                                         # same period
    again = await polls.run_once()
    assert source.reads == ["metrics", "health"] and len(broker.published) == 1
    assert again.skipped == [("smartlead", "metrics"), ("smartlead", "health")] and again.published == {}
    # another process taking the duty over within the period publishes the very same ids: the worker dedupes
    handed_over = RecordingBroker()
    await poller({"smartlead": Source(metrics=[CampaignMetrics("101", sent=11)])}, handed_over, clock).run_once()
    assert handed_over.ids() == broker.ids()
    clock.advance(seconds=300)                                         # the next period
    await polls.run_once()
    first, second = broker.ids()
    assert first != second and second == f"poll:smartlead:101:{period_of(clock(), 900)}"
    assert source.reads == ["metrics", "health"] * 2


async def test_a_failed_read_is_retried_reported_key_free_and_counted(
        clock: FrozenClock, logs: list[dict[str, Any]]) -> None:
    broker = RecordingBroker()
    source = Source(metrics=[CampaignMetrics("101", sent=10)])
    source.failures = [VendorUnavailable("smartlead", 429, f"GET /campaigns/?api_key={SECRET}", "slow down"),
                       VendorUnavailable("smartlead", 503, "GET /campaigns/", f"upstream said api_key={SECRET}")]
    before = {result: sample("campaign_guard_polls_total", route="smartlead@retry", kind="metrics", result=result)
              for result in ("ok", "failed")}
    report = await poller({"smartlead@retry": source}, broker, clock).run_once()
    assert source.reads == ["metrics"] * 3 + ["health"]
    assert report.failed == [] and len(broker.published) == 1
    failed = [line for line in logs if line["event"] == "poll.failed"]
    assert [(line["route"], line["kind"], line["attempt"], line["retry_in"]) for line in failed] == [
        ("smartlead@retry", "metrics", 1, 0.0), ("smartlead@retry", "metrics", 2, 0.0)]
    assert "429" in failed[0]["error"] and "503" in failed[1]["error"]
    assert SECRET not in repr(logs)
    after = {result: sample("campaign_guard_polls_total", route="smartlead@retry", kind="metrics", result=result)
             for result in ("ok", "failed")}
    assert after["failed"] - before["failed"] == 2 and after["ok"] - before["ok"] == 1
    assert not any(line["event"].startswith(("decision", "rule")) for line in logs)


class FailsSecondPublish(RecordingBroker):
    """The second publish fails once (the broker went away after the first was confirmed)."""

    def __init__(self, failure: BaseException) -> None:
        super().__init__()
        self.failure: BaseException | None = failure

    async def publish(self, body: bytes, *, message_id: str, routing_key: str) -> None:
        if len(self.published) == 1 and self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        await super().publish(body, message_id=message_id, routing_key=routing_key)


@pytest.mark.parametrize("failure", [BrokerUnavailable("channel closed"), TimeoutError()])
async def test_a_failed_publish_is_retried_without_reading_the_vendor_again(
        clock: FrozenClock, failure: BaseException, logs: list[dict[str, Any]]) -> None:
    broker = FailsSecondPublish(failure)
    source = Source(metrics=[CampaignMetrics(str(n), sent=n) for n in (1, 2, 3)])
    report = await poller({"smartlead": source}, broker, clock).run_once()
    period = period_of(clock(), 900)
    assert broker.ids() == [f"poll:smartlead:{n}:{period}" for n in (1, 2, 3)]    # each once, in order
    assert source.reads == ["metrics", "health"] and report.published[("smartlead", "metrics")] == 3
    [failed] = [line for line in logs if line["event"] == "poll.failed"]
    assert failed["read"] is True and failed["published"] == 1


async def test_retries_stop_when_the_period_runs_out_and_the_next_round_tries_again(
        clock: FrozenClock, logs: list[dict[str, Any]]) -> None:
    broker = RecordingBroker()
    source = Source(metrics=[CampaignMetrics("101", sent=10)])
    source.failures = [VendorUnavailable("smartlead", 502, "GET /campaigns/", "bad gateway")] * 1000
    polls = poller({"smartlead": source}, broker, clock, seconds=0.2, retry_delays=(0.05,))
    report = await polls.run_once()
    assert ("smartlead", "metrics") in report.failed and broker.published == []
    attempts = source.reads.count("metrics")
    assert 2 <= attempts <= 5                   # 0.05 s apart within 0.9 x 0.2 s
    assert [line["retry_in"] for line in logs if line["event"] == "poll.failed" and line["kind"] == "metrics"][-1] \
        is None
    source.failures.clear()
    clock.advance(seconds=1)
    assert (await polls.run_once()).published[("smartlead", "metrics")] == 1


async def test_one_route_failing_or_hanging_does_not_hold_up_the_others(clock: FrozenClock) -> None:
    broker = RecordingBroker()
    broken = Source(metrics=[CampaignMetrics("1")])
    broken.failures = [VendorAuthError("smartlead", 401, "GET /campaigns/", "invalid key")] * 100
    hanging = Source(metrics=[CampaignMetrics("2")])
    hanging.gate = asyncio.Event()
    fine = Source(metrics=[CampaignMetrics("3")], health=[MailboxHealth("bo@acme.io")])
    polls = poller({"smartlead@broken": broken, "smartlead@hanging": hanging, "smartlead": fine}, broker, clock,
                   seconds=0.5, retry_delays=(0.05,))
    round_ = asyncio.create_task(polls.run_once())
    await broker.wait_for(2)                    # the fine route published while the other two fail or hang
    period = period_of(clock(), 0.5)
    assert set(broker.ids()) == {f"poll:smartlead:3:{period}", f"poll:smartlead:mailbox:bo@acme.io:{period}"}
    assert not round_.done()
    hanging.gate.set()
    async with asyncio.timeout(5):
        report = await round_
    assert report.published[("smartlead", "metrics")] == 1 and report.published[("smartlead@hanging", "metrics")] == 1
    assert ("smartlead@broken", "metrics") in report.failed
    assert f"poll:smartlead@hanging:2:{period}" in broker.ids()


async def test_a_bug_in_one_source_is_reported_by_its_kind_only_and_the_others_go_on(
        clock: FrozenClock, logs: list[dict[str, Any]]) -> None:
    broker = RecordingBroker()
    buggy = Source()
    buggy.failures = [KeyError(f"api_key={SECRET}")]
    report = await poller({"smartlead@buggy": buggy, "smartlead": Source(metrics=[CampaignMetrics("3")])}, broker,
                          clock).run_once()
    assert ("smartlead@buggy", "metrics") in report.failed and len(broker.published) == 1
    assert buggy.reads == ["metrics", "health"]                            # not retried: a bug, not an outage
    assert [line["error"] for line in logs if line["event"] == "poll.failed"] == ["KeyError"]
    assert SECRET not in repr(logs)


async def test_an_item_the_events_cannot_carry_is_left_out(clock: FrozenClock, logs: list[dict[str, Any]]) -> None:
    broker = RecordingBroker()
    source = Source(metrics=[CampaignMetrics("../admin"), CampaignMetrics("5", sent=1)])
    report = await poller({"smartlead": source}, broker, clock).run_once()
    assert broker.ids() == [f"poll:smartlead:5:{period_of(clock(), 900)}"]
    assert report.published[("smartlead", "metrics")] == 1
    assert any(line["event"] == "poll.bad_item" for line in logs)


async def test_zero_seconds_turns_polling_off(clock: FrozenClock) -> None:
    broker = RecordingBroker()
    source = Source(metrics=[CampaignMetrics("101")])
    polls = poller({"smartlead": source}, broker, clock, seconds=0)
    assert not polls.enabled and polls.kinds == {}
    await polls.run_once()
    assert source.reads == [] and broker.published == []
    assert sample("campaign_guard_poll_interval_seconds") == 0


def test_only_clients_implementing_the_protocols_poll_and_dry_run_routes_never() -> None:
    assert pollable({
        "smartlead": Source(), "smartlead@dry": DryRunVendor("smartlead", reason="no_api_key"),
        "leadterra": MetricsOnly(), "inbox": FakeVendor("inbox"),
    }) == {"leadterra": ["metrics"], "smartlead": ["metrics", "health"]}


async def test_success_sets_the_last_poll_time_and_counts_the_items(clock: FrozenClock) -> None:
    broker = RecordingBroker()
    items = sample("campaign_guard_poll_items_total", route="smartlead@gauges", kind="metrics")
    started = datetime.now(UTC).timestamp()
    await poller({"smartlead@gauges": Source(metrics=[CampaignMetrics("1"), CampaignMetrics("2")])}, broker,
                 clock, seconds=120).run_once()
    assert sample("campaign_guard_poll_items_total", route="smartlead@gauges", kind="metrics") - items == 2
    last = sample("campaign_guard_poll_last_success_timestamp_seconds", route="smartlead@gauges", kind="metrics")
    assert started <= last <= started + 60
    assert sample("campaign_guard_poll_interval_seconds") == 120



class Following:
    """A Leadterra-like client: no campaign list; it polls the campaigns `follow` tells it, asked at each poll."""

    def __init__(self) -> None:
        self.known: Any = None

    def follow(self, known: Any) -> None:
        self.known = known

    async def campaign_metrics(self) -> list[CampaignMetrics]:
        return [CampaignMetrics(campaign_id, sent=1) for campaign_id in await self.known()]


class Watched:
    """The part of the state store `known_campaigns` reads: the campaigns held or paused."""

    def __init__(self, *campaigns: str) -> None:
        self.campaigns = list(campaigns)

    async def watched_campaigns(self) -> list[str]:
        return self.campaigns


async def test_a_client_without_a_campaign_list_polls_the_campaigns_of_its_account_the_worker_knows(
        clock: FrozenClock) -> None:
    inventory = Inventory({"leadterra:camp_a1": ["ana@acme.io"]})
    inventory.add("leadterra:camp_b2")                          # seen in an event (Leadterra names no sender)
    inventory.add("leadterra@acme:camp_c3")                     # another account's
    inventory.add("smartlead:7")
    state = Watched("leadterra:camp_d4", "leadterra@acme:camp_e5", "smartlead:8")
    default, acme = Following(), Following()
    broker = RecordingBroker()
    polls = poller({"leadterra": default, "leadterra@acme": acme}, broker, clock,
                   campaigns=known_campaigns(inventory, state))  # type: ignore[arg-type]
    await polls.run_once()
    period = period_of(clock(), 900)
    assert sorted(broker.ids()) == sorted(
        [f"poll:leadterra:{c}:{period}" for c in ("camp_a1", "camp_b2", "camp_d4")]
        + [f"poll:leadterra@acme:{c}:{period}" for c in ("camp_c3", "camp_e5")])
    inventory.add("leadterra:camp_f6")                          # learned since: polled from the next period on
    clock.advance(seconds=900)
    await polls.run_once()
    assert f"poll:leadterra:camp_f6:{period + 1}" in broker.ids()
