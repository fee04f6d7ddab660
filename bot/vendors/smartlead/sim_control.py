"""Control routes for the simulated Smartlead's analytics and mailboxes (`sim_data`), for another process:

    PUT  /_sim/smartlead/stats/{ref}   {"sequence"?: 1, "sent"?, "opened"?, "clicked"?, "replied"?,
                                        "unsubscribed"?, "bounced"?, "positive_replied"?, "unique_leads"?,
                                        "unique_opens"?, "first_sent_at"?: ISO 8601 with an offset}
                                       one sequence step's counts of an existing campaign (`smartlead:1`)
    POST /_sim/smartlead/mailboxes     {"email", "campaigns"?: ["smartlead:1"], "key"?, and any health field
                                        of `SimMailbox`: "smtp_ok", "imap_ok", "reputation", "warmup_status",
                                        "blocked_reason", "warmup_blocked", ...}
    GET  /_sim/smartlead/mailboxes     every added mailbox (its owner as the key's label, never the key)

Errors answer 400/404 with `{"error": "..."}`, as the rest of `/_sim/` (`bot.testing.sim_http`).
`add_control_routes(app, sim)` registers them; `bot.testing`'s control API does not call it itself (yet), so a test or tool that wants
them calls it on `sim.app` before serving it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.testing.sim_http import bad, json_object
from bot.vendors.smartlead.sim_data import add_mailbox, added_mailboxes, set_campaign_stats

if TYPE_CHECKING:
    from bot.testing.simulator import VendorSimulator

__all__ = ["add_control_routes"]

_STATS_FIELDS = frozenset({"sequence", "sent", "opened", "clicked", "replied", "unsubscribed", "bounced",
                           "positive_replied", "unique_leads", "unique_opens"})


def _stats_arguments(body: dict[str, Any]) -> dict[str, Any]:
    unknown = set(body) - _STATS_FIELDS - {"first_sent_at"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    arguments: dict[str, Any] = {}
    for name in _STATS_FIELDS & set(body):
        if not isinstance(body[name], int) or isinstance(body[name], bool):
            raise TypeError(f"{name} must be an integer")
        arguments[name] = body[name]
    if "first_sent_at" in body:
        arguments["first_sent_at"] = datetime.fromisoformat(str(body["first_sent_at"]))
    return arguments


def add_control_routes(app: web.Application, sim: VendorSimulator) -> None:
    """Register the `/_sim/smartlead/` routes of `sim` on `app` (before it is served)."""

    async def put_stats(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        if ref not in sim.campaigns:
            return bad("no such campaign", 404)
        body = await json_object(request)
        if body is None:
            return bad("body must be a JSON object")
        try:
            stats = set_campaign_stats(sim, ref, **_stats_arguments(body))
        except (TypeError, ValueError) as exc:
            return bad(f"invalid stats: {exc}")
        return web.json_response({"campaign": ref, "steps": {n: asdict(c) for n, c in stats.steps.items()},
                                  "first_sent_at": None if stats.first_sent_at is None
                                  else stats.first_sent_at.isoformat()})

    async def post_mailbox(request: web.Request) -> web.Response:
        body = await json_object(request)
        if body is None or not isinstance(body.get("email"), str):
            return bad('body must be a JSON object with "email"')
        campaigns, key = body.pop("campaigns", []), body.pop("key", None)
        if not isinstance(campaigns, list) or not all(isinstance(ref, str) for ref in campaigns):
            return bad("campaigns must be a list of refs")
        try:
            added = add_mailbox(sim, body.pop("email"), campaigns=campaigns, key=key, **body)
        except (KeyError, TypeError, ValueError) as exc:
            return bad(f"invalid mailbox: {exc}")
        return web.json_response(_mailbox_json(sim, added.email), status=201)

    async def list_mailboxes(_: web.Request) -> web.Response:
        return web.json_response([_mailbox_json(sim, m.email) for m in added_mailboxes(sim)])

    app.router.add_put("/_sim/smartlead/stats/{ref}", put_stats)
    app.router.add_post("/_sim/smartlead/mailboxes", post_mailbox)
    app.router.add_get("/_sim/smartlead/mailboxes", list_mailboxes)


def _mailbox_json(sim: VendorSimulator, email: str) -> dict[str, Any]:
    found = next(m for m in added_mailboxes(sim) if m.email.lower() == email.lower())
    data = asdict(found)
    data["owner"] = None if found.owner is None else sim.label(found.owner)
    return {"id": found.id, **data}
