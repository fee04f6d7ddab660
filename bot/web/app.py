"""The aiohttp application: settings, broker and clock in typed AppKeys, routes, JSON errors.

Routes (one module each; add the next intake here):
- `POST /webhooks/{<each registered vendor>,events}`, `POST /webhooks/<vendor>/<account>`  (bot.web.webhooks)
- `POST /webhooks/{alertmanager,grafana}`              (bot.web.alerts)
- `GET /healthz`, `GET /readyz`, `GET /metrics`         (bot.web.health)
- `POST /slack/commands`, `POST /slack/interactions`   (bot.web.slack)
Not responsible for: running the server or the broker's lifecycle (the caller owns both).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from bot.accounts import load_accounts
from bot.broker.base import Broker
from bot.config import Settings
from bot.events import utcnow
from bot.log import register_secret
from bot.web import alerts, health, slack, webhooks
from bot.web.keys import ACCOUNTS, BROKER, CLOCK, PUBLISH_TIMEOUT, SETTINGS, VENDOR_CONFIGS, Clock

__all__ = ["DEFAULT_PUBLISH_TIMEOUT", "create_app", "json_errors"]

log = structlog.get_logger(__name__)

DEFAULT_PUBLISH_TIMEOUT = 5.0
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_BODY_HEADERS = frozenset({"content-type", "content-length"})


@web.middleware
async def json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """aiohttp's HTTP errors become `{"error": reason}`; anything unexpected a bare JSON 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
    except Exception:
        # the traceback goes to the log only; the sender learns nothing about internals
        log.exception("http.failed", method=request.method, path=request.path)
        return web.json_response({"error": "internal server error"}, status=500)


def create_app(
    settings: Settings,
    broker: Broker,
    *,
    clock: Clock = utcnow,
    publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
) -> web.Application:
    """Build the web intake. The broker must already be started; the app never closes it."""
    register_secret(*settings.secrets())
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[json_errors])
    app[SETTINGS] = settings
    app[VENDOR_CONFIGS] = {spec.name: settings.vendor(spec.name) for spec in settings.vendors()}
    app[ACCOUNTS] = load_accounts(settings)
    app[BROKER] = broker
    app[CLOCK] = clock
    app[PUBLISH_TIMEOUT] = publish_timeout
    webhooks.add_routes(app)
    app.add_routes(alerts.routes)
    app.add_routes(health.routes)
    app.add_routes(slack.routes)
    return app
