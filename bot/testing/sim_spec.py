"""What a vendor's package gives the simulator (`VendorSpec.simulator` names one `SimVendor`), and the
request helpers its handlers share. The simulator itself is `bot.testing.simulator`.

A handler takes the key from the request in its vendor's way, then, in this order:
`key = authenticate(sim, req, candidate)` (None: answer 401; else the request now carries the key, and
the call log names it by its label), `limit(sim, SIM, bucket, key, req.now)` (per key, or per workspace
for a vendor with `SimVendor.workspace`), and `sim.visible(ref, key)` / `sim.visible_campaigns(vendor, key)`
for every campaign it reads, writes or lists (a campaign another key owns is not found).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.testing.sim_core import format_retry_after

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["ErrorBody", "SimRequest", "SimVendor", "authenticate", "bearer", "limit", "phrase"]

#: (status, code, message) → the vendor's own error body
ErrorBody = Callable[[int, str | None, str], dict[str, Any]]


@dataclass(slots=True)
class SimRequest:
    vendor: str
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any                  # decoded JSON, the raw text when not JSON, None when empty
    now: float
    #: the key the vendor accepted, set by `authenticate` only (the call log keeps its label, never the key)
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class SimVendor:
    """One vendor as the simulator serves it, in its own vocabulary."""

    name: str
    prefix: str                                   # where it is served: the real base URL's path
    key: str                                      # the credential accepted unless told otherwise (fake)
    limits: Mapping[str, tuple[int, float] | None]  # bucket → (requests, seconds) per credential; None: off
    statuses: tuple[str, ...]                     # its native statuses
    common: Mapping[str, str]                     # common status → native
    paused: str                                   # the native status each change stamp follows
    running: str
    completed: str | None
    handle: Callable[[VendorSimulator, SimRequest], web.Response]
    error_body: ErrorBody
    rate_limited: Callable[[str], web.Response]   # Retry-After value → its 429 answer
    whole_second_stamps: bool = False             # its paused/started stamps have no fractions
    #: a vendor whose keys belong to workspaces (Instantly): the workspace of every key not named in
    #: `VendorSimulator(workspaces=...)`; its limits count per workspace, and a campaign is seen by every
    #: key of its owner's workspace. None: limits and campaigns are per key.
    workspace: str | None = None
    #: the vendor's own control routes under `/_sim/<vendor>/`: "module:attribute" naming an
    #: `add_control_routes(app, sim)`, imported and called when the simulator's app is built
    controls: str | None = None
    #: "module:attribute" naming a `forget(sim)` that drops the vendor's own simulated data (numbers,
    #: mailboxes, accounts): called by `VendorSimulator.reset()`
    forget: str | None = None

    def error(self, status: int, code: str | None = None, message: str = "",
              headers: Mapping[str, str] | None = None) -> web.Response:
        """An error in the vendor's own body shape."""
        return web.json_response(self.error_body(status, code, message or phrase(status)), status=status,
                                 headers=headers)


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def bearer(req: SimRequest) -> str | None:
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(sim: VendorSimulator, req: SimRequest, key: str | None) -> str | None:
    """`key` when the request's vendor accepts it, recorded on the request (`req.credential`); else None."""
    if key is None or key not in sim.keys[req.vendor]:
        return None
    req.credential = key
    return key


def limit(sim: VendorSimulator, vendor: SimVendor, bucket: str, credential: str, now: float) -> web.Response | None:
    """The vendor's 429 when `credential` (its workspace, for a vendor with workspaces) is over the `bucket`
    limit, else None (admitted)."""
    wait = sim.check_limit(bucket, credential, now)
    return None if wait is None else vendor.rate_limited(format_retry_after(wait))
