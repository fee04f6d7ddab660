"""Webhook authentication: pure checks of HMAC signatures, body secrets and bearer tokens.

Rules per source (fail closed: a source whose secret is not configured is refused):
- smartlead, in this order, the first credential the request offers *and* we can check decides:
  `X-Smartlead-Signature: sha256=<hex HMAC-SHA256(raw body, BOT_SMARTLEAD_WEBHOOK_SECRET)>`
  (format C); BOT_WEBHOOK_TOKEN as `Authorization: Bearer <t>` or `?token=<t>`; for legacy payloads
  with neither, a body field `secret_key` equal to BOT_SMARTLEAD_WEBHOOK_SECRET. A bad signature is
  final (never retried as a token).
- leadterra: `X-Leadterra-Signature: <hex HMAC-SHA256(raw body, BOT_LEADTERRA_WEBHOOK_SECRET)>`
  (an optional `sha256=` prefix is tolerated). Required.
- inbox, events: BOT_WEBHOOK_TOKEN as bearer or `?token=`.
All comparisons use `hmac.compare_digest`. Reasons never contain a secret, token or signature, and every
refusal names the setting that configures the missing or wrong secret (`(BOT_WEBHOOK_TOKEN)`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import SecretStr

from bot.config import Settings

__all__ = [
    "LEADTERRA_HEADER",
    "SMARTLEAD_HEADER",
    "AuthResult",
    "authenticate",
    "hmac_hex",
]

SMARTLEAD_HEADER: Final = "X-Smartlead-Signature"
LEADTERRA_HEADER: Final = "X-Leadterra-Signature"
_TOKEN_HINT: Final = "Authorization: Bearer <token> or ?token=<token>"
_TOKEN: Final = "BOT_WEBHOOK_TOKEN"
_SMARTLEAD_SECRET: Final = "BOT_SMARTLEAD_WEBHOOK_SECRET"
_LEADTERRA_SECRET: Final = "BOT_LEADTERRA_WEBHOOK_SECRET"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The verdict: `ok`, the `method` that passed, or the `reason` for a 401 (safe to return)."""

    ok: bool
    reason: str = ""
    method: str = ""

    @classmethod
    def passed(cls, method: str) -> AuthResult:
        return cls(True, method=method)

    @classmethod
    def refused(cls, reason: str) -> AuthResult:
        return cls(False, reason=reason)


def hmac_hex(body: bytes, secret: str) -> str:
    """Lower-case hex HMAC-SHA256 of `body` keyed with `secret`: what the vendors send."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _equal(given: str, expected: str) -> bool:
    # bytes, because compare_digest refuses non-ASCII str (a forged header may hold anything)
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def _configured(value: SecretStr | None) -> str | None:
    secret = value.get_secret_value() if value is not None else ""
    return secret or None


def _signature_ok(header: str, body: bytes, secret: str) -> bool:
    given = header.strip()
    if given[:7].lower() == "sha256=":
        given = given[7:]
    return _equal(given.strip().lower(), hmac_hex(body, secret))


def _offered_tokens(headers: Mapping[str, str], query: Mapping[str, str]) -> list[str]:
    tokens = []
    scheme, _, credentials = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        tokens.append(credentials.strip())
    if query.get("token"):
        tokens.append(query["token"])
    return tokens


def _check_token(tokens: list[str], token: str) -> AuthResult:
    if any(_equal(offered, token) for offered in tokens):
        return AuthResult.passed("token")
    return AuthResult.refused(f"invalid token (does not match {_TOKEN})")


def _body_secret(body: bytes) -> str | None:
    """The legacy `secret_key` body field, if the body is a JSON object holding a string there."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = payload.get("secret_key") if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value else None


def _smartlead(headers: Mapping[str, str], query: Mapping[str, str], body: bytes, settings: Settings) -> AuthResult:
    secret = _configured(settings.smartlead_webhook_secret)
    token = _configured(settings.webhook_token)
    signature = headers.get(SMARTLEAD_HEADER)
    tokens = _offered_tokens(headers, query)
    if signature is not None and secret is not None:
        ok = _signature_ok(signature, body, secret)
        return AuthResult.passed("signature") if ok else AuthResult.refused(
            f"invalid {SMARTLEAD_HEADER} (not signed with {_SMARTLEAD_SECRET})")
    if tokens and token is not None:
        return _check_token(tokens, token)
    if signature is None and secret is not None and (offered := _body_secret(body)) is not None:
        return AuthResult.passed("secret_key") if _equal(offered, secret) else AuthResult.refused(
            f"invalid secret_key (does not match {_SMARTLEAD_SECRET})")
    if secret is None and token is None:
        return AuthResult.refused(f"no secret configured for smartlead (set {_SMARTLEAD_SECRET} or {_TOKEN})")
    # the request offers a credential we hold no secret for: fail closed, naming the missing setting
    if signature is not None:
        return AuthResult.refused(f"no secret configured for smartlead (signature given, {_SMARTLEAD_SECRET} unset)")
    if tokens:
        return AuthResult.refused(f"no secret configured for smartlead (token given, {_TOKEN} unset)")
    if secret is None and _body_secret(body) is not None:
        return AuthResult.refused(f"no secret configured for smartlead (secret_key given, {_SMARTLEAD_SECRET} unset)")
    return AuthResult.refused(f"missing credentials: {SMARTLEAD_HEADER}, secret_key or {_TOKEN_HINT} "
                              f"({_SMARTLEAD_SECRET} / {_TOKEN})")


def _leadterra(headers: Mapping[str, str], body: bytes, settings: Settings) -> AuthResult:
    secret = _configured(settings.leadterra_webhook_secret)
    if secret is None:
        return AuthResult.refused(f"no secret configured for leadterra (set {_LEADTERRA_SECRET})")
    signature = headers.get(LEADTERRA_HEADER)
    if not signature:
        return AuthResult.refused(f"missing {LEADTERRA_HEADER} (signed with {_LEADTERRA_SECRET})")
    if _signature_ok(signature, body, secret):
        return AuthResult.passed("signature")
    return AuthResult.refused(f"invalid {LEADTERRA_HEADER} (not signed with {_LEADTERRA_SECRET})")


def _token_only(source: str, headers: Mapping[str, str], query: Mapping[str, str], settings: Settings) -> AuthResult:
    token = _configured(settings.webhook_token)
    if token is None:
        return AuthResult.refused(f"no secret configured for {source} (set {_TOKEN})")
    tokens = _offered_tokens(headers, query)
    if not tokens:
        return AuthResult.refused(f"missing token: {_TOKEN_HINT} ({_TOKEN})")
    return _check_token(tokens, token)


def authenticate(
    source: str, *, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, settings: Settings
) -> AuthResult:
    """Check one request for `source` (`headers` must be case-insensitive, as aiohttp's are)."""
    if source == "smartlead":
        return _smartlead(headers, query, body, settings)
    if source == "leadterra":
        return _leadterra(headers, body, settings)
    if source in ("inbox", "events"):
        return _token_only(source, headers, query, settings)
    return AuthResult.refused(f"no secret configured for {source[:40]} (no setting authenticates it)")
