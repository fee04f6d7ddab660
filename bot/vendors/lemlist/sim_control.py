"""Control route for the simulated lemlist's campaign stats (`bot.vendors.lemlist.sim.set_stats`), for another
process:

    PUT  /_sim/lemlist/stats/{ref}   {"sent"?, "bounced"?, "delivered"?, "opened"?, "replied"?, ...: `STATS_FIELDS`}
         sets those numbers of an existing campaign (`lemlist:cam_abc`); the others keep theirs

The route is `bot.testing.sim_stats.add_stats_route` (its contract: 404 for a campaign that is not the
vendor's, 400 for a bad body; errors `{"error": "..."}`, as the rest of `/_sim/`). `add_control_routes(app,
sim)` registers it on `sim.app` before it is served (`bot.testing`'s control API does not call it itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.testing.sim_stats import add_stats_route
from bot.vendors.lemlist.sim import STATS

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["add_control_routes"]


def add_control_routes(app: web.Application, sim: VendorSimulator) -> None:
    """Register the `/_sim/lemlist/` route of `sim` on `app` (before it is served)."""
    add_stats_route(app, sim, STATS)
