"""The vendor contract, once, for every registered vendor (issue 11, "Proof").

Each test takes the `rig` fixture, parametrized over `bot.vendors.registry.specs()`: a vendor added to the
registry gets the whole suite by its registry line alone. Clients are built the way production builds them
(`Settings` → `Settings.vendor(name)` → the package's factory, `bot.vendors.build.client_factory`), pointed
at the simulator, with fast retries. A case is skipped only where the vendor's documented contract makes it
impossible (no read endpoint, no vendor hold), and the skip says so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import aiohttp
import pytest

from bot.config import Settings
from bot.errors import VendorAuthError, VendorError, VendorNotFound, VendorUnavailable
from bot.events import CampaignRef
from bot.testing import DEFAULT_KEYS, CallRecord, VendorSimulator, max_in_window
from bot.testing.sim_registry import SIM_VENDORS
from bot.vendors import registry
from bot.vendors.base import CampaignStatus, CampaignVendor, Observation
from bot.vendors.build import build_vendors, client_factory
from bot.vendors.dryrun import DryRunVendor
from bot.vendors.http import RetryPolicy, VendorRefused, basic_credentials
from bot.vendors.spec import VendorSpec
from tests.vendors.conftest import FAST_RETRY, assert_secret_absent

ACTIVE, PAUSED, DRAFT = CampaignStatus.ACTIVE, CampaignStatus.PAUSED, CampaignStatus.DRAFT
HELD = CampaignStatus.VENDOR_HELD

NO_READS = "{name} documents no read endpoint (can_read_state=False): {what}"

#: Id shapes tried in turn; the first whose ids all match the vendor's pattern is used. A vendor whose ids
#: fit none of them gets ids generated from its pattern (hypothesis, slower but automatic).
_ID_SHAPES: tuple[Callable[[int], str], ...] = (
    lambda n: str(n + 1),
    lambda n: f"camp_{n + 1}",
    lambda n: f"cam_{n + 1}",
    lambda n: f"6f1c2a9e-3b4d-4e5f-8a7b-{n + 1:012x}",
    lambda n: f"c{n + 1}",
)


@cache
def sample_ids(name: str, count: int = 12) -> tuple[str, ...]:
    """`count` distinct valid campaign ids of vendor `name` (valid for `CampaignRef` too)."""
    spec = registry.get(name)
    assert spec is not None

    def valid(cid: str) -> bool:
        if not spec.campaign_id.fullmatch(cid):
            return False
        try:
            CampaignRef.parse(f"{name}:{cid}")
        except ValueError:
            return False
        return True

    for shape in _ID_SHAPES:
        ids = tuple(shape(n) for n in range(count))
        if all(valid(cid) for cid in ids):
            return ids
    from hypothesis import find, settings
    from hypothesis import strategies as st

    found = find(st.lists(st.from_regex(spec.campaign_id, fullmatch=True).filter(valid), min_size=count,
                          max_size=count, unique=True), lambda _: True,
                 settings=settings(database=None, derandomize=True))
    return tuple(found)


def natives(spec: VendorSpec, common: CampaignStatus) -> list[str]:
    """The vendor's own status words that mean `common`, in the order of its status map."""
    return [native for native, mapped in spec.statuses.items() if mapped is common]


def methods(calls: Iterable[CallRecord]) -> list[str]:
    return [call.method for call in calls]


@dataclass
class Rig:
    """One vendor against the simulator: campaigns, clients built from settings, the call log."""

    spec: VendorSpec
    sim: VendorSimulator
    session: aiohttp.ClientSession
    base_url: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def reads(self) -> bool:
        return self.spec.can_read_state

    @property
    def key(self) -> str:
        return DEFAULT_KEYS[self.name]

    def settings(self, *, key: str | None = None, rate: tuple[int, float] | None = None) -> Settings:
        values: dict[str, Any] = {"api_key": key or self.key, "base_url": self.base_url}
        if rate is not None:                        # every rate setting of the vendor, shrunk alike
            values |= {setting: f"{rate[0]}/{rate[1]:g}" for setting in self.spec.rate_limits}
        return Settings(**{f"{self.name}_{k}": v for k, v in values.items()})

    def client(self, *, key: str | None = None, rate: tuple[int, float] | None = None,
               retry: RetryPolicy = FAST_RETRY, timeout: float = 5.0) -> CampaignVendor:
        """A client as `build_vendors` makes it (the package's factory and the settings block)."""
        settings = self.settings(key=key, rate=rate)
        return client_factory(self.spec)(self.session, settings.vendor(self.name), retry, timeout)

    def roomy(self, rate: tuple[int, float] = (1000, 1.0)) -> tuple[int, float]:
        """Give the vendor (the simulator's buckets) `rate`, for a test making more calls than the default
        limit allows without waiting (Smartlead: 10 per 2 s); pass it on to `client(rate=...)`."""
        for bucket in SIM_VENDORS[self.name].limits:
            self.sim.set_limit(bucket, rate)
        return rate

    def campaign(self, status: CampaignStatus | str, n: int = 0) -> tuple[str, str]:
        """(ref, id) of a campaign added in `status` (common: its first native word; or a native word)."""
        if isinstance(status, CampaignStatus):
            words = natives(self.spec, status)
            if not words:
                pytest.skip(f"{self.name} has no status mapped to {status}")
            status = words[0]
        cid = sample_ids(self.name)[n]
        ref = f"{self.name}:{cid}"
        self.sim.add_campaign(ref, status)
        return ref, cid

    def common(self, ref: str) -> CampaignStatus | None:
        """The simulator's campaign status, in the common model."""
        return self.spec.statuses.get(self.sim.status_of(ref))

    def posts(self) -> list[CallRecord]:
        return self.sim.calls_for(method="POST")


@pytest.fixture(params=registry.specs(), ids=lambda spec: spec.name)
def rig(request: pytest.FixtureRequest, sim: VendorSimulator, session: aiohttp.ClientSession,
        base: Callable[[str], str]) -> Rig:
    spec: VendorSpec = request.param
    if spec.name not in SIM_VENDORS:
        pytest.fail(f"{spec.name} registers no simulator (VendorSpec.simulator): the contract cannot be proven")
    return Rig(spec, sim, session, base(spec.name))


# ---------------------------------------------------------------- built as production builds it


async def test_build_vendors_makes_the_same_real_client(rig: Rig) -> None:
    built = build_vendors(rig.settings(), rig.session)[rig.name]
    assert not isinstance(built, DryRunVendor)
    assert type(built) is type(rig.client())
    assert (built.name, built.can_read_state) == (rig.name, rig.spec.can_read_state)


# ---------------------------------------------------------------- pause and resume


async def test_pause_of_a_running_campaign_is_one_proven_write_and_resume_undoes_it(rig: Rig) -> None:
    ref, cid = rig.campaign(ACTIVE)
    client = rig.client()

    paused = await client.pause(cid)
    assert (paused.status, paused.sent, paused.proven) == (PAUSED, True, True), paused.detail
    assert rig.common(ref) is PAUSED
    assert methods(rig.sim.calls) == (["GET", "POST", "GET"] if rig.reads else ["POST"])    # read, write, read

    rig.sim.clear_calls()
    resumed = await client.resume(cid)
    assert (resumed.status, resumed.sent, resumed.proven) == (ACTIVE, True, True), resumed.detail
    assert rig.common(ref) is ACTIVE
    assert methods(rig.sim.calls) == (["GET", "POST", "GET"] if rig.reads else ["POST"])


# ---------------------------------------------------------------- the status map


async def test_observe_and_state_map_every_native_status(rig: Rig) -> None:
    if not rig.reads:
        pytest.skip(NO_READS.format(name=rig.name, what="observe()/state() answer UNKNOWN without a call "
                                    "(see test_a_vendor_without_reads_maps_its_statuses_from_the_answer)"))
    client = rig.client(rate=rig.roomy())
    for n, (native, common) in enumerate(rig.spec.statuses.items()):
        _, cid = rig.campaign(native, n)
        assert (await client.observe(cid)).status is common, native
        assert await client.state(cid) is common, native
    assert set(methods(rig.sim.calls)) == {"GET"}
    assert len(rig.sim.calls) == 2 * len(rig.spec.statuses)


async def test_a_vendor_without_reads_maps_its_statuses_from_the_answer(rig: Rig) -> None:
    if rig.reads:
        pytest.skip(f"{rig.name} has a read endpoint: its status map is proven by observe()")
    client = rig.client()
    _, cid = rig.campaign(ACTIVE)
    assert await client.observe(cid) == Observation(CampaignStatus.UNKNOWN)
    assert await client.state(cid) is CampaignStatus.UNKNOWN
    assert rig.sim.calls == []                                      # no read endpoint: nothing was called
    for n, (native, common) in enumerate(rig.spec.statuses.items(), start=1):
        ref, cid = rig.campaign(native, n)
        result = await client.pause(cid)                            # the answer carries the status after it
        assert result.status is (PAUSED if common in (ACTIVE, PAUSED) else common), native
        assert rig.common(ref) is (PAUSED if common in (ACTIVE, PAUSED) else common), native


# ---------------------------------------------------------------- no-op answers


async def test_pause_of_a_paused_campaign_is_a_no_op(rig: Rig) -> None:
    ref, cid = rig.campaign(PAUSED)
    before = rig.sim.status_of(ref), rig.sim.campaign(ref).paused_at, rig.sim.campaign(ref).updated_at
    result = await rig.client().pause(cid)
    assert (result.status, result.proven) == (PAUSED, False)        # someone else paused it: not ours
    assert result.detail
    if rig.reads:
        assert result.sent is False and rig.posts() == []           # read, and nothing written
    else:
        assert len(rig.posts()) == 1                                # the documented no-op answer
    assert (rig.sim.status_of(ref), rig.sim.campaign(ref).paused_at, rig.sim.campaign(ref).updated_at) == before


async def test_resume_of_a_running_campaign_changes_nothing(rig: Rig) -> None:
    ref, cid = rig.campaign(ACTIVE)
    before = rig.sim.status_of(ref), rig.sim.campaign(ref).started_at, rig.sim.campaign(ref).updated_at
    result = await rig.client().resume(cid)
    assert (result.status, result.proven) == (ACTIVE, False)
    if rig.reads:
        assert result.sent is False and rig.posts() == []
    assert (rig.sim.status_of(ref), rig.sim.campaign(ref).started_at, rig.sim.campaign(ref).updated_at) == before


# ---------------------------------------------------------------- drafts and vendor holds


async def test_pause_never_turns_a_draft_into_a_paused_campaign(rig: Rig) -> None:
    ref, cid = rig.campaign(DRAFT)
    draft = rig.sim.status_of(ref)
    result = await rig.client().pause(cid)
    assert (result.status, result.proven) == (DRAFT, False)
    if rig.reads:
        assert result.sent is False and rig.posts() == []
    assert rig.sim.status_of(ref) == draft                          # a later resume cannot launch it


async def test_resume_never_launches_a_draft(rig: Rig) -> None:
    if not rig.reads:
        pytest.skip(NO_READS.format(name=rig.name, what="its client cannot see a draft, and start on a draft "
                                    "LAUNCHES it (documented): only the caller's proof of its own pause makes "
                                    "resume safe"))
    ref, cid = rig.campaign(DRAFT)
    draft = rig.sim.status_of(ref)
    client = rig.client()
    with pytest.raises(VendorRefused):
        await client.resume(cid)                                    # read: a draft; refused
    assert rig.posts() == []
    rig.sim.clear_calls()
    with pytest.raises(VendorRefused):
        await client.resume(cid, current=Observation(DRAFT))        # the caller's own read: no call at all
    assert rig.sim.calls == []
    assert rig.sim.status_of(ref) == draft


async def test_vendor_holds_are_neither_paused_over_nor_lifted(rig: Rig) -> None:
    holds = natives(rig.spec, HELD)
    if not holds:
        pytest.skip(f"{rig.name} maps no status to {HELD}: it has no hold of its own")
    client = rig.client()
    for n, native in enumerate(holds):
        ref, cid = rig.campaign(native, n)
        paused = await client.pause(cid)
        assert (paused.status, paused.sent, paused.proven) == (HELD, False, False), native
        with pytest.raises(VendorRefused):
            await client.resume(cid)
        with pytest.raises(VendorRefused):
            await client.resume(cid, current=Observation(HELD))
        assert rig.sim.status_of(ref) == native
    assert rig.posts() == []


# ---------------------------------------------------------------- the rate limit

LIMIT, PERIOD = 3, 0.1


async def test_a_burst_never_exceeds_the_rate_limit_at_the_vendor(rig: Rig) -> None:
    client = rig.client(rate=rig.roomy((LIMIT, PERIOD)))           # the vendor enforces the same limit
    _, cid = rig.campaign(ACTIVE)
    burst = 3 * LIMIT
    # the cheapest call each vendor has: a read, or (no read endpoint) a pause, a no-op after the first
    call = client.observe if rig.reads else client.pause
    await asyncio.gather(*(call(cid) for _ in range(burst)))
    calls = rig.sim.calls
    assert len(calls) == burst
    assert {c.status for c in calls} == {200}                      # no 429: nothing was refused or retried
    assert max_in_window(calls, PERIOD) == LIMIT
    assert calls[-1].at - calls[0].at >= 2 * PERIOD                 # the limiter held the rest back


# ---------------------------------------------------------------- retries and error mapping


def _fault_method(rig: Rig, where: str) -> str:
    if where == "read" and not rig.reads:
        pytest.skip(NO_READS.format(name=rig.name, what="there is no read to fail"))
    return "GET" if where == "read" else "POST"


@pytest.mark.parametrize("where", ["read", "write"])
async def test_429_with_retry_after_is_retried_then_succeeds(rig: Rig, where: str) -> None:
    method = _fault_method(rig, where)
    ref, cid = rig.campaign(ACTIVE)
    rig.sim.inject(rig.name, "rate_limit", method=method, retry_after=0.05, times=1)
    result = await rig.client().pause(cid)
    assert (result.status, result.proven) == (PAUSED, True), result.detail
    assert rig.common(ref) is PAUSED
    refused, retried = rig.sim.calls_for(method=method)[:2]
    assert (refused.status, retried.status) == (429, 200)
    assert retried.at - refused.at >= 0.05                          # Retry-After was honoured
    assert len(rig.posts()) == (1 if method == "GET" else 2)


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("where", ["read", "write"])
async def test_5xx_is_retried_then_succeeds(rig: Rig, where: str, status: int) -> None:
    method = _fault_method(rig, where)
    ref, cid = rig.campaign(ACTIVE)
    rig.sim.inject(rig.name, "error", status=status, method=method, times=2)
    result = await rig.client().pause(cid)
    assert (result.status, result.proven) == (PAUSED, True), result.detail
    assert rig.common(ref) is PAUSED
    assert [c.status for c in rig.sim.calls_for(method=method)][:3] == [status, status, 200]


async def test_5xx_retries_end_within_the_budget(rig: Rig) -> None:
    _, cid = rig.campaign(ACTIVE)
    rig.sim.inject(rig.name, "error", status=503, forever=True)
    with pytest.raises(VendorUnavailable) as caught:
        await rig.client().pause(cid)
    assert caught.value.status == 503
    assert len(rig.sim.calls) == FAST_RETRY.max_attempts


@pytest.mark.parametrize("case", ["401 wrong key", "403", "404 no such campaign"])
async def test_client_errors_map_to_the_error_tree_and_are_not_retried(rig: Rig, case: str) -> None:
    ref, cid = rig.campaign(ACTIVE)
    client = rig.client(key="wrong-key-0123456789" if case.startswith("401") else None)
    if case == "403":
        rig.sim.inject(rig.name, "error", status=403, times=1)
    if case.startswith("404"):
        cid = sample_ids(rig.name)[1]                               # a valid id the vendor does not know
    expected: type[VendorError] = VendorNotFound if case.startswith("404") else VendorAuthError
    with pytest.raises(expected) as caught:
        await client.pause(cid)
    assert caught.value.status == int(case[:3])
    assert len(rig.sim.calls) == 1                                  # not retried
    assert rig.common(ref) is ACTIVE


# ---------------------------------------------------------------- ids


def bad_ids(spec: VendorSpec) -> list[str]:
    """Ids that must never reach a URL: path and query tricks around a valid id, and odd characters."""
    good = sample_ids(spec.name)[0]
    candidates = [
        "", " ", "..", "../" + good, good + "/..", good + "/../../admin", good + "/", "/" + good, good + "?x=1",
        good + "?api_key=stolen", good + "#frag", good + "%2F..", good + " ", " " + good, good + "\n",
        good + "\r\nX-Injected: 1", good + "\x00", good + "\u0661", "x" * 500, good * 40,
    ]
    return [cid for cid in candidates if not spec.campaign_id.fullmatch(cid)]


async def test_invalid_ids_are_refused_before_any_call(rig: Rig) -> None:
    client = rig.client()
    ids = bad_ids(rig.spec)
    assert len(ids) >= 15
    operations: dict[str, Callable[[str], Any]] = {
        "observe": client.observe,
        "state": client.state,
        "pause": client.pause,
        "resume": client.resume,
        "pause (current given)": lambda cid: client.pause(cid, current=Observation(ACTIVE)),
        "resume (current given)": lambda cid: client.resume(cid, current=Observation(PAUSED)),
    }
    for cid in ids:
        for what, operation in operations.items():
            with pytest.raises(VendorRefused):
                await operation(cid)
            assert rig.sim.calls == [], f"{what}({cid!r}) reached the vendor"


# ---------------------------------------------------------------- the key stays secret


async def test_the_key_never_appears_in_logs_errors_or_reprs(rig: Rig, logs: list[dict[str, Any]]) -> None:
    wrong = "wrong-key-9876543210"
    secrets = [secret for key in (rig.key, wrong) for secret in (key, basic_credentials(key))]
    client = rig.client(rate=rig.roomy())
    failures: list[BaseException] = []

    async def expect_failure(call: Any) -> None:
        try:
            await call
        except (VendorError, VendorRefused) as exc:
            failures.append(exc)
        else:
            raise AssertionError("expected a vendor error")

    _, cid = rig.campaign(ACTIVE)
    await client.pause(cid)                                         # reads (debug) and a write (info)
    await client.resume(cid)
    rig.sim.inject(rig.name, "rate_limit", retry_after=0.01, times=1)
    await client.pause(cid)                                         # vendor.retrying after a 429
    rig.sim.inject(rig.name, "error", status=503, forever=True)
    await expect_failure(client.resume(cid))                        # vendor.gave_up
    rig.sim.clear_faults()
    rig.sim.inject(rig.name, "error", status=403, times=1)
    await expect_failure(client.pause(cid))
    await expect_failure(client.pause(sample_ids(rig.name)[1]))     # 404
    await expect_failure(rig.client(key=wrong).pause(cid))          # 401
    await expect_failure(client.pause(bad_ids(rig.spec)[5]))        # refused before any call
    rig.sim.inject(rig.name, "hold")                                # no answer: the client times out
    hasty = rig.client(retry=RetryPolicy(max_attempts=1), timeout=0.05)
    await expect_failure(hasty.pause(cid))
    rig.sim.release_hangs()

    assert {"vendor.called", "vendor.retrying", "vendor.gave_up"} <= {entry["event"] for entry in logs}
    assert len(failures) == 6
    for secret in secrets:
        for entry in logs:
            assert secret not in repr(entry), f"secret in log line {entry['event']}"
        assert_secret_absent(secret, *failures, client, hasty)
        assert secret not in repr(vars(client))
        assert not re.search(re.escape(secret), str(rig.sim.calls))   # nor in what the vendor logs as sent
