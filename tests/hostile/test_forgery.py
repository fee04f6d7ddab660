"""Replay and forgery against every authenticated intake: each forged request is a 401 JSON, publishes nothing.

Per signed source (Smartlead, Leadterra, Grafana: HMAC of the body; Slack and Grafana with a timestamp:
HMAC of `<ts>:<body>` within 5 minutes): a wrong secret, a valid signature over a different body, a
missing header, a truncated or re-encoded signature, and where a timestamp is signed a stale one, a
future one and a swapped one. Per token source: a wrong, missing or misplaced token. Each case has a
positive control: the same request correctly signed is accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.hostile.endpoints import (
    GRAFANA_SECRET,
    LEADTERRA_SECRET,
    NOW,
    SLACK_SECRET,
    SMARTLEAD_SECRET,
    TOKEN,
    slack_signature,
)
from tests.hostile.harness import Request, assert_contract, exchange

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"
TS = int(NOW.timestamp())
GRAFANA_TS_HEADER = "X-Grafana-Alerting-Signature-Timestamp"

Sign = Callable[[bytes], dict[str, str]]


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _smartlead(secret: str = SMARTLEAD_SECRET) -> Sign:
    return lambda body: {"X-Smartlead-Signature": "sha256=" + _hex(secret, body)}


def _leadterra(secret: str = LEADTERRA_SECRET) -> Sign:
    return lambda body: {"X-Leadterra-Signature": _hex(secret, body)}


def _grafana(secret: str = GRAFANA_SECRET, ts: int | None = None) -> Sign:
    if ts is None:
        return lambda body: {"X-Grafana-Alerting-Signature": _hex(secret, body)}
    return lambda body: {"X-Grafana-Alerting-Signature": _hex(secret, f"{ts}:".encode() + body),
                         GRAFANA_TS_HEADER: str(ts)}


def _slack(secret: str = SLACK_SECRET, ts: int = TS) -> Sign:
    return lambda body: slack_signature(body, ts, secret)


#: Unicode digits int() reads or refuses, 5000 digits (int() refuses), signs, spaces, fractions, 0.
ABSURD_TIMESTAMPS = ["\u00b2", "\u0661\u0667" + "\u0660" * 8, "9" * 5000, f"-{TS}", f" {TS} ", f"{TS}.5", "0",
                     "0" * 30 + str(TS)]


def _slack_at(ts: str) -> Sign:
    def sign(body: bytes) -> dict[str, str]:
        digest = _hex(SLACK_SECRET, f"v0:{ts}:".encode() + body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}
    return sign


def _grafana_at(ts: str) -> Sign:
    return lambda body: {"X-Grafana-Alerting-Signature": _hex(GRAFANA_SECRET, f"{ts}:".encode() + body),
                         GRAFANA_TS_HEADER: ts}


def _command(text: str) -> bytes:
    return urlencode({"command": "/guard", "text": text, "user_id": "U1", "trigger_id": "1.2.forgery",
                      "response_url": "https://hooks.slack.com/commands/T1/1/x"}).encode()


SMARTLEAD = (PAYLOADS / "smartlead_a_email_bounce.json").read_bytes()
LEADTERRA = (PAYLOADS / "leadterra_message_bounced.json").read_bytes()
GRAFANA = (PAYLOADS / "grafana_firing.json").read_bytes()
SLACK = _command("pause smartlead:1843021 forged?")
OTHER = {  # the same kind of payload, for another campaign: what a forger would want accepted
    "smartlead": SMARTLEAD.replace(b"1843021", b"1843022"),
    "leadterra": LEADTERRA.replace(b"camp_8Hq2Lx", b"camp_other"),
    "grafana": GRAFANA.replace(b"firing", b"resolved"),
    "slack": _command("resume smartlead:1843021"),
}

#: source → (path, body, correct signer, signer factory taking a secret)
SIGNED: dict[str, tuple[str, bytes, Sign, Callable[[str], Sign]]] = {
    "smartlead": ("/webhooks/smartlead", SMARTLEAD, _smartlead(), _smartlead),
    "leadterra": ("/webhooks/leadterra", LEADTERRA, _leadterra(), _leadterra),
    "grafana": ("/webhooks/grafana", GRAFANA, _grafana(), _grafana),
    "grafana+ts": ("/webhooks/grafana", GRAFANA, _grafana(ts=TS), lambda s: _grafana(s, TS)),
    "slack": ("/slack/commands", SLACK, _slack(), _slack),
}


async def _send(path: str, body: bytes, headers: dict[str, str], params: dict[str, str] | None = None):
    request = Request("POST", path, body, {"Content-Type": "application/json", **headers}, params or {})
    if path.startswith("/slack/"):
        request.headers["Content-Type"] = "application/x-www-form-urlencoded"
    answer = await exchange(request)
    assert_contract(request, answer)
    return answer


def _forgeries(source: str) -> dict[str, tuple[bytes, dict[str, str]]]:
    _, body, sign, signer = SIGNED[source]
    header = next(iter(sign(body)))
    good = sign(body)[header]
    other = OTHER[source.split("+")[0]]
    cases = {
        "wrong secret": (body, signer("not-the-secret-" + "x" * 16)(body)),
        "signature over another body": (body, sign(other)),
        "signature for this body sent with another": (other, sign(body)),
        "missing signature": (body, {k: v for k, v in sign(body).items() if k != header}),
        "empty signature": (body, {**sign(body), header: ""}),
        "truncated signature": (body, {**sign(body), header: good[:-2]}),
        "signature with a trailing byte": (body, {**sign(body), header: good + "0"}),
        "body with a trailing newline": (body + b"\n", sign(body)),
        "signature of the empty body": (body, sign(b"")),
    }
    if source == "slack":
        cases |= {
            "stale timestamp (5 min + 1 s)": (body, _slack(ts=TS - 301)(body)),
            "future timestamp (5 min + 1 s)": (body, _slack(ts=TS + 301)(body)),
            "old replay, timestamp swapped": (body, {**_slack(ts=TS - 3600)(body), "X-Slack-Request-Timestamp": str(TS)}),
            "timestamp not a number": (body, {**sign(body), "X-Slack-Request-Timestamp": "now"}),
            "missing timestamp": (body, {"X-Slack-Signature": good}),
        }
    if source == "grafana+ts":
        cases |= {
            "stale timestamp (5 min + 1 s)": (body, _grafana(ts=TS - 301)(body)),
            "future timestamp (5 min + 1 s)": (body, _grafana(ts=TS + 301)(body)),
            "old replay, timestamp swapped": (body, {**_grafana(ts=TS - 3600)(body), GRAFANA_TS_HEADER: str(TS)}),
            "timestamp dropped from a timestamped signature": (body, {"X-Grafana-Alerting-Signature": good}),
        }
    if source in ("slack", "grafana+ts"):          # signed with the right secret, but absurd timestamps
        make = (lambda t: _slack_at(t)) if source == "slack" else _grafana_at
        cases |= {f"validly signed timestamp {t[:12]!r}": (body, make(t)(body)) for t in ABSURD_TIMESTAMPS}
    return cases


CASES = [(source, case) for source in SIGNED for case in _forgeries(source)]


@pytest.mark.parametrize("source", list(SIGNED))
async def test_the_correctly_signed_request_is_accepted(source: str) -> None:
    path, body, sign, _ = SIGNED[source]
    answer = await _send(path, body, sign(body))
    assert answer.status in (200, 202), answer.body
    assert len(answer.published) == 1


@pytest.mark.parametrize(("source", "case"), CASES, ids=[f"{s}: {c}" for s, c in CASES])
async def test_a_forged_request_is_401_and_publishes_nothing(source: str, case: str) -> None:
    path = SIGNED[source][0]
    body, headers = _forgeries(source)[case]
    answer = await _send(path, body, headers)
    assert answer.status == 401, answer.body
    assert answer.published == []


async def test_a_bad_smartlead_signature_is_final_even_with_a_valid_token() -> None:
    headers = {**_smartlead("wrong-secret-000000")(SMARTLEAD), "Authorization": f"Bearer {TOKEN}"}
    answer = await _send("/webhooks/smartlead", SMARTLEAD, headers, {"token": TOKEN})
    assert answer.status == 401 and answer.published == []


async def test_a_wrong_smartlead_body_secret_key_is_refused() -> None:
    legacy = (PAYLOADS / "smartlead_legacy_reply.json").read_bytes()   # secret_key is another secret
    answer = await _send("/webhooks/smartlead", legacy, {})
    assert answer.status == 401 and answer.published == []


TOKEN_PATHS = ["/webhooks/inbox", "/webhooks/events", "/webhooks/alertmanager", "/webhooks/smartlead"]
TOKEN_BODIES = {
    "/webhooks/inbox": (PAYLOADS / "inbox_campaign_started.json").read_bytes(),
    "/webhooks/events": (PAYLOADS / "events_campaign_metrics.json").read_bytes(),
    "/webhooks/alertmanager": (PAYLOADS / "alertmanager_firing.json").read_bytes(),
    "/webhooks/smartlead": (PAYLOADS / "smartlead_a_email_sent.json").read_bytes(),
}
TOKEN_FORGERIES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "wrong bearer": ({"Authorization": "Bearer " + TOKEN[:-1] + "x"}, {}),
    "token prefix": ({"Authorization": "Bearer " + TOKEN[:-4]}, {}),
    "token with a suffix": ({"Authorization": "Bearer " + TOKEN + "x"}, {}),
    "wrong ?token=": ({}, {"token": "nope"}),
    "no credentials": ({}, {}),
    "token as Basic": ({"Authorization": "Basic " + TOKEN}, {}),
    "token in an unknown header": ({"X-Token": TOKEN}, {}),
    "bare token in Authorization": ({"Authorization": TOKEN}, {}),
}


@pytest.mark.parametrize("path", TOKEN_PATHS)
async def test_the_right_token_is_accepted(path: str) -> None:
    answer = await _send(path, TOKEN_BODIES[path], {"Authorization": f"Bearer {TOKEN}"})
    assert answer.status == 202 and len(answer.published) >= 1, answer.body


@pytest.mark.parametrize("path", TOKEN_PATHS)
@pytest.mark.parametrize("case", list(TOKEN_FORGERIES))
async def test_a_wrong_token_is_401_and_publishes_nothing(path: str, case: str) -> None:
    headers, params = TOKEN_FORGERIES[case]
    answer = await _send(path, TOKEN_BODIES[path], headers, params)
    assert answer.status == 401, answer.body
    assert answer.published == []


@pytest.mark.parametrize("path", TOKEN_PATHS + [SIGNED[s][0] for s in ("leadterra", "slack", "grafana")])
async def test_with_no_secret_configured_every_intake_fails_closed(path: str) -> None:
    body = TOKEN_BODIES.get(path, b"{}")
    request = Request("POST", path, body, {"Authorization": f"Bearer {TOKEN}"}, {"token": TOKEN})
    answer = await exchange(request, webhook_token=None, smartlead_webhook_secret=None,
                            leadterra_webhook_secret=None, slack_signing_secret=None, grafana_webhook_secret=None)
    assert_contract(request, answer)
    assert answer.status == 401 and answer.published == []
