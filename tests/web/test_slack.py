"""`/slack/commands` and `/slack/interactions`: really signed requests through the real app."""

from __future__ import annotations

import json

import pytest

from bot.errors import BrokerUnavailable
from bot.events import Event
from tests.slack.fake_slack import click_body, command_body, slack_headers

SECRET = "test-slack-signing-secret-1234"
RESPONSE_URL = "https://hooks.slack.com/commands/T1/1/abc"


@pytest.fixture
def ts(clock) -> int:
    return int(clock().timestamp())


async def _client(make_client, **overrides):
    return await make_client(slack_signing_secret=SECRET, **overrides)


def _command(text: str, trigger: str = "1.2.t1", user: str = "U1") -> bytes:
    return command_body(text, user=user, response_url=RESPONSE_URL, trigger=trigger)


async def test_command_is_published_and_acknowledged_ephemerally(make_client, broker, ts) -> None:
    client = await _client(make_client)
    body = _command("pause smartlead:1,smartlead:2 bounces")
    resp = await client.post("/slack/commands", data=body, headers=slack_headers(body, SECRET, timestamp=ts))
    assert resp.status == 200
    answer = await resp.json()
    assert answer["response_type"] == "ephemeral" and "`smartlead:1`, `smartlead:2`" in answer["text"]
    [published] = broker.published
    event = Event.model_validate_json(published.body)
    assert published.message_id == event.id == "slack:command:1.2.t1"
    assert published.routing_key == "slack.command.pause"
    assert event.data["campaigns"] == ["smartlead:1", "smartlead:2"] and event.data["reason"] == "bounces"
    assert event.data["user_id"] == "U1" and event.data["response_url"] == RESPONSE_URL


async def test_the_same_request_replayed_publishes_the_same_id(make_client, broker, ts) -> None:
    client = await _client(make_client)
    body = _command("resume smartlead:1")
    for _ in range(2):
        resp = await client.post("/slack/commands", data=body, headers=slack_headers(body, SECRET, timestamp=ts))
        assert resp.status == 200
    assert [p.message_id for p in broker.published] == ["slack:command:1.2.t1"] * 2


@pytest.mark.parametrize("case", ["wrong_secret", "tampered", "stale", "future", "missing", "garbage_ts"])
async def test_bad_signatures_get_401_and_nothing_is_published(make_client, broker, ts, case: str) -> None:
    client = await _client(make_client)
    body = _command("pause smartlead:1")
    headers = {
        "wrong_secret": slack_headers(body, "another-secret", timestamp=ts),
        "tampered": slack_headers(_command("pause smartlead:2"), SECRET, timestamp=ts),
        "stale": slack_headers(body, SECRET, timestamp=ts - 301),
        "future": slack_headers(body, SECRET, timestamp=ts + 301),
        "missing": {"Content-Type": "application/x-www-form-urlencoded"},
        "garbage_ts": {**slack_headers(body, SECRET, timestamp=ts), "X-Slack-Request-Timestamp": "12abc"},
    }[case]
    for path in ("/slack/commands", "/slack/interactions"):
        resp = await client.post(path, data=body, headers=headers)
        assert resp.status == 401
        assert "signature" in (await resp.json())["error"]
    assert broker.published == []


async def test_a_timestamp_within_five_minutes_is_accepted(make_client, broker, ts) -> None:
    client = await _client(make_client)
    body = _command("status smartlead:1")
    resp = await client.post("/slack/commands", data=body, headers=slack_headers(body, SECRET, timestamp=ts - 299))
    assert resp.status == 200 and len(broker.published) == 1


async def test_without_a_signing_secret_everything_is_refused(make_client, broker, ts) -> None:
    client = await make_client()
    body = _command("pause smartlead:1")
    resp = await client.post("/slack/commands", data=body, headers=slack_headers(body, SECRET, timestamp=ts))
    assert resp.status == 401 and "BOT_SLACK_SIGNING_SECRET" in (await resp.json())["error"]
    assert broker.published == []


@pytest.mark.parametrize(("text", "says"), [
    ("pause", "needs a campaign"), ("pause hubspot:1", "unknown campaign"), ("frobnicate", "unknown command"),
])
async def test_bad_syntax_is_answered_at_the_edge_with_usage(make_client, broker, ts, text: str, says: str) -> None:
    client = await _client(make_client)
    body = _command(text)
    resp = await client.post("/slack/commands", data=body, headers=slack_headers(body, SECRET, timestamp=ts))
    answer = await resp.json()
    assert resp.status == 200 and answer["response_type"] == "ephemeral"
    assert says in answer["text"] and "/guard pause" in answer["text"]
    assert broker.published == []


async def test_help_is_answered_at_the_edge(make_client, broker, ts) -> None:
    client = await _client(make_client)
    body = _command("help")
    resp = await client.post("/slack/commands", data=body, headers=slack_headers(body, SECRET, timestamp=ts))
    assert resp.status == 200 and "/guard history" in (await resp.json())["text"]
    assert broker.published == []


async def test_broker_down_tells_the_person_nothing_was_done(make_client, broker, ts) -> None:
    client = await _client(make_client)
    broker.error = BrokerUnavailable("down")
    body = _command("pause smartlead:1")
    resp = await client.post("/slack/commands", data=body, headers=slack_headers(body, SECRET, timestamp=ts))
    assert resp.status == 200 and "could not queue" in (await resp.json())["text"]
    click = click_body("resume", {"campaign": "smartlead:1"}, user="U1", response_url=RESPONSE_URL, trigger="9.9")
    resp = await client.post("/slack/interactions", data=click, headers=slack_headers(click, SECRET, timestamp=ts))
    assert resp.status == 503


async def test_button_click_is_published_as_interaction_clicked(make_client, broker, ts) -> None:
    client = await _client(make_client)
    body = click_body("keep_paused", {"campaign": "smartlead:4"}, user="U7", response_url=RESPONSE_URL,
                      trigger="5.6.7", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}])
    resp = await client.post("/slack/interactions", data=body, headers=slack_headers(body, SECRET, timestamp=ts))
    assert resp.status == 200
    [published] = broker.published
    event = Event.model_validate_json(published.body)
    assert event.type == "interaction.clicked" and event.id == "slack:click:keep_paused:5.6.7"
    assert event.data["action"] == "keep_paused" and event.data["campaign"] == "smartlead:4"
    assert event.data["user_id"] == "U7" and len(event.data["message_blocks"]) == 1


async def test_foreign_or_broken_interactions(make_client, broker, ts) -> None:
    client = await _client(make_client)
    shortcut = b"payload=" + json.dumps({"type": "shortcut", "callback_id": "x"}).encode()
    resp = await client.post("/slack/interactions", data=shortcut, headers=slack_headers(shortcut, SECRET, timestamp=ts))
    assert resp.status == 200
    broken = b"payload=%7Bnot-json"
    resp = await client.post("/slack/interactions", data=broken, headers=slack_headers(broken, SECRET, timestamp=ts))
    assert resp.status == 400
    assert broker.published == []
