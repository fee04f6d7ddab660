"""Operational endpoints: `/healthz` (process up), `/readyz` (broker ready), `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
from typing import Final

import structlog
from aiohttp import web

from bot.errors import BrokerUnavailable
from bot.metrics import render
from bot.web.keys import BROKER

__all__ = ["METRICS_CONTENT_TYPE", "routes"]

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_READY_TIMEOUT: Final = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 while the process runs: liveness only, no dependency is checked."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 when the broker can take publishes, else 503 with the reason."""
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            ready = await request.app[BROKER].ready()
        reason = "broker not ready"
    except TimeoutError:
        ready, reason = False, f"broker did not answer within {_READY_TIMEOUT:g}s"
    except BrokerUnavailable:
        ready, reason = False, "broker unavailable"
    if ready:
        return web.json_response({"status": "ready"})
    log.warning("readiness.failed", reason=reason)
    return web.json_response({"error": reason}, status=503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this process's metrics."""
    return web.Response(body=render(), headers={"Content-Type": METRICS_CONTENT_TYPE})
