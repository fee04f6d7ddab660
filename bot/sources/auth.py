"""Webhook authentication helpers: pure checks of HMAC signatures, body secrets and bearer tokens.

Each vendor's package authenticates its own webhooks with these (`bot.vendors.<name>.webhooks`);
`bot.web.auth` dispatches by source. All comparisons use `hmac.compare_digest`. Reasons never contain a
secret, token or signature, and every refusal names the setting that configures the missing or wrong
secret (`(BOT_WEBHOOK_TOKEN)`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "TOKEN_HINT",
    "TOKEN_SETTING",
    "AuthResult",
    "WebhookRequest",
    "body_secret",
    "check_token",
    "equal",
    "hmac_hex",
    "offered_tokens",
    "signature_ok",
    "token_only",
]

TOKEN_HINT: Final = "Authorization: Bearer <token> or ?token=<token>"
TOKEN_SETTING: Final = "BOT_WEBHOOK_TOKEN"


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


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """What an authenticator sees: headers (case-insensitive, as aiohttp's are), query, raw body, and the
    shared BOT_WEBHOOK_TOKEN (None when unset)."""

    source: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    token: str | None


def hmac_hex(body: bytes, secret: str) -> str:
    """Lower-case hex HMAC-SHA256 of `body` keyed with `secret`: what the vendors send."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def equal(given: str, expected: str) -> bool:
    """Constant-time comparison; bytes, because compare_digest refuses non-ASCII str (a forged header may
    hold anything)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def signature_ok(header: str, body: bytes, secret: str) -> bool:
    """`header` is the hex HMAC of `body` (an optional `sha256=` prefix is tolerated)."""
    given = header.strip()
    if given[:7].lower() == "sha256=":
        given = given[7:]
    return equal(given.strip().lower(), hmac_hex(body, secret))


def offered_tokens(request: WebhookRequest) -> list[str]:
    """Tokens the request offers: `Authorization: Bearer <t>`, then `?token=<t>`."""
    tokens = []
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        tokens.append(credentials.strip())
    if request.query.get("token"):
        tokens.append(request.query["token"])
    return tokens


def check_token(tokens: list[str], token: str) -> AuthResult:
    if any(equal(offered, token) for offered in tokens):
        return AuthResult.passed("token")
    return AuthResult.refused(f"invalid token (does not match {TOKEN_SETTING})")


def token_only(request: WebhookRequest) -> AuthResult:
    """BOT_WEBHOOK_TOKEN as bearer or `?token=`; refused when it is not configured."""
    if request.token is None:
        return AuthResult.refused(f"no secret configured for {request.source[:40]} (set {TOKEN_SETTING})")
    tokens = offered_tokens(request)
    if not tokens:
        return AuthResult.refused(f"missing token: {TOKEN_HINT} ({TOKEN_SETTING})")
    return check_token(tokens, request.token)


def body_secret(body: bytes, field: str = "secret_key") -> str | None:
    """A string body field (the legacy Smartlead `secret_key`), if the body is a JSON object holding one."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = payload.get(field) if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value else None
