"""The write contract every real client keeps, against the simulator: the guard withdraws a write held
behind the rate limit (nothing sent), `sent_before` tells whether an earlier attempt may have landed,
GETs never call the guard, and a background read waits behind a pause."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from bot.errors import WriteCancelled
from bot.testing import DEFAULT_KEYS, VendorSimulator
from bot.vendors import InboxClient, LeadterraClient, SlidingWindowLimiter, SmartleadClient
from bot.vendors.base import CampaignStatus, CampaignVendor, Observation
from bot.vendors.instantly.client import InstantlyClient
from bot.vendors.lemlist.client import LemlistClient
from tests.vendors.conftest import FAST_RETRY, Ticking, until

#: vendor → (campaign ref, id, the native status it is running / paused in)
CAMPAIGNS = {
    "smartlead": ("smartlead:123", "123", "ACTIVE", "PAUSED"),
    "leadterra": ("leadterra:camp_123", "camp_123", "running", "paused"),
    "inbox": ("inbox:abc123", "abc123", "active", "paused"),
    "lemlist": ("lemlist:cam_abc123", "cam_abc123", "running", "paused"),
    "instantly": ("instantly:6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b", "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b", "1", "2"),
}


def make(vendor: str, session: aiohttp.ClientSession, base: Callable[[str], str], limiter: SlidingWindowLimiter,
         *, timeout: float = 5) -> CampaignVendor:
    """A client whose WRITES wait for `limiter` (Smartlead, Leadterra and Instantly: its reads too)."""
    common: dict[str, Any] = {"api_key": DEFAULT_KEYS[vendor], "base_url": base(vendor), "retry": FAST_RETRY,
                              "timeout": timeout}
    if vendor == "smartlead":
        return SmartleadClient(session, limiter=limiter, **common)
    if vendor == "leadterra":
        return LeadterraClient(session, limiter=limiter, **common)
    if vendor == "lemlist":
        return LemlistClient(session, limiter=limiter, **common)
    if vendor == "instantly":
        return InstantlyClient(session, limiter=limiter, **common)
    return InboxClient(session, write_limiter=limiter, **common)


def running_campaign(vendor: str, sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str],
            *, timeout: float = 5) -> tuple[CampaignVendor, str, str, str]:
    """(client, ref, campaign id, its running status) for a running campaign of `vendor` at the simulator."""
    ref, cid, status, _ = CAMPAIGNS[vendor]
    sim.add_campaign(ref, status)
    return make(vendor, session, base, SlidingWindowLimiter(100, 1), timeout=timeout), ref, cid, status


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Guard:
    """Answers from `answers` in turn (the last one repeated) and counts its calls."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


@pytest.mark.parametrize("action", ["pause", "resume"])
@pytest.mark.parametrize("vendor", sorted(CAMPAIGNS))
async def test_guard_withdraws_a_write_held_behind_the_rate_limit(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str], vendor: str, action: str
) -> None:
    ref, cid, running, paused = CAMPAIGNS[vendor]
    source = running if action == "pause" else paused
    sim.add_campaign(ref, source)
    limiter = SlidingWindowLimiter(1, 60, clock=Clock())
    client = make(vendor, session, base, limiter)
    await limiter.acquire()                                          # another write is in flight
    guard = Guard(False)                                             # ... and meanwhile the intent went away
    current = Observation(CampaignStatus.ACTIVE if action == "pause" else CampaignStatus.PAUSED)
    task = asyncio.create_task(getattr(client, action)(cid, current=current, guard=guard))
    await until(lambda: limiter.waiting == (1, 0))
    assert guard.calls == 0                                          # not asked before the slot is granted
    limiter.release(used=False)
    with pytest.raises(WriteCancelled) as caught:
        await task
    assert (caught.value.vendor, caught.value.sent_before) == (vendor, False)
    assert caught.value.where.startswith("POST /campaigns/")
    assert guard.calls == 1
    assert sim.calls == []                                           # zero requests at the vendor
    assert sim.status_of(ref) == source
    assert limiter.waiting == (0, 0)
    async with asyncio.timeout(1):
        await limiter.acquire()                                      # the withdrawn write used no slot


@pytest.mark.parametrize("vendor", sorted(CAMPAIGNS))
async def test_guard_that_says_yes_lets_the_write_through_and_is_never_asked_for_reads(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str], vendor: str
) -> None:
    client, _ref, cid, _running_status = running_campaign(vendor, sim, session, base)
    guard = Guard(True)
    result = await client.pause(cid, guard=guard)
    assert (result.status, result.sent, result.proven) == (CampaignStatus.PAUSED, True, True)
    assert guard.calls == 1 == len(sim.calls_for(method="POST"))    # reads before/after did not ask it


@pytest.mark.parametrize("vendor", sorted(CAMPAIGNS))
async def test_sent_before_when_an_earlier_attempt_timed_out(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str], vendor: str
) -> None:
    client, _ref, cid, _running_status = running_campaign(vendor, sim, session, base, timeout=0.3)
    sim.inject(vendor, "hold", method="POST")                        # the first attempt gets no answer
    guard = Guard(True, False)                                       # the intent went away before the retry
    with pytest.raises(WriteCancelled) as caught:
        await client.pause(cid, current=Observation(CampaignStatus.ACTIVE), guard=guard)
    assert caught.value.sent_before is True
    assert guard.calls == 2
    [first] = await sim.wait_for_calls(lambda c: c.method == "POST")
    assert first.status is None                                      # it reached the vendor; no answer came back
    sim.release_hangs()


@pytest.mark.parametrize("vendor", sorted(CAMPAIGNS))
async def test_a_429_before_is_not_sent_before(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str], vendor: str
) -> None:
    client, ref, cid, running_status = running_campaign(vendor, sim, session, base)
    sim.inject(vendor, "rate_limit", method="POST", retry_after=0.01)   # refused: nothing was done
    with pytest.raises(WriteCancelled) as caught:
        await client.pause(cid, current=Observation(CampaignStatus.ACTIVE), guard=Guard(True, False))
    assert caught.value.sent_before is False
    assert sim.status_of(ref) == running_status


async def test_a_background_read_waiting_when_a_pause_arrives_goes_after_it(
    sim: VendorSimulator, session: aiohttp.ClientSession, base: Callable[[str], str]
) -> None:
    sim.add_campaign("smartlead:1", "PAUSED")
    sim.add_campaign("smartlead:2", "ACTIVE")
    limiter = SlidingWindowLimiter(1, 60, clock=Ticking())
    client = make("smartlead", session, base, limiter)
    await limiter.acquire()                                          # a request in flight
    drift = asyncio.create_task(client.observe("1", background=True))
    await until(lambda: limiter.waiting == (0, 1))
    pause = asyncio.create_task(client.pause("2"))
    await until(lambda: limiter.waiting == (1, 1))
    limiter.release()
    seen, result = await asyncio.gather(drift, pause)
    assert seen.status is CampaignStatus.PAUSED and result.proven
    assert (sim.calls[0].method, sim.calls[0].path) == ("GET", "/campaigns/2")    # the pause's read went first
    assert sim.calls_for(path="/campaigns/1")[0].at >= sim.calls[0].at
