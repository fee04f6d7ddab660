"""Each vendor's own control routes are served by the simulator's app, and `reset()` forgets each vendor's
own data (Smartlead mailboxes, Instantly accounts) with the campaigns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.testing.simulator import VendorSimulator
from bot.vendors.instantly.sim_analytics import accounts_of, add_account
from bot.vendors.smartlead.sim_data import add_mailbox, added_mailboxes


async def test_every_vendor_control_route_is_served(sim: VendorSimulator,
                                                    aiohttp_client: Callable[..., Any]) -> None:
    client = await aiohttp_client(sim.app)
    for path in ("/_sim/smartlead/mailboxes", "/_sim/instantly/accounts"):
        assert (await client.get(path)).status == 200, path
    routes = {getattr(r.resource, "canonical", "") for r in sim.app.router.routes()}
    assert {"/_sim/leadterra/stats/{ref}", "/_sim/lemlist/stats/{ref}"} <= routes


def test_reset_forgets_mailboxes_and_accounts(sim: VendorSimulator) -> None:
    sim.add_campaign("smartlead:1", "ACTIVE")
    add_mailbox(sim, "a@x.example", campaigns=["smartlead:1"], smtp_ok=False)
    add_account(sim, "b@x.example")
    assert added_mailboxes(sim) and accounts_of(sim)
    sim.reset()
    assert not added_mailboxes(sim) and not accounts_of(sim) and not sim.campaigns
