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

Several credentials per vendor (an agency: one key per client). `keys={"smartlead": ["key-a", "key-b"]}`
are all accepted; `labels={"key-a": "acme"}` names them in the log (`CallRecord.credential` is "acme", or
`key#` + 8 hex digits of the key's SHA-256 for a key without a label: never the key itself).
`sim.add_campaign("smartlead:1", key="key-a")` makes key-a its owner: like the real vendors (a Smartlead
client key, an Instantly workspace key), every other key gets the vendor's 404 "not found" for it, exactly
as for a campaign that does not exist, and list endpoints (Smartlead `GET /campaigns`) leave it out.
Without `key` every accepted key sees the campaign. Handlers look campaigns up through `visible(ref, key)`
and `visible_campaigns(vendor, key)` only.
Instantly keys belong to workspaces: `workspaces={"key-a": "ws-1"}` (default: the one `WORKSPACE` of
`bot.vendors.instantly.sim`); its rate windows count per workspace across keys, and a campaign owned by a
key is seen by every key of the same workspace. The other vendors count and scope per key.

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
    fingerprint,
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
from bot.testing.sim_spec import SimRequest, SimVendor
from bot.vendors.spec import resolve

__all__ = ["VendorSimulator", "run_simulator"]

_CAMPAIGN_IN_PATH = re.compile(r"/campaigns/(?:v2/)?([^/]+)")
_DEFAULT_DELAY = {"timeout": 30.0, "slow": 1.0}
#: Which vendor each rate-limit bucket belongs to (its windows count per key, or per workspace).
_BUCKET_VENDOR: dict[str, SimVendor] = {bucket: sim for sim in SIM_VENDORS.values() for bucket in sim.limits}
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
        labels: Mapping[str, str] | None = None,
        workspaces: Mapping[str, str] | None = None,
    ) -> None:
        self.keys: dict[str, set[str]] = {vendor: {key} for vendor, key in DEFAULT_KEYS.items()}
        for vendor, given in (keys or {}).items():
            self.keys[vendor] = {given} if isinstance(given, str) else set(given)
        #: key → the name the call log gives it (a key without one is logged as its fingerprint)
        self.labels: dict[str, str] = dict(labels or {})
        #: key → its workspace, for vendors with workspaces (Instantly); others: the vendor's default one
        self.workspaces: dict[str, str] = dict(workspaces or {})
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
            for sim in SIM_VENDORS.values():       # each vendor's own (analytics, mailboxes, accounts)
                if sim.controls is not None:
                    resolve(sim.controls)(app, self)
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
                     name: str = "Simulated campaign", accounts: Iterable[str] = (),
                     key: str | None = None) -> SimCampaign:
        """Add (or replace) a campaign; `status` native (`DRAFTED`, `running`) or common (`active`);
        `accounts`: sender emails (served by Smartlead's `GET /campaigns/{id}/email-accounts`).
        A campaign added paused (running) was paused (started) at its `created_at`, long ago.
        `key`: the key that owns it (see `visible`), accepted by the vendor from now on if it was not;
        None: every key of the vendor sees it."""
        parsed = CampaignRef.parse(ref)
        native = self._native(parsed.vendor, status) if status is not None else COMMON_TO_NATIVE[parsed.vendor]["active"]
        if key is not None and not key:
            raise ValueError("key must be a non-empty string or None")
        campaign = SimCampaign(parsed.vendor, parsed.id, native, name=name, leads=leads, sequence_steps=sequence_steps,
                               accounts=list(accounts), owner=key)
        if key is not None:
            self.keys[parsed.vendor].add(key)
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

    # ------------------------------------------------------------ credentials

    def label(self, key: str) -> str:
        """What the call log and the control API show for `key`: its label, else its fingerprint."""
        return self.labels.get(key) or fingerprint(key)

    def scope(self, vendor: str, key: str) -> str:
        """What `key` shares its campaigns and rate windows with: its workspace for a vendor with
        workspaces (Instantly), else the key itself."""
        default = SIM_VENDORS[vendor].workspace
        return key if default is None else self.workspaces.get(key, default)

    def _sees(self, campaign: SimCampaign, key: str) -> bool:
        return campaign.owner is None or self.scope(campaign.vendor, campaign.owner) == self.scope(campaign.vendor, key)

    def visible(self, ref: str, key: str) -> SimCampaign | None:
        """The campaign as `key` sees it through the vendor's API: None when it does not exist or another key
        (Instantly: another workspace) owns it; the vendor then answers its 404 "not found" either way."""
        campaign = self.campaigns.get(ref)
        return campaign if campaign is not None and self._sees(campaign, key) else None

    def visible_campaigns(self, vendor: str, key: str) -> list[SimCampaign]:
        """Every campaign of `vendor` that `key` sees (what a list endpoint answers), in insertion order."""
        return [c for c in self.campaigns.values() if c.vendor == vendor and self._sees(c, key)]

    # ------------------------------------------------------------ campaign state

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

    def _window_key(self, bucket: str, credential: str) -> tuple[str, str]:
        vendor = _BUCKET_VENDOR.get(bucket)
        return bucket, credential if vendor is None else self.scope(vendor.name, credential)

    def check_limit(self, bucket: str, credential: str, now: float) -> float | None:
        """Admit a request of key `credential` in `bucket` (None) or the seconds to wait; the windows count
        per key, or per workspace for a vendor with workspaces (Instantly)."""
        limit = self.limits.get(bucket)
        if limit is None:
            return None
        return self._windows.setdefault(self._window_key(bucket, credential), SlidingWindow(*limit)).admit(now)

    def limit_headers(self, bucket: str, credential: str, now: float) -> dict[str, str]:
        window = self._windows.get(self._window_key(bucket, credential))
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
        """Forget campaigns, faults, calls and rate windows (keys, labels, workspaces and limits stay)."""
        self.campaigns.clear()
        self._faults.clear()
        self._windows.clear()
        for sim in SIM_VENDORS.values():
            if sim.forget is not None:
                resolve(sim.forget)(self)
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
        req = SimRequest(vendor, request.method, path, request.query, request.headers, body, now)
        try:
            response = await self._respond(vendor, req, decided)
            status = response.status
            return response
        finally:
            credential = None if req.credential is None else self.label(req.credential)
            self._record(CallRecord(vendor, request.method, path, logged, status, now,
                                    decided[0] if decided else None, credential))

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
            credential = None if req.credential is None else self.label(req.credential)
            await self._hang(fault.delay if fault.kind != "hold" or fault.delay > 0 else None,
                             CallRecord(vendor, req.method, req.path, None, None, req.now, credential=credential))
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
