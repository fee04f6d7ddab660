"""`POST /webhooks/instantly` through the app: fail closed naming the setting, a wrong token refused, the
header token or the shared token accepted (202 after the publish), and a redelivery publishes the same id."""

from __future__ import annotations

import json
from collections.abc import Callable

from bot.vendors.instantly.webhooks import TOKEN_HEADER
from tests.web.conftest import TOKEN, FakeBroker, MakeClient, bearer

Payload = Callable[[str], bytes]
SECRET = "fake-instantly-secret-0003"
JSON = {"Content-Type": "application/json"}


async def test_missing_secret_is_401_naming_the_settings(make_client: MakeClient, broker: FakeBroker,
                                                        payload: Payload) -> None:
    client = await make_client(webhook_token=None)
    response = await client.post("/webhooks/instantly", data=payload("instantly_email_bounced.json"),
                                 headers={TOKEN_HEADER: SECRET, **JSON})
    assert response.status == 401
    error = (await response.json())["error"]
    assert "BOT_INSTANTLY_WEBHOOK_SECRET" in error and "BOT_WEBHOOK_TOKEN" in error
    assert broker.published == []


async def test_wrong_tokens_are_401(make_client: MakeClient, broker: FakeBroker, payload: Payload) -> None:
    client = await make_client(instantly_webhook_secret=SECRET)
    body = payload("instantly_email_bounced.json")
    for headers in ({TOKEN_HEADER: SECRET + "x", **JSON}, bearer("not-the-token"), JSON):
        response = await client.post("/webhooks/instantly", data=body, headers=headers)
        assert response.status == 401, headers
        assert SECRET not in await response.text()
    assert broker.published == []


async def test_the_right_token_is_202_and_a_redelivery_keeps_its_id(make_client: MakeClient, broker: FakeBroker,
                                                                    payload: Payload) -> None:
    client = await make_client(instantly_webhook_secret=SECRET)
    body = payload("instantly_email_bounced.json")
    first = await client.post("/webhooks/instantly", data=body, headers={TOKEN_HEADER: SECRET, **JSON})
    again = await client.post("/webhooks/instantly", data=body, headers=bearer(TOKEN))
    assert (first.status, again.status) == (202, 202)
    ids = [(await first.json())["ids"], (await again.json())["ids"]]
    assert ids[0] == ids[1] and len(ids[0]) == 1
    assert [p.message_id for p in broker.published] == ids[0] * 2
    event = json.loads(broker.published[0].body)
    assert (event["type"], event["campaign"]) == ("email.bounced", "instantly:6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b")
