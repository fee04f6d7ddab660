"""Per-campaign stats of a simulated vendor whose stats endpoint serves numbers a test sets (Leadterra,
lemlist), and the control route that sets them from another process.

Contract:

* `StatsBook(vendor, fields)`: `fields` maps each name `set` takes to the answer field it sets (the same
  name when the vendor's answer uses it). Numbers are non-negative integers, 0 until set; `set` changes
  only the ones it is given. They live beside the simulator (weakly keyed: a dropped simulator drops
  them) and belong to the campaign object they were set on: a campaign replaced by `add_campaign` starts
  again from 0.
* `add_stats_route(app, sim, book)` registers `PUT /_sim/<vendor>/stats/{ref}` with a JSON object of
  `set`'s names: 404 for a campaign that does not exist or is not the vendor's, 400 for a body that is
  not a JSON object or holds an unknown name or a bad number, else `{"campaign": ref, "set": body}`.
  Errors answer `{"error": "..."}`, as the rest of `/_sim/` (`bot.testing.sim_http`).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from bot.testing.sim_http import bad, json_object

if TYPE_CHECKING:
    from bot.testing.sim_core import SimCampaign
    from bot.testing.simulator import VendorSimulator

__all__ = ["StatsBook", "add_stats_route"]


class StatsBook:
    """One simulated vendor's campaign numbers, per simulator and campaign (see the module docstring)."""

    def __init__(self, vendor: str, fields: Mapping[str, str]) -> None:
        self.vendor = vendor
        #: `set` name → the answer field it sets
        self.fields = dict(fields)
        #: simulator → ref → (the campaign the numbers belong to, answer field → value)
        self._books: weakref.WeakKeyDictionary[
            VendorSimulator, dict[str, tuple[SimCampaign, dict[str, int]]]] = weakref.WeakKeyDictionary()

    def set(self, sim: VendorSimulator, ref: str, /, **numbers: int) -> None:
        """Set some of campaign `ref`'s numbers (`fields` names; the others keep their value, 0 at first)."""
        campaign = sim.campaign(ref)
        unknown = set(numbers) - set(self.fields)
        if unknown:
            raise ValueError(f"unknown stats {sorted(unknown)}; use {sorted(self.fields)}")
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in numbers.values()):
            raise ValueError("stats must be non-negative integers")
        book = self._books.setdefault(sim, {})
        book[ref] = (campaign, self.numbers(sim, campaign) | {self.fields[n]: v for n, v in numbers.items()})

    def numbers(self, sim: VendorSimulator, campaign: SimCampaign) -> dict[str, int]:
        """`campaign`'s numbers by answer field (a copy), 0 for any not set on this very campaign object."""
        entry = self._books.get(sim, {}).get(campaign.ref)
        return dict(entry[1]) if entry is not None and entry[0] is campaign else dict.fromkeys(
            self.fields.values(), 0)


def add_stats_route(app: web.Application, sim: VendorSimulator, book: StatsBook) -> None:
    """Register `PUT /_sim/<book.vendor>/stats/{ref}` of `sim` on `app` (before it is served)."""

    async def put_stats(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref not in sim.campaigns or not ref.startswith(f"{book.vendor}:"):
            return bad("no such campaign", 404)
        body = await json_object(request)
        if body is None:
            return bad("body must be a JSON object")
        try:
            book.set(sim, ref, **body)
        except (TypeError, ValueError) as exc:
            return bad(f"invalid stats: {exc}; use {sorted(book.fields)}")
        return web.json_response({"campaign": ref, "set": body})

    app.router.add_put(f"/_sim/{book.vendor}/stats/{{ref}}", put_stats)
