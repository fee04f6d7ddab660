"""Control routes for the simulated Instantly's analytics and accounts (`sim_analytics`), for another process:

    PUT  /_sim/instantly/daily/{ref}   {"2026-11-02": {"sent": 40, "replies": 1, "bounced": 2}, ...}
                                       replaces the daily numbers of an existing campaign (`instantly:<uuid>`)
    POST /_sim/instantly/accounts      {"email", "status"?, "warmup_status"?, "warmup_score"?, "key"?}
    GET  /_sim/instantly/accounts      every added account (its owner as the key's label, never the key)

Errors answer 400/404 with `{"error": "..."}`, as the rest of `/_sim/` (`bot.testing.sim_http`).
`add_control_routes(app, sim)` registers them on `sim.app` before it is served (`bot.testing`'s control API does not call it itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.testing.sim_http import bad, json_object
from bot.vendors.instantly.sim_analytics import accounts_of, add_account, set_daily

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["add_control_routes"]

_ACCOUNT_FIELDS = frozenset({"email", "status", "warmup_status", "warmup_score", "key"})


def add_control_routes(app: web.Application, sim: VendorSimulator) -> None:
    """Register the `/_sim/instantly/` routes of `sim` on `app` (before it is served)."""

    async def put_daily(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref not in sim.campaigns or not ref.startswith("instantly:"):
            return bad("no such campaign", 404)
        body = await json_object(request)
        if body is None or not all(isinstance(v, dict) for v in body.values()):
            return bad('body must be a JSON object: {"YYYY-MM-DD": {"sent": 1, ...}}')
        days: dict[str | date, Mapping[str, int]] = {day: counts for day, counts in body.items()}
        try:
            set_daily(sim, ref, days)
        except (TypeError, ValueError) as exc:
            return bad(f"invalid daily numbers: {exc}")
        return web.json_response({"campaign": ref, "days": body})

    async def post_account(request: web.Request) -> web.Response:
        body = await json_object(request)
        if body is None or not isinstance(body.get("email"), str) or "@" not in body["email"]:
            return bad('body must be a JSON object with "email"')
        unknown = set(body) - _ACCOUNT_FIELDS
        if unknown:
            return bad(f"unknown fields: {sorted(unknown)}")
        codes = {k: body[k] for k in ("status", "warmup_status") if k in body}
        if any(not isinstance(v, int) or isinstance(v, bool) for v in codes.values()):
            return bad("status and warmup_status must be integers")
        score = body.get("warmup_score", 100)
        if score is not None and (not isinstance(score, int | float) or isinstance(score, bool)):
            return bad("warmup_score must be a number or null")
        key = body.get("key")
        if key is not None and (not isinstance(key, str) or not key):
            return bad("key must be a non-empty string")
        account = add_account(sim, body["email"], warmup_score=score, key=key, **codes)
        return web.json_response(_json(sim, account.email), status=201)

    async def list_accounts(_: web.Request) -> web.Response:
        return web.json_response([_json(sim, a.email) for a in accounts_of(sim)])

    app.router.add_put("/_sim/instantly/daily/{ref}", put_daily)
    app.router.add_post("/_sim/instantly/accounts", post_account)
    app.router.add_get("/_sim/instantly/accounts", list_accounts)


def _json(sim: VendorSimulator, email: str) -> dict[str, Any]:
    found = next(a for a in accounts_of(sim) if a.email == email)
    return {"email": found.email, "status": found.status, "warmup_status": found.warmup_status,
            "warmup_score": found.warmup_score, "owner": None if found.owner is None else sim.label(found.owner)}
