"""The slash-command grammar and Slack request → Event conversion (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.errors import PayloadError
from bot.events import CampaignRef
from bot.slack.commands import MAX_CAMPAIGNS, UsageError, click_event, command_event, help_text, parse_command

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def refs(*texts: str) -> tuple[CampaignRef, ...]:
    return tuple(CampaignRef.parse(t) for t in texts)


@pytest.mark.parametrize(("text", "verb", "campaigns", "reason"), [
    ("pause smartlead:123", "pause", ("smartlead:123",), ""),
    ("PAUSE smartlead:123 bounce spike on domain x", "pause", ("smartlead:123",), "bounce spike on domain x"),
    ("pause smartlead:1,smartlead:2 reason", "pause", ("smartlead:1", "smartlead:2"), "reason"),
    ("pause smartlead:1, leadterra:camp_a ,inbox:abc9 why", "pause",
     ("smartlead:1", "leadterra:camp_a", "inbox:abc9"), "why"),
    ("pause smartlead:1,smartlead:1", "pause", ("smartlead:1",), ""),
    ("pause smartlead:1 a &amp; b &lt;x&gt;", "pause", ("smartlead:1",), "a & b <x>"),
    ("resume smartlead:123", "resume", ("smartlead:123",), ""),
    ("  status   inbox:abc123  ", "status", ("inbox:abc123",), ""),
    ("history leadterra:camp_x,smartlead:9", "history", ("leadterra:camp_x", "smartlead:9"), ""),
])
def test_campaign_commands_parse(text: str, verb: str, campaigns: tuple[str, ...], reason: str) -> None:
    command = parse_command(text)
    assert (command.verb, command.campaigns, command.reason) == (verb, refs(*campaigns), reason)


@pytest.mark.parametrize(("text", "wanted"), [("list", "all"), ("list paused", "paused"), ("list HELD", "held")])
def test_list_takes_an_optional_filter(text: str, wanted: str) -> None:
    assert parse_command(text).filter == wanted


@pytest.mark.parametrize("text", ["", "help", "HELP", "   "])
def test_help_and_empty_text_are_help(text: str) -> None:
    assert parse_command(text).verb == "help"


@pytest.mark.parametrize(("text", "says"), [
    ("stop smartlead:1", "unknown command `stop`"),
    ("pause", "`pause` needs a campaign"),
    ("pause 123", "unknown campaign `123`"),
    ("pause hubspot:1", "unknown campaign `hubspot:1`"),
    ("pause smartlead:abc", "unknown campaign `smartlead:abc`"),
    ("resume smartlead:1 because", "`resume` takes campaigns only"),
    ("status smartlead:1 smartlead:2", "separate several campaigns with commas"),
    ("list everything", "`list` takes `paused`, `held` or nothing"),
    ("pause smartlead:1 " + "x" * 301, "limited to 300 characters"),
    ("pause " + ",".join(f"smartlead:{n}" for n in range(1, MAX_CAMPAIGNS + 2)), "at most 20 campaigns"),
])
def test_bad_syntax_says_what_to_type(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=None) as caught:
        parse_command(text)
    assert says in str(caught.value)


def test_help_text_names_the_registered_command_and_every_verb() -> None:
    text = help_text("/cg")
    for verb in ("pause", "resume", "status", "list", "history", "help"):
        assert f"`/cg {verb}" in text
    assert "everyone" in text


def test_command_event_id_comes_from_trigger_id_so_a_replay_dedupes() -> None:
    form = {"user_id": "U1", "trigger_id": "123.456.abc", "response_url": "https://hooks.slack.com/x",
            "command": "/guard"}
    first = command_event(parse_command("pause smartlead:1 why"), form, body=b"a", now=NOW)
    again = command_event(parse_command("pause smartlead:1 why"), form, body=b"a", now=NOW)
    retyped = command_event(parse_command("pause smartlead:1 why"), {**form, "trigger_id": "999.1.b"}, body=b"a",
                            now=NOW)
    assert first.id == again.id == "slack:command:123.456.abc" and retyped.id != first.id
    assert (first.type, first.source, first.campaign) == ("command.pause", "slack", None)
    assert first.data["campaigns"] == ["smartlead:1"] and first.data["reason"] == "why"
    assert first.data["user_id"] == "U1" and first.data["response_url"] == "https://hooks.slack.com/x"


def test_command_event_without_trigger_id_hashes_the_body() -> None:
    one = command_event(parse_command("list"), {}, body=b"body-1", now=NOW)
    assert one.id.startswith("slack:command:sha256:")
    assert one.id == command_event(parse_command("list"), {}, body=b"body-1", now=NOW).id
    assert one.id != command_event(parse_command("list"), {}, body=b"body-2", now=NOW).id


def _payload(action: str, value: object, **extra: object) -> dict[str, object]:
    return {"type": "block_actions", "trigger_id": "77.88.zz", "user": {"id": "U9", "username": "ann"},
            "response_url": "https://hooks.slack.com/actions/1", "channel": {"id": "C1"},
            "message": {"ts": "1.2", "text": "Paused", "blocks": [{"type": "section"}]},
            "actions": [{"action_id": action, "value": json.dumps(value)}], **extra}


def test_click_event_carries_action_campaign_and_the_original_message() -> None:
    event = click_event(_payload("resume", {"campaign": "smartlead:5"}), body=b"x", now=NOW)
    assert event is not None and event.type == "interaction.clicked" and event.id == "slack:click:resume:77.88.zz"
    assert event.data["action"] == "resume" and event.data["campaign"] == "smartlead:5"
    assert event.data["user_id"] == "U9" and event.data["message_blocks"] == [{"type": "section"}]
    decision = click_event(_payload("approve", {"campaign": "smartlead:5", "decision_id": 3}), body=b"x", now=NOW)
    assert decision is not None and decision.data["decision_id"] == 3


def test_clicks_that_are_not_ours_are_ignored_and_bad_values_refused() -> None:
    assert click_event({"type": "view_submission"}, body=b"x", now=NOW) is None
    assert click_event(_payload("something_else", {}), body=b"x", now=NOW) is None
    with pytest.raises(PayloadError):
        click_event(_payload("resume", "not an object"), body=b"x", now=NOW)
    with pytest.raises(PayloadError):
        click_event(_payload("resume", {"campaign": "nope"}), body=b"x", now=NOW)
    with pytest.raises(PayloadError):
        click_event(_payload("approve", {"decision_id": "3"}), body=b"x", now=NOW)
