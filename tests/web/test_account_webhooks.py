"""POST /webhooks/<vendor>/<account>: authenticated with that account's own secret, its events are that
account's campaigns (`smartlead@acme:123`), and an unknown account is a 404 naming it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from bot.events import Event
from tests.web.conftest import FakeBroker, MakeClient, smartlead_headers

ACME_SECRET = "acme-webhook-secret-91"


Payload = Callable[[str], bytes]


def _signed(body: bytes, secret: str) -> dict[str, str]:
    return smartlead_headers(body, secret)


@pytest.fixture(autouse=True)
def _acme(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"VENDOR": "smartlead", "NAME": "acme", "API_KEY": "acme-key-1",
                       "WEBHOOK_SECRET": ACME_SECRET}.items():
        monkeypatch.setenv(f"BOT_ACCOUNT_1_{key}", value)


async def test_an_account_webhook_names_that_accounts_campaign(
    make_client: MakeClient, broker: FakeBroker, payload: Payload,
) -> None:
    client = await make_client()
    body = payload("smartlead_a_email_bounce.json")
    response = await client.post("/webhooks/smartlead/acme", data=body, headers=_signed(body, ACME_SECRET))
    assert response.status == 202, await response.text()
    [published] = broker.published
    event = Event.model_validate_json(published.body)
    assert event.campaign is not None and event.campaign.account == "acme"
    assert str(event.campaign).startswith("smartlead@acme:")
    # the same body at the vendor's own path is the default account's event, with another id
    plain = await client.post("/webhooks/smartlead", data=body, headers=smartlead_headers(body))
    assert plain.status == 202
    other = Event.model_validate_json(broker.published[1].body)
    assert other.campaign is not None and other.campaign.account is None
    assert other.id != event.id and event.id.endswith("@acme")


async def test_an_account_webhook_takes_only_that_accounts_secret(
    make_client: MakeClient, broker: FakeBroker, payload: Payload,
) -> None:
    client = await make_client()
    body = payload("smartlead_a_email_bounce.json")
    # signed with the vendor block's secret, not acme's: refused
    response = await client.post("/webhooks/smartlead/acme", data=body, headers=smartlead_headers(body))
    assert response.status == 401
    assert broker.published == []


async def test_an_unknown_account_is_a_404_naming_it(make_client: MakeClient, broker: FakeBroker,
                                                      payload: Payload) -> None:
    client = await make_client()
    body = payload("smartlead_a_email_bounce.json")
    response = await client.post("/webhooks/smartlead/beta", data=body, headers=_signed(body, ACME_SECRET))
    assert response.status == 404
    assert "beta" in json.loads(await response.text())["error"]
    assert broker.published == []
