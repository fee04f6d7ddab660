"""Webhook authentication by source: each vendor's package checks its own (`VendorSpec.authenticate`),
`events` takes BOT_WEBHOOK_TOKEN (bearer or `?token=`). Fail closed: a source whose secret is not
configured is refused, and a source no setting authenticates is refused too. The checks themselves
are pure (`bot.sources.auth`); reasons never contain a secret, token or signature.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.accounts import Account
from bot.config import Settings
from bot.sources.auth import AuthResult, WebhookRequest, hmac_hex, token_only
from bot.vendors import registry
from bot.vendors.spec import VendorConfig

__all__ = ["AuthResult", "authenticate", "hmac_hex"]


def authenticate(
    source: str, *, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, settings: Settings,
    account: Account | None = None, config: VendorConfig | None = None,
) -> AuthResult:
    """Check one request for `source` (`headers` must be case-insensitive, as aiohttp's are); a vendor's
    with `account`'s settings block when given (`/webhooks/<vendor>/<account>`), else the vendor's own:
    `config` when the caller has it at hand (the web app builds each once), else `settings.vendor`."""
    token = settings.webhook_token.get_secret_value() if settings.webhook_token is not None else ""
    request = WebhookRequest(source, headers, query, body, token or None)
    spec = registry.get(source)
    if spec is not None and account is not None:
        return spec.authenticate(request, account.config)
    if spec is not None:
        if config is None:
            try:
                config = settings.vendor(source)
            except KeyError:
                return AuthResult.refused(f"no secret configured for {source[:40]} (no settings block)")
        return spec.authenticate(request, config)
    if source == "events":
        return token_only(request)
    return AuthResult.refused(f"no secret configured for {source[:40]} (no setting authenticates it)")
