"""structlog set-up: JSON lines, contextvars bound per message, secrets redacted centrally."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, MutableMapping
from typing import Any, Final, TextIO

import structlog

__all__ = ["configure_logging", "redact_secrets", "register_secret", "scrub"]

_SECRET_KEYS: Final = frozenset(
    {"api_key", "token", "authorization", "signature", "secret", "password", "secret_key", "webhook_token"}
)
# Query-string credentials (Smartlead's api_key, lemlist's access_token, our ?token=), bearer tokens, an
# `Authorization: Basic ...` header (lemlist), and every configured secret (lemlist's base64 `:key` too, which
# its client registers), in one alternation: one regex pass per string value (logs run on the hot path).
_PATTERNS: Final = (r"(?i:\b(?P<param>api_key|access_token|token)=[^&\s'\"]+)", r"(?i:\bbearer\s+[A-Za-z0-9._~+/=-]+)",
                    r"(?i:\b(?P<basic>authorization['\"]?\s*[:=]\s*['\"]?basic)\s+[A-Za-z0-9+/=]+)")
_known_secrets: set[str] = set()
_scrubber = re.compile("|".join(_PATTERNS))


def register_secret(*values: str | None) -> None:
    """Remember configured secret values so they are masked wherever they turn up in a log line."""
    global _scrubber
    added = {v for v in values if v and len(v) >= 4} - _known_secrets
    if added:
        _known_secrets.update(added)
        # longest first, so a secret that contains another is masked whole
        literals = [re.escape(v) for v in sorted(_known_secrets, key=len, reverse=True)]
        _scrubber = re.compile("|".join([*_PATTERNS, *literals]))


def _mask(match: re.Match[str]) -> str:
    if match.group("param"):
        return f"{match.group('param')}=***"
    if match.group("basic"):
        return f"{match.group('basic')} ***"
    return "Bearer ***" if match.group(0)[:6].lower() == "bearer" else "***"


def scrub(text: str) -> str:
    """Remove credentials from free text (error strings, URLs, reprs)."""
    return _scrubber.sub(_mask, text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: "***" if str(k).lower() in _SECRET_KEYS else _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a credential reach the log sink, whatever a caller passed."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
        else:
            event[key] = _scrub_value(event[key])
    return event


def configure_logging(
    *, json: bool = True, level: str = "info", cache: bool = True, stream: TextIO | None = None
) -> None:
    """Configure structlog once, in the CLI. `cache=False` in tests so capture_logs works. `stream`: stdout."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    processors: Iterable[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
    ]
    structlog.configure(
        processors=list(processors),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=cache,
    )
    # Library loggers (aiohttp access log, aio-pika reconnect chatter) stay quiet and never print URLs.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    for name in ("aiohttp.access", "aiohttp.client", "aio_pika", "aiormq"):
        logging.getLogger(name).setLevel(logging.WARNING)
