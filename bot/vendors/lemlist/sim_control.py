"""Control route for the simulated lemlist's campaign stats (`bot.vendors.lemlist.sim.set_stats`), for another
process:

    PUT  /_sim/lemlist/stats/{ref}   {"sent"?, "bounced"?, "delivered"?, "opened"?, "replied"?, ...: `STATS_FIELDS`}
         sets those numbers of an existing campaign (`lemlist:cam_abc`); the others keep theirs

Errors answer 400/404 with `{"error": "..."}`, as the rest of `/_sim/`. `add_control_routes(app, sim)`
registers it on `sim.app` before it is served (`bot.testing`'s control API does not call it itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.vendors.lemlist.sim import STATS_FIELDS, set_stats

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["add_control_routes"]


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def add_control_routes(app: web.Application, sim: VendorSimulator) -> None:
    """Register the `/_sim/lemlist/` route of `sim` on `app` (before it is served)."""

    async def put_stats(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref not in sim.campaigns or not ref.startswith("lemlist:"):
            return _bad("no such campaign", 404)
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _bad("body must be a JSON object")
        try:
            set_stats(sim, ref, **body)
        except (TypeError, ValueError) as exc:
            return _bad(f"invalid stats: {exc}; use {sorted(STATS_FIELDS)}")
        return web.json_response({"campaign": ref, "set": body})

    app.router.add_put("/_sim/lemlist/stats/{ref}", put_stats)
