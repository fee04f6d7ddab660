"""POST /webhooks/lemlist through the web app: 202 with BOT_LEMLIST_WEBHOOK_SECRET or BOT_WEBHOOK_TOKEN;
401 naming the setting when it is wrong, missing or not configured, and nothing published."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bot.events import Event
from tests.web.conftest import TOKEN, FakeBroker, MakeClient

Payload = Callable[[str], bytes]
SECRET = "fake-lemlist-secret-0003"


@pytest.mark.parametrize(
    ("headers", "params", "settings"),
    [
        ({}, {"token": SECRET}, {}),
        ({"X-Lemlist-Token": SECRET}, {}, {}),
        ({"Authorization": f"Bearer {TOKEN}"}, {}, {}),
        ({}, {"token": TOKEN}, {"lemlist_webhook_secret": None}),
    ],
)
async def test_right_token_is_accepted_and_published(
    make_client: MakeClient, broker: FakeBroker, payload: Payload, headers: dict[str, str], params: dict[str, str],
    settings: dict[str, Any],
) -> None:
    client = await make_client(**({"lemlist_webhook_secret": SECRET} | settings))
    response = await client.post("/webhooks/lemlist", data=payload("lemlist_emails_bounced.json"),
                                 headers=headers, params=params)
    assert response.status == 202, await response.text()
    [published] = broker.published
    event = Event.model_validate_json(published.body)
    assert (event.type, str(event.campaign), event.id) == (
        "email.bounced", "lemlist:cam_aaWL92T22Sei3Bz6v", "lemlist:id:act_Z9pL3wRt6YcVn0bHs")


@pytest.mark.parametrize(
    ("headers", "params", "settings", "reason"),
    [
        ({}, {"token": "guess"}, {}, "invalid token"),
        ({"X-Lemlist-Token": SECRET + "0"}, {}, {}, "invalid token"),
        ({}, {}, {}, "missing token"),
        ({}, {"token": SECRET}, {"lemlist_webhook_secret": None, "webhook_token": None},
         "no secret configured for lemlist"),
    ],
)
async def test_wrong_missing_or_unconfigured_is_401_naming_the_setting(
    make_client: MakeClient, broker: FakeBroker, payload: Payload, logs: list[dict[str, Any]],
    headers: dict[str, str], params: dict[str, str], settings: dict[str, Any], reason: str,
) -> None:
    client = await make_client(**({"lemlist_webhook_secret": SECRET} | settings))
    response = await client.post("/webhooks/lemlist", data=payload("lemlist_emails_sent.json"), headers=headers,
                                 params=params)
    assert response.status == 401
    error = (await response.json())["error"]
    assert error.startswith(reason) and "BOT_LEMLIST_WEBHOOK_SECRET" in error and "BOT_WEBHOOK_TOKEN" in error
    assert broker.published == [] and not broker.entered.is_set()
    assert SECRET not in json.dumps(logs, default=str) and TOKEN not in json.dumps(logs, default=str)
