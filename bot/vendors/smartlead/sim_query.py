"""What the simulated Smartlead's handlers share: its error answer and the validation of query values.

A value that Smartlead would refuse is a `BadQuery`, which the handler turns into a 400 in Smartlead's
error shape (`{"success": false, "error": {"code", "message"}}`, docs/vendors.md §1.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from aiohttp import web

__all__ = ["BadQuery", "error", "error_body", "query_date", "query_int"]


class BadQuery(ValueError):
    """A query value Smartlead refuses (400 VALIDATION_ERROR); the message names the parameter."""


def error_body(status: int, code: str | None, message: str) -> dict[str, Any]:
    """Smartlead's error body."""
    return {"success": False, "error": {"code": code or f"HTTP_{status}", "message": message}}


def error(status: int, code: str | None = None, message: str = "") -> web.Response:
    """An error answer in Smartlead's shape."""
    return web.json_response(error_body(status, code, message or "Error"), status=status)


def query_int(query: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    """The integer `name` (`default` when absent) within [`low`, `high`]; else `BadQuery`."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise BadQuery(f"{name} must be between {low} and {high}" if high is not None else f"{name} must be >= {low}")
    return value


def query_date(query: Mapping[str, str], name: str) -> date:
    """The required date `name`, written YYYY-MM-DD; else `BadQuery`."""
    raw = query.get(name)
    if raw is None:
        raise BadQuery(f"{name} is required (YYYY-MM-DD)")
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise BadQuery(f"{name} must be a date written YYYY-MM-DD") from None
