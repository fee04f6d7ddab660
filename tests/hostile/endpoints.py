"""Every HTTP endpoint of the app, read from its router, and valid credentials for each.

`discover(app)` lists (method, concrete path) for every route: a `{name:regex}` path part is expanded
into every string its (finite) regex matches, so `/webhooks/{source:(?:events|inbox|...)}` becomes one
endpoint per source and a new route or source is covered without touching the tests. A regex that
matches infinitely many strings fails loudly (give the route an example in `EXAMPLES`).

`credentials(path, body, timestamp)` signs a request the way its sender would; a path with no known
scheme gets every credential at once (bearer, `?token=`, each HMAC header, Slack's signature).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from re import _parser as sre_parse  # type: ignore[attr-defined]  # the stdlib regex parser (3.11+)
from typing import Any, Final

from aiohttp import web

from bot.config import Settings

__all__ = [
    "EXAMPLES",
    "GRAFANA_SECRET",
    "LEADTERRA_SECRET",
    "NOW",
    "SLACK_SECRET",
    "SMARTLEAD_SECRET",
    "TOKEN",
    "Credentials",
    "Endpoint",
    "credentials",
    "discover",
    "expand",
    "hostile_settings",
    "slack_signature",
]

TOKEN: Final = "hostile-webhook-token-9c1e"
SMARTLEAD_SECRET: Final = "hostile-smartlead-secret-71aa"
LEADTERRA_SECRET: Final = "hostile-leadterra-secret-3b20"
SLACK_SECRET: Final = "hostile-slack-signing-secret-55d0"
GRAFANA_SECRET: Final = "hostile-grafana-secret-0e9f"
#: The app's frozen clock in these tests (Slack's 5-minute window is measured against it).
NOW: Final = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MAX_BODY: Final = 65536

#: Concrete values for path parts whose regex cannot be enumerated: `{formatter: [paths]}`.
EXAMPLES: Final[dict[str, list[str]]] = {
    # an account's webhooks (bot.web.webhooks): `default` is the vendor block's account, always there
    "/webhooks/{source}/{account}": ["/webhooks/smartlead/default", "/webhooks/leadterra/default",
                                     "/webhooks/inbox/default"],
}


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    path: str
    method: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def id(self) -> str:
        return f"{self.method}:{self.path}"


def hostile_settings(**overrides: Any) -> Settings:
    """Every intake configured with a known secret (unknown names are ignored by Settings)."""
    values: dict[str, Any] = {
        "webhook_token": TOKEN,
        "smartlead_webhook_secret": SMARTLEAD_SECRET,
        "leadterra_webhook_secret": LEADTERRA_SECRET,
        "slack_signing_secret": SLACK_SECRET,
        "grafana_webhook_secret": GRAFANA_SECRET,
        "max_body_bytes": MAX_BODY,
    }
    values.update(overrides)
    return Settings(**values)


# discovery ---------------------------------------------------------------------------------------


def _strings(tokens: Any) -> Iterator[str]:
    """Every string a parsed regex (sre tokens) matches; ValueError when that set is not finite/simple."""
    parts: list[list[str]] = []
    for op, arg in tokens:
        name = str(op)
        if name == "LITERAL":
            parts.append([chr(arg)])
        elif name == "SUBPATTERN":
            parts.append(list(_strings(arg[-1])))
        elif name == "BRANCH":
            parts.append([s for branch in arg[1] for s in _strings(branch)])
        elif name in ("AT",):                       # ^ and $ anchors match no text
            continue
        else:
            raise ValueError(f"cannot enumerate regex operator {name}")
    combos = [""]
    for options in parts:
        combos = [head + tail for head in combos for tail in options]
    yield from combos


def expand(pattern: re.Pattern[str]) -> list[str]:
    """The finite set of paths a DynamicResource's pattern matches, sorted."""
    return sorted(set(_strings(sre_parse.parse(pattern.pattern))))


def discover(app: web.Application) -> list[Endpoint]:
    """(method, path) of every route; HEAD (added by aiohttp for each GET) is left out."""
    found: set[Endpoint] = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        info = route.resource.get_info()
        if "path" in info:
            paths = [info["path"]]
        elif info.get("formatter") in EXAMPLES:
            paths = EXAMPLES[info["formatter"]]
        else:
            try:
                paths = expand(info["pattern"])
            except ValueError as exc:
                raise AssertionError(f"route {info.get('formatter')}: {exc}; add its paths to "
                                     "tests/hostile/endpoints.py EXAMPLES") from None
        found.update(Endpoint(path, route.method) for path in paths)
    return sorted(found)


# credentials -------------------------------------------------------------------------------------

#: (headers, query) that authenticate `body` sent at `timestamp` (unix seconds).
Credentials = tuple[dict[str, str], dict[str, str]]


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def slack_signature(body: bytes, timestamp: int, secret: str = SLACK_SECRET) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": "v0=" + _hex(secret, f"v0:{timestamp}:".encode() + body)}


def _bearer(body: bytes, timestamp: int) -> Credentials:
    return {"Authorization": f"Bearer {TOKEN}"}, {}


def _smartlead(body: bytes, timestamp: int) -> Credentials:
    return {"X-Smartlead-Signature": "sha256=" + _hex(SMARTLEAD_SECRET, body)}, {}


def _leadterra(body: bytes, timestamp: int) -> Credentials:
    return {"X-Leadterra-Signature": _hex(LEADTERRA_SECRET, body)}, {}


def _slack(body: bytes, timestamp: int) -> Credentials:
    return slack_signature(body, timestamp), {}


def _grafana(body: bytes, timestamp: int) -> Credentials:
    return {"X-Grafana-Alerting-Signature": _hex(GRAFANA_SECRET, body)}, {}


def _everything(body: bytes, timestamp: int) -> Credentials:
    headers = {"Authorization": f"Bearer {TOKEN}", **_smartlead(body, timestamp)[0],
               **_leadterra(body, timestamp)[0], **slack_signature(body, timestamp),
               "X-Grafana-Alerting-Signature": _hex(GRAFANA_SECRET, body)}
    return headers, {"token": TOKEN}


SCHEMES: Final[Mapping[str, Callable[[bytes, int], Credentials]]] = {
    "/webhooks/smartlead": _smartlead,
    "/webhooks/leadterra": _leadterra,
    "/webhooks/inbox": _bearer,
    "/webhooks/smartlead/default": _smartlead,
    "/webhooks/leadterra/default": _leadterra,
    "/webhooks/inbox/default": _bearer,
    "/webhooks/events": _bearer,
    "/webhooks/alertmanager": _bearer,
    "/webhooks/grafana": _grafana,
    "/slack/commands": _slack,
    "/slack/interactions": _slack,
}


def credentials(path: str, body: bytes, timestamp: int | None = None) -> Credentials:
    """Valid credentials for `body` at `path` (all of them when the path's scheme is unknown)."""
    ts = int(NOW.timestamp()) if timestamp is None else timestamp
    return SCHEMES.get(path, _everything)(body, ts)
