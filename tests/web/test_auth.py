"""Webhook authentication rules (pure): HMAC, body secret, token; fail closed without a secret."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from multidict import CIMultiDict

from bot.web.auth import AuthResult, authenticate, hmac_hex
from tests.web.conftest import LEADTERRA_SECRET, SMARTLEAD_SECRET, TOKEN, hex_hmac, make_settings

BODY = b'{"id":"evt_1","type":"email.sent","data":{"campaign_id":1}}'
LEGACY = json.dumps({"event_type": "EMAIL_REPLY", "campaign_id": 1, "secret_key": SMARTLEAD_SECRET}).encode()


def check(source: str, *, headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
          body: bytes = BODY, **settings: Any) -> AuthResult:
    return authenticate(source, headers=CIMultiDict(headers or {}), query=query or {}, body=body,
                        settings=make_settings(**settings))


def test_hmac_hex_matches_an_independent_computation() -> None:
    assert hmac_hex(BODY, "k") == hex_hmac(BODY, "k")


@pytest.mark.parametrize(
    ("source", "kwargs", "method"),
    [
        ("smartlead", {"headers": {"X-Smartlead-Signature": "sha256=" + hex_hmac(BODY, SMARTLEAD_SECRET)}},
         "signature"),
        ("smartlead", {"headers": {"x-smartlead-signature": "SHA256=" + hex_hmac(BODY, SMARTLEAD_SECRET).upper()}},
         "signature"),
        ("smartlead", {"body": LEGACY}, "secret_key"),
        ("smartlead", {"query": {"token": TOKEN}}, "token"),
        ("smartlead", {"headers": {"Authorization": f"Bearer {TOKEN}"}}, "token"),
        ("smartlead", {"query": {"token": TOKEN}, "smartlead_webhook_secret": None}, "token"),
        ("smartlead", {"body": LEGACY, "webhook_token": None}, "secret_key"),
        ("leadterra", {"headers": {"X-Leadterra-Signature": hex_hmac(BODY, LEADTERRA_SECRET)}}, "signature"),
        ("leadterra", {"headers": {"X-Leadterra-Signature": "sha256=" + hex_hmac(BODY, LEADTERRA_SECRET)}},
         "signature"),
        ("inbox", {"headers": {"Authorization": f"bearer {TOKEN}"}}, "token"),
        ("inbox", {"query": {"token": TOKEN}}, "token"),
        ("events", {"headers": {"Authorization": f"Bearer {TOKEN}"}}, "token"),
    ],
)
def test_valid_credentials_pass(source: str, kwargs: dict[str, Any], method: str) -> None:
    assert check(source, **kwargs) == AuthResult.passed(method)


@pytest.mark.parametrize(
    ("source", "kwargs", "reason"),
    [
        # forged / wrong
        ("smartlead", {"headers": {"X-Smartlead-Signature": "sha256=" + hex_hmac(BODY, "wrong")}},
         "invalid X-Smartlead-Signature"),
        ("smartlead", {"headers": {"X-Smartlead-Signature": "sha256=" + hex_hmac(BODY + b" ", SMARTLEAD_SECRET)}},
         "invalid X-Smartlead-Signature"),
        ("smartlead", {"headers": {"X-Smartlead-Signature": "sha256=é☃"}}, "invalid X-Smartlead-Signature"),
        # a bad signature is final, even with a valid token alongside
        ("smartlead", {"headers": {"X-Smartlead-Signature": "sha256=00"}, "query": {"token": TOKEN}},
         "invalid X-Smartlead-Signature"),
        ("smartlead", {"body": LEGACY.replace(SMARTLEAD_SECRET.encode(), b"guess")}, "invalid secret_key"),
        ("smartlead", {"query": {"token": "nope"}}, "invalid token"),
        ("smartlead", {}, "missing credentials"),
        ("leadterra", {"headers": {"X-Leadterra-Signature": hex_hmac(BODY, SMARTLEAD_SECRET)}},
         "invalid X-Leadterra-Signature"),
        ("leadterra", {}, "missing X-Leadterra-Signature"),
        ("leadterra", {"query": {"token": TOKEN}}, "missing X-Leadterra-Signature"),  # HMAC required
        ("inbox", {"headers": {"Authorization": "Bearer nope"}}, "invalid token"),
        ("inbox", {"headers": {"Authorization": f"Basic {TOKEN}"}}, "missing token"),
        ("inbox", {}, "missing token"),
        ("events", {"query": {"token": TOKEN + "x"}}, "invalid token"),
        # fail closed when the needed secret is not configured
        ("smartlead", {"query": {"token": TOKEN}, "smartlead_webhook_secret": None, "webhook_token": None},
         "no secret configured for smartlead"),
        ("smartlead", {"headers": {"X-Smartlead-Signature": "sha256=" + hex_hmac(BODY, SMARTLEAD_SECRET)},
                       "smartlead_webhook_secret": None}, "no secret configured for smartlead"),
        ("smartlead", {"query": {"token": TOKEN}, "webhook_token": None}, "no secret configured for smartlead"),
        ("smartlead", {"body": LEGACY, "smartlead_webhook_secret": ""}, "no secret configured for smartlead"),
        ("leadterra", {"headers": {"X-Leadterra-Signature": hex_hmac(BODY, LEADTERRA_SECRET)},
                       "leadterra_webhook_secret": None}, "no secret configured for leadterra"),
        ("inbox", {"query": {"token": TOKEN}, "webhook_token": None}, "no secret configured for inbox"),
        ("events", {"query": {"token": ""}, "webhook_token": ""}, "no secret configured for events"),
        ("grafana", {"query": {"token": TOKEN}}, "no secret configured for grafana"),
    ],
)
def test_refusals_carry_a_reason(source: str, kwargs: dict[str, Any], reason: str) -> None:
    result = check(source, **kwargs)
    assert not result.ok
    assert result.reason.startswith(reason)
    assert TOKEN not in result.reason and SMARTLEAD_SECRET not in result.reason
    if source != "grafana":     # not a webhook source: bot.web.alert_auth authenticates it
        assert re.search(r"\(.*BOT_[A-Z_]+.*\)$", result.reason), "a 401 names the setting of the secret"


def test_body_secret_is_not_read_from_a_non_object_body() -> None:
    assert check("smartlead", body=b"[1]").reason.startswith("missing credentials")
    assert check("smartlead", body=b"{not json").reason.startswith("missing credentials")
