"""The JSON answers of the simulator's `/_sim/` control routes, shared by `bot.testing.sim_control` and the
vendors' own control routes (`bot.vendors.<name>.sim_control`).

Contract: an error is `{"error": "<message>"}` with its status (400 unless told); a request body is read as a
JSON object or not at all (`json_object` answers None for a body that is not JSON or not an object, and the
route says which error that is). This module imports only aiohttp, so a vendor's simulator can use it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["bad", "json_object"]


def bad(message: str, status: int = 400) -> web.Response:
    """The control API's error answer: `{"error": message}` with `status`."""
    return web.json_response({"error": message}, status=status)


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The request's body when it is a JSON object; None when it is not JSON or not an object."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
