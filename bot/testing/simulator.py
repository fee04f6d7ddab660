"""Vendor simulator: one aiohttp app serving Smartlead, Leadterra and Inbox for tests and demos.

    sim = VendorSimulator()
    sim.add_campaign("smartlead:123", status="ACTIVE")
    sim.inject("smartlead", "error", status=503, times=2)
    server = await aiohttp_server(sim.app)          # base URL: server.make_url("/smartlead/api/v1")
    ...
    await sim.wait_for_calls(lambda c: c.method == "POST", count=1)

Vendors live under `PREFIXES` (`/smartlead/api/v1`, `/leadterra/v1`, `/inbox/api/v1`); each vendor's
contract is in its package (`bot.vendors.<name>.sim`, found through the registry: `bot.testing.sim_registry`),
the JSON control API under `/_sim/` in `bot.testing.sim_control`.
Every request is logged (`calls`) without its credential; tests wait on the log, never sleep.

Acting as a person in the vendor's UI (no API call, nothing logged): `sim.ui(ref, "pause")` /
`sim.ui(ref, "resume")` (vendor rules: pause an active campaign, resume a paused one), or
`sim.set_status(ref, status)` for any status. Every status change, however made, moves the campaign's
change stamps like the vendor would: `updated_at` (Smartlead `updated_at`, Inbox `updatedAt`; strictly
increasing, milliseconds) and `paused_at`/`started_at`/`completed_at` (Leadterra: whole seconds).
Stamps follow `wall` (a UTC clock, injectable).

Holding a request in flight: `sim.inject(vendor, "hold", method="POST")` keeps matching requests
unanswered (before the vendor's logic runs; with `after_apply=True` after it) until `sim.release_hangs()`;
`sim.held` lists the requests being held, so a test can `await sim.wait_until(lambda: sim.held)`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

from aiohttp import web

from bot.events import CampaignRef
from bot.testing.sim_control import add_control_routes
from bot.testing.sim_core import (
    FAULT_KINDS,
    CallLog,
    CallRecord,
    Fault,
    FaultKind,
    SimCampaign,
    SlidingWindow,
    format_retry_after,
)
from bot.testing.sim_registry import (
    COMMON_TO_NATIVE,
    DEFAULT_KEYS,
    DEFAULT_LIMITS,
    NATIVE_STATUSES,
    PREFIXES,
    SIM_VENDORS,
)
from bot.testing.sim_spec import SimRequest

__all__ = ["VendorSimulator", "run_simulator"]

_CAMPAIGN_IN_PATH = re.compile(r"/campaigns/(?:v2/)?([^/]+)")
_DEFAULT_DELAY = {"timeout": 30.0, "slow": 1.0}
#: What a person can do in each vendor's UI: action → (from statuses, to status), in native terms.
_UI_ACTIONS = {
    vendor: {"pause": ((sim.running,), sim.paused), "resume": ((sim.paused,), sim.running)}
    for vendor, sim in SIM_VENDORS.items()
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class VendorSimulator(CallLog):
    """State, faults and call log of the simulated vendors; `app` serves them."""

    def __init__(
        self,
        *,
        keys: Mapping[str, str | Iterable[str]] | None = None,
        limits: Mapping[str, tuple[int, float] | None] | None = None,
        strict_same_state: bool = True,
        smartlead_get_shape: Literal["data", "flat"] = "data",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.keys: dict[str, set[str]] = {vendor: {key} for vendor, key in DEFAULT_KEYS.items()}
        for vendor, given in (keys or {}).items():
            self.keys[vendor] = {given} if isinstance(given, str) else set(given)
        self.limits: dict[str, tuple[int, float] | None] = {**DEFAULT_LIMITS, **(limits or {})}
        self.strict_same_state = strict_same_state
        self.smartlead_get_shape = smartlead_get_shape
        self.clock = clock
        self.wall = wall
        self._last_stamp: datetime | None = None
        self.campaigns: dict[str, SimCampaign] = {}
        self._windows: dict[tuple[str, str], SlidingWindow] = {}
        self._faults: list[Fault] = []
        self._fault_ids = itertools.count(1)
        super().__init__()
        self._release = asyncio.Event()
        self._held: dict[int, CallRecord] = {}
        self._held_ids = itertools.count(1)
        self._closing = False
        self._app: web.Application | None = None

    # ------------------------------------------------------------ the server

    @property
    def app(self) -> web.Application:
        """The aiohttp application (built once)."""
        if self._app is None:
            app = web.Application()
            for vendor, prefix in PREFIXES.items():
                app.router.add_route("*", prefix + "/{tail:.*}", partial(self._handle, vendor))
            add_control_routes(app, self)
            app.on_shutdown.append(self._on_shutdown)
            self._app = app
        return self._app

    def base_urls(self, root: str) -> dict[str, str]:
        """Base URL of each vendor given the server root, e.g. `http://127.0.0.1:8090`."""
        return {vendor: root.rstrip("/") + prefix for vendor, prefix in PREFIXES.items()}

    async def _on_shutdown(self, _: web.Application) -> None:
        self._closing = True
        self.release_hangs()

    def release_hangs(self) -> None:
        """End every hanging `timeout`/`slow`/`hold` fault now."""
        event, self._release = self._release, asyncio.Event()
        event.set()

    @property
    def held(self) -> list[CallRecord]:
        """Requests being held in flight right now by a `hold`/`slow`/`timeout` fault (`status` None)."""
        return list(self._held.values())

    # ------------------------------------------------------------ campaigns

    def add_campaign(self, ref: str, status: str | None = None, *, leads: int = 1, sequence_steps: int = 1,
                     name: str = "Simulated campaign", accounts: Iterable[str] = ()) -> SimCampaign:
        """Add (or replace) a campaign; `status` native (`DRAFTED`, `running`) or common (`active`);
        `accounts`: sender emails (served by Smartlead's `GET /campaigns/{id}/email-accounts`).
        A campaign added paused (running) was paused (started) at its `created_at`, long ago."""
        parsed = CampaignRef.parse(ref)
        native = self._native(parsed.vendor, status) if status is not None else COMMON_TO_NATIVE[parsed.vendor]["active"]
        campaign = SimCampaign(parsed.vendor, parsed.id, native, name=name, leads=leads, sequence_steps=sequence_steps,
                               accounts=list(accounts))
        sim = SIM_VENDORS[parsed.vendor]
        if native == sim.paused:
            campaign.paused_at = campaign.created_at
        elif native == sim.running:
            campaign.started_at = campaign.created_at
        elif native == sim.completed:
            campaign.completed_at = campaign.created_at
        self.campaigns[str(parsed)] = campaign
        self._notify()
        return campaign

    def campaign(self, ref: str) -> SimCampaign:
        try:
            return self.campaigns[ref]
        except KeyError:
            raise KeyError(f"simulator has no campaign {ref!r}") from None

    def status_of(self, ref: str) -> str:
        """The campaign's status in its vendor's vocabulary (`PAUSED`, `running`, `active`)."""
        return self.campaign(ref).status

    def set_status(self, ref: str, status: str, *, raw: bool = False) -> None:
        """Change a campaign's status as if someone used the vendor's UI. `raw` allows any string.
        A change moves `updated_at` and the stamp of the new status (`paused_at`, `started_at`, ...)."""
        campaign = self.campaign(ref)
        new = status if raw else self._native(campaign.vendor, status)
        if new != campaign.status:
            self._stamp(campaign, new)
        campaign.status = new
        self._notify()

    def ui(self, ref: str, action: str) -> SimCampaign:
        """A person pauses (`"pause"`) or resumes (`"resume"`) the campaign in the vendor's UI, not through
        the API: nothing is logged or rate limited. Only an active campaign can be paused and a paused one
        resumed (ValueError otherwise); the change stamps move as for any status change."""
        campaign = self.campaign(ref)
        allowed = _UI_ACTIONS[campaign.vendor].get(action)
        if allowed is None:
            raise ValueError(f"unknown UI action {action!r}; use pause or resume")
        sources, target = allowed
        if campaign.status not in sources:
            raise ValueError(f"cannot {action} a {campaign.status} campaign in the {campaign.vendor} UI")
        self.set_status(ref, target)
        return campaign

    def _stamp(self, campaign: SimCampaign, new: str) -> None:
        """Move the change stamps of a campaign about to become `new`."""
        moment = self.wall().astimezone(UTC)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)     # the stamps' resolution
        if self._last_stamp is not None and moment <= self._last_stamp:
            moment = self._last_stamp + timedelta(milliseconds=1)    # every change gets a new stamp
        self._last_stamp = moment
        precise = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        sim = SIM_VENDORS[campaign.vendor]
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ") if sim.whole_second_stamps else precise
        campaign.updated_at = precise
        if new == sim.paused:
            campaign.paused_at = stamp
        elif new == sim.running:
            campaign.started_at = stamp
        elif new == sim.completed:
            campaign.completed_at = stamp

    @staticmethod
    def _native(vendor: str, status: str) -> str:
        if status in NATIVE_STATUSES[vendor]:
            return status
        native = COMMON_TO_NATIVE[vendor].get(status.lower())
        if native is None:
            raise ValueError(f"{vendor} has no status {status!r}; use one of {NATIVE_STATUSES[vendor]}")
        return native

    # ------------------------------------------------------------ faults and limits

    def inject(
        self,
        vendor: str,
        kind: FaultKind = "error",
        *,
        status: int = 503,
        times: int | None = None,
        seconds: float | None = None,
        forever: bool = False,
        method: str | None = None,
        path: str | None = None,
        delay: float | None = None,
        retry_after: float = 1.0,
        after_apply: bool = False,
        set_status: str | None = None,
    ) -> Fault:
        """Misbehave on matching requests: `times` of them (default 1, or unlimited within `seconds`,
        or unlimited with `forever`); `path` is a glob on the vendor path ("/campaigns/*/status")."""
        if vendor not in PREFIXES or kind not in FAULT_KINDS:
            raise ValueError(f"unknown vendor {vendor!r} or fault kind {kind!r}")
        if kind == "race" and set_status is None:
            raise ValueError("a race fault needs set_status")
        if times is None and seconds is None and not forever:
            times = 1
        fault = Fault(
            id=next(self._fault_ids), vendor=vendor, kind=kind, status=status, times=times,
            until=None if seconds is None else self.clock() + seconds, method=method, path=path,
            delay=_DEFAULT_DELAY.get(kind, 0.0) if delay is None else delay, retry_after=retry_after,
            after_apply=after_apply, set_status=set_status,
        )
        self._faults.append(fault)
        return fault

    @property
    def faults(self) -> list[Fault]:
        now = self.clock()
        return [fault for fault in self._faults if fault.active(now)]

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_limit(self, name: str, limit: tuple[int, float] | None) -> None:
        """Change a limit (`smartlead`, `leadterra`, `inbox_read`, `inbox_write`); None disables it."""
        if name not in DEFAULT_LIMITS:
            raise ValueError(f"unknown limit {name!r}; expected one of {sorted(DEFAULT_LIMITS)}")
        self.limits[name] = limit
        self._windows = {k: w for k, w in self._windows.items() if k[0] != name}

    def check_limit(self, bucket: str, credential: str, now: float) -> float | None:
        limit = self.limits.get(bucket)
        if limit is None:
            return None
        return self._windows.setdefault((bucket, credential), SlidingWindow(*limit)).admit(now)

    def limit_headers(self, bucket: str, credential: str, now: float) -> dict[str, str]:
        window = self._windows.get((bucket, credential))
        if window is None:
            return {}
        return {"X-RateLimit-Limit": str(window.limit), "X-RateLimit-Remaining": str(window.remaining(now)),
                "X-RateLimit-Reset": str(int(time.time() + window.period))}

    # ------------------------------------------------------------ waiting

    async def wait_for_status(self, ref: str, status: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the campaign reaches `status` (native or common)."""
        native = self._native(CampaignRef.parse(ref).vendor, status)
        await self.wait_until(lambda: self.status_of(ref) == native, timeout=timeout, what=f"{ref} {native}")

    def reset(self) -> None:
        """Forget campaigns, faults, calls and rate windows (keys and limits stay)."""
        self.campaigns.clear()
        self._faults.clear()
        self._windows.clear()
        self.clear_calls()
        self._notify()

    # ------------------------------------------------------------ request handling

    async def _handle(self, vendor: str, request: web.Request) -> web.StreamResponse:
        now = self.clock()
        path = "/" + request.match_info["tail"]
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", errors="replace")
        logged = {k: v for k, v in body.items() if k != "api_key"} if isinstance(body, dict) else body
        status: int | None = None
        decided: list[int] = []
        try:
            response = await self._respond(vendor, SimRequest(request.method, path, request.query,
                                                              request.headers, body, now), decided)
            status = response.status
            return response
        finally:
            self._record(CallRecord(vendor, request.method, path, logged, status, now,
                                    decided[0] if decided else None))

    async def _respond(self, vendor: str, req: SimRequest, decided: list[int]) -> web.Response:
        fault = next((f for f in self._faults if f.matches(vendor, req.method, req.path, req.now)), None)
        if fault is not None:
            fault.hits += 1
            if not fault.after_apply and (early := await self._misbehave(fault, vendor, req)) is not None:
                return early
        response = SIM_VENDORS[vendor].handle(self, req)
        decided.append(response.status)
        if fault is not None and fault.after_apply and (late := await self._misbehave(fault, vendor, req)):
            return late
        return response

    async def _misbehave(self, fault: Fault, vendor: str, req: SimRequest) -> web.Response | None:
        if fault.kind in ("slow", "timeout", "hold"):
            await self._hang(fault.delay if fault.kind != "hold" or fault.delay > 0 else None,
                             CallRecord(vendor, req.method, req.path, None, None, req.now))
            return SIM_VENDORS[vendor].error(504, "GATEWAY_TIMEOUT") if fault.kind == "timeout" else None
        if fault.kind == "race":
            match = _CAMPAIGN_IN_PATH.match(req.path)
            if match and f"{vendor}:{match[1]}" in self.campaigns and fault.set_status:
                self.set_status(f"{vendor}:{match[1]}", fault.set_status)
            return None
        if fault.kind == "rate_limit":
            return SIM_VENDORS[vendor].rate_limited(format_retry_after(fault.retry_after, whole=False))
        if fault.kind == "empty":
            return web.Response(status=200)
        return SIM_VENDORS[vendor].error(fault.status)

    async def _hang(self, seconds: float | None, call: CallRecord) -> None:
        """Wait `seconds` (None: until released) or until `release_hangs()`; `call` is listed in `held`."""
        if self._closing or (seconds is not None and seconds <= 0):
            return
        key = next(self._held_ids)
        self._held[key] = call
        release = self._release
        self._notify()
        try:
            async with asyncio.timeout(seconds):
                await release.wait()
        except TimeoutError:
            pass
        finally:
            del self._held[key]
            self._notify()


async def run_simulator(host: str = "127.0.0.1", port: int = 8090, *, sim: VendorSimulator | None = None,
                        echo: Callable[[str], None] | None = None) -> None:
    """Serve the simulator until cancelled, printing the three base URLs (port 0: any free port)."""
    sim = sim or VendorSimulator()
    echo = echo or partial(print, flush=True)
    runner = web.AppRunner(sim.app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        root = f"http://{shown}:{bound_port}"
        for vendor, url in sim.base_urls(root).items():
            echo(f"{vendor}: {url}")
        echo(f"control: {root}/_sim")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
