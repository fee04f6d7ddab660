"""Vendor simulator control API: JSON endpoints under `/_sim/` to drive it from another process.

    GET    /_sim                      prefixes, limits, options, counts
    GET    /_sim/campaigns            every campaign
    POST   /_sim/campaigns            {"campaign": "smartlead:1", "status"?, "leads"?, "sequence_steps"?, "name"?,
                                       "accounts"?: ["sender@example.com", ...], "key"?: "client-key"}
                                      `key`: the key that owns it (accepted from then on); any other key
                                      gets the vendor's 404 for it (Instantly: any key of another workspace)
    GET    /_sim/campaigns/{ref}      one campaign (`smartlead:1`)
    PUT    /_sim/campaigns/{ref}      {"status"?: "PAUSED" (native or common; "raw": true allows anything),
                                       "accounts"?: [...]}: at least one of the two
    DELETE /_sim/campaigns/{ref}
    POST   /_sim/campaigns/{ref}/ui   {"action": "pause" | "resume"}: a person acting in the vendor's UI
                                      (not an API call: not logged, not rate limited); 409 if the campaign
                                      is not active (pause) or paused (resume)
    GET    /_sim/faults               active faults
    POST   /_sim/faults               {"vendor", "kind"?, "status"?, "times"?, "seconds"?, "forever"?, "method"?,
                                       "path"?, "delay"?, "retry_after"?, "after_apply"?, "set_status"?}
                                      kinds: error, timeout, rate_limit, slow, race, hold (keep matching
                                      requests unanswered until /_sim/release), empty (200, no body)
    DELETE /_sim/faults               clear every fault
    GET    /_sim/held                 requests held in flight right now (hold/slow/timeout faults)
    POST   /_sim/release              answer every held request now
    GET    /_sim/calls?vendor=&method=&since=N   the call log (entries from index N on)
    DELETE /_sim/calls                clear the call log
    PUT    /_sim/limits               {"smartlead": [10, 2], "leadterra": null, ...}
    POST   /_sim/reset                forget campaigns, faults, calls and rate windows

Errors answer 400/404 with `{"error": "..."}`. There is no auth: the simulator is a local test tool.
A campaign's `owner` is shown as its key's label (`VendorSimulator(labels=...)`) or fingerprint
(`key#` + 8 hex digits of SHA-256), never as the key; the call log's `credential` likewise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.testing.sim_http import bad
from bot.testing.sim_registry import PREFIXES

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["add_control_routes"]

_FAULT_FIELDS = ("kind", "status", "times", "seconds", "forever", "method", "path", "delay", "retry_after",
                 "after_apply", "set_status")


def _owner(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError("key must be a non-empty string")
    return value


def _accounts(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "@" in v for v in value):
        raise ValueError("accounts must be a list of sender emails")
    return list(value)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return body


def add_control_routes(app: web.Application, sim: VendorSimulator) -> None:
    """Register the `/_sim/` endpoints of `sim` on `app`."""

    async def info(_: web.Request) -> web.Response:
        return web.json_response({
            "vendors": PREFIXES, "limits": sim.limits, "strict_same_state": sim.strict_same_state,
            "smartlead_get_shape": sim.smartlead_get_shape, "campaigns": len(sim.campaigns),
            "calls": len(sim.calls), "faults": len(sim.faults), "held": len(sim.held),
        })

    async def list_campaigns(_: web.Request) -> web.Response:
        return web.json_response([c.to_dict(sim.label) for c in sim.campaigns.values()])

    async def create_campaign(request: web.Request) -> web.Response:
        body = await _json_object(request)
        try:
            campaign = sim.add_campaign(
                str(body["campaign"]), body.get("status"), leads=int(body.get("leads", 1)),
                sequence_steps=int(body.get("sequence_steps", 1)), name=str(body.get("name", "Simulated campaign")),
                accounts=_accounts(body.get("accounts", [])), key=_owner(body.get("key")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return bad(f"invalid campaign: {exc}")
        return web.json_response(campaign.to_dict(sim.label), status=201)

    async def get_campaign(request: web.Request) -> web.Response:
        campaign = sim.campaigns.get(request.match_info["ref"])
        return web.json_response(campaign.to_dict(sim.label)) if campaign else bad("no such campaign", 404)

    async def update_campaign(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref not in sim.campaigns:
            return bad("no such campaign", 404)
        body = await _json_object(request)
        if "status" not in body and "accounts" not in body:
            return bad("invalid update: give status and/or accounts")
        try:
            accounts = _accounts(body["accounts"]) if "accounts" in body else None
            if "status" in body:
                sim.set_status(ref, str(body["status"]), raw=bool(body.get("raw", False)))
        except ValueError as exc:
            return bad(f"invalid update: {exc}")
        if accounts is not None:
            sim.campaigns[ref].accounts = accounts
        return web.json_response(sim.campaigns[ref].to_dict(sim.label))

    async def delete_campaign(request: web.Request) -> web.Response:
        if sim.campaigns.pop(request.match_info["ref"], None) is None:
            return bad("no such campaign", 404)
        return web.Response(status=204)

    async def ui_action(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref not in sim.campaigns:
            return bad("no such campaign", 404)
        body = await _json_object(request)
        action = body.get("action")
        if action not in ("pause", "resume"):
            return bad('invalid UI action: give {"action": "pause" | "resume"}')
        try:
            campaign = sim.ui(ref, action)
        except ValueError as exc:
            return bad(str(exc), 409)
        return web.json_response(campaign.to_dict(sim.label))

    async def list_held(_: web.Request) -> web.Response:
        return web.json_response([c.to_dict() for c in sim.held])

    async def release(_: web.Request) -> web.Response:
        sim.release_hangs()
        return web.Response(status=204)

    async def list_faults(_: web.Request) -> web.Response:
        return web.json_response([f.to_dict() for f in sim.faults])

    async def add_fault(request: web.Request) -> web.Response:
        body = await _json_object(request)
        unknown = set(body) - {"vendor", *_FAULT_FIELDS}
        if unknown:
            return bad(f"unknown fault fields: {sorted(unknown)}")
        try:
            fault = sim.inject(str(body.get("vendor")), **{k: body[k] for k in _FAULT_FIELDS if k in body})
        except (TypeError, ValueError) as exc:
            return bad(f"invalid fault: {exc}")
        return web.json_response(fault.to_dict(), status=201)

    async def clear_faults(_: web.Request) -> web.Response:
        sim.clear_faults()
        return web.Response(status=204)

    async def list_calls(request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return bad("since must be an integer")
        vendor, method = request.query.get("vendor"), request.query.get("method")
        calls = [c.to_dict() for c in sim.calls[since:]
                 if (vendor is None or c.vendor == vendor) and (method is None or c.method == method.upper())]
        return web.json_response(calls)

    async def clear_calls(_: web.Request) -> web.Response:
        sim.clear_calls()
        return web.Response(status=204)

    async def set_limits(request: web.Request) -> web.Response:
        body = await _json_object(request)
        try:
            for name, value in body.items():
                sim.set_limit(name, None if value is None else (int(value[0]), float(value[1])))
        except (TypeError, ValueError, IndexError) as exc:
            return bad(f"invalid limits: {exc}")
        return web.json_response(sim.limits)

    async def reset(_: web.Request) -> web.Response:
        sim.reset()
        return web.Response(status=204)

    app.router.add_get("/_sim", info)
    app.router.add_get("/_sim/campaigns", list_campaigns)
    app.router.add_post("/_sim/campaigns", create_campaign)
    app.router.add_get("/_sim/campaigns/{ref}", get_campaign)
    app.router.add_put("/_sim/campaigns/{ref}", update_campaign)
    app.router.add_delete("/_sim/campaigns/{ref}", delete_campaign)
    app.router.add_post("/_sim/campaigns/{ref}/ui", ui_action)
    app.router.add_get("/_sim/held", list_held)
    app.router.add_post("/_sim/release", release)
    app.router.add_get("/_sim/faults", list_faults)
    app.router.add_post("/_sim/faults", add_fault)
    app.router.add_delete("/_sim/faults", clear_faults)
    app.router.add_get("/_sim/calls", list_calls)
    app.router.add_delete("/_sim/calls", clear_calls)
    app.router.add_put("/_sim/limits", set_limits)
    app.router.add_post("/_sim/reset", reset)
