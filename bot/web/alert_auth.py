"""Authentication of monitoring alert webhooks: bearer token, or Grafana's HMAC signature. Pure checks.

Rules (fail closed: nothing configured → 401):
- alertmanager: `Authorization: Bearer <token>` (or `?token=`) equal to BOT_ALERTMANAGER_TOKEN, or to
  BOT_WEBHOOK_TOKEN when no dedicated token is set (a dedicated token replaces the shared one here,
  so a leaked vendor-webhook token cannot raise alerts). Alertmanager does not sign bodies.
- grafana with BOT_GRAFANA_WEBHOOK_SECRET set: `X-Grafana-Alerting-Signature` (or
  `X-Grafana-Alert-Signature`, Grafana's default when the contact point names no header) is required:
  the hex HMAC-SHA256 of the raw body, or of `<timestamp>:<body>` when the request carries the timestamp
  header (BOT_GRAFANA_TIMESTAMP_HEADER, default `X-Grafana-Alerting-Signature-Timestamp`; Unix
  seconds, refused when further than BOT_GRAFANA_SIGNATURE_MAX_AGE from our clock). A token is then
  not enough. Without the secret: the bearer token, as for alertmanager.
Comparisons use `hmac.compare_digest`; reasons never hold a secret, token or signature, and each names the
setting that configures what was missing or wrong.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from pydantic import SecretStr

from bot.config import Settings
from bot.web.auth import AuthResult, hmac_hex

__all__ = ["GRAFANA_SIGNATURE_HEADER", "alert_token", "authenticate_alert", "grafana_signature"]

GRAFANA_SIGNATURE_HEADER: Final = "X-Grafana-Alerting-Signature"
#: What Grafana's signer falls back to when the contact point's Header field is left empty.
_GRAFANA_DEFAULT_HEADER: Final = "X-Grafana-Alert-Signature"


def _secret(value: SecretStr | None) -> str | None:
    text = value.get_secret_value() if value is not None else ""
    return text or None


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def alert_token(settings: Settings) -> str | None:
    """The token alert senders must present: the dedicated one, else the shared webhook token."""
    return _secret(settings.alertmanager_token) or _secret(settings.webhook_token)


def grafana_signature(body: bytes, headers: Mapping[str, str], *, secret: str, timestamp_header: str,
                      max_age: float, now: datetime) -> str | None:
    """None when Grafana signed `body` with `secret`; else the reason to refuse."""
    given = (headers.get(GRAFANA_SIGNATURE_HEADER) or headers.get(_GRAFANA_DEFAULT_HEADER, "")).strip()
    if not given:
        return f"missing {GRAFANA_SIGNATURE_HEADER} (required while BOT_GRAFANA_WEBHOOK_SECRET is set)"
    if given[:7].lower() == "sha256=":
        given = given[7:]
    timestamp = headers.get(timestamp_header, "").strip() if timestamp_header else ""
    signed = timestamp.encode("utf-8", "replace") + b":" + body if timestamp else body
    if not _equal(given.lower(), hmac_hex(signed, secret)):
        return f"invalid {GRAFANA_SIGNATURE_HEADER} (not signed with BOT_GRAFANA_WEBHOOK_SECRET)"
    if timestamp and max_age > 0:
        # ASCII and short: int() refuses "²" and 5000 digits (a 500) and reads Arabic-Indic digits
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 20):
            return f"invalid {timestamp_header}: expected Unix seconds (BOT_GRAFANA_TIMESTAMP_HEADER)"
        if abs(now.timestamp() - int(timestamp)) > max_age:
            return f"stale {timestamp_header}: more than {max_age:g} s from now (BOT_GRAFANA_SIGNATURE_MAX_AGE)"
    return None


def _token_setting(settings: Settings) -> str:
    """The setting whose token alert senders must present."""
    return "BOT_ALERTMANAGER_TOKEN" if _secret(settings.alertmanager_token) else "BOT_WEBHOOK_TOKEN"


def _token(source: str, headers: Mapping[str, str], query: Mapping[str, str], settings: Settings) -> AuthResult:
    token = alert_token(settings)
    if token is None:
        also = ", BOT_GRAFANA_WEBHOOK_SECRET" if source == "grafana" else ""
        return AuthResult.refused(f"no secret configured for {source} (BOT_ALERTMANAGER_TOKEN, "
                                  f"BOT_WEBHOOK_TOKEN{also})")
    offered = []
    scheme, _, credentials = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        offered.append(credentials.strip())
    if query.get("token"):
        offered.append(query["token"])
    if not offered:
        return AuthResult.refused(f"missing token: Authorization: Bearer <token> ({_token_setting(settings)})")
    if any(_equal(candidate, token) for candidate in offered):
        return AuthResult.passed("token")
    return AuthResult.refused(f"invalid token (does not match {_token_setting(settings)})")


def authenticate_alert(source: str, *, headers: Mapping[str, str], query: Mapping[str, str], body: bytes,
                       settings: Settings, now: datetime) -> AuthResult:
    """Check one request to `/webhooks/<source>` (alertmanager | grafana); `headers` case-insensitive."""
    secret = _secret(settings.grafana_webhook_secret) if source == "grafana" else None
    if secret is None:
        return _token(source, headers, query, settings)
    reason = grafana_signature(body, headers, secret=secret, timestamp_header=settings.grafana_timestamp_header,
                               max_age=settings.grafana_signature_max_age, now=now)
    return AuthResult.refused(reason) if reason else AuthResult.passed("signature")
