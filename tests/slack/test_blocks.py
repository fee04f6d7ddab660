"""Block Kit builders: notices with the right buttons, digests, replies, clicked messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.notify import Notice
from bot.slack.blocks import (
    clicked_message,
    digest_message,
    notice_from_json,
    notice_message,
    notice_to_json,
    reply,
)

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _actions(message: dict[str, object]) -> list[dict[str, object]]:
    blocks = message["blocks"]
    assert isinstance(blocks, list)
    found = [b for b in blocks if b["type"] == "actions"]
    return found[0]["elements"] if found else []


def test_pause_notice_shows_campaign_rule_numbers_and_resume_keep_buttons() -> None:
    notice = Notice("paused", "smartlead:7", "bounce rate 4.0% (4 bounces over the last 100 sends)", AT,
                    "bounce-guard", {"numerator": 4, "denominator": 100, "value": 0.04, "threshold": {"gte": 0.03},
                                     "rule_digest": "abc"})
    message = notice_message(notice)
    text = json.dumps(message)
    assert "smartlead:7" in message["text"] and "bounce rate 4.0%" in message["text"]
    fields = [f["text"] for b in message["blocks"] if "fields" in b for f in b["fields"]]
    assert "*Campaign*\n`smartlead:7`" in fields and "*Rule*\n`bounce-guard`" in fields
    assert "*numerator*\n4" in fields and "*value*\n0.04" in fields and '*threshold*\n{"gte":0.03}' in fields
    assert "rule_digest" not in text
    buttons = _actions(message)
    assert [b["action_id"] for b in buttons] == ["resume", "keep_paused"]
    assert json.loads(buttons[0]["value"]) == {"campaign": "smartlead:7"} and "confirm" in buttons[0]


def test_pending_decision_gets_approve_and_reject_with_the_decision_id() -> None:
    message = notice_message(Notice("pending_decision", "smartlead:7", "parked", AT, "rule:x", {"decision_id": 12}))
    buttons = _actions(message)
    assert [b["action_id"] for b in buttons] == ["approve", "reject"]
    assert json.loads(buttons[0]["value"]) == {"campaign": "smartlead:7", "decision_id": 12}


def test_other_notices_have_no_buttons_and_escape_foreign_text() -> None:
    for kind in ("resumed", "failed", "breaker_open", "skipped", "suppressed"):
        assert _actions(notice_message(Notice(kind, "smartlead:7", "x", AT))) == []
    message = notice_message(Notice("failed", "smartlead:7", "<!channel> & co", AT))
    assert "&lt;!channel&gt; &amp; co" in message["blocks"][0]["text"]["text"]


def test_notice_round_trips_through_json_for_the_outbox() -> None:
    notice = Notice("shadow", "inbox:abc", "would have paused", AT, "r", {"value": 0.5})
    assert notice_from_json(json.loads(json.dumps(notice_to_json(notice)))) == notice


def test_digest_lists_every_shadow_decision_in_one_message() -> None:
    notices = [Notice("shadow", f"smartlead:{n}", f"would have paused smartlead:{n}", AT, "r") for n in range(1, 4)]
    message = digest_message(notices, start=AT, end=AT)
    text = message["blocks"][0]["text"]["text"]
    assert "3 between 09:00 and 09:00" in text and all(f"smartlead:{n}" in text for n in range(1, 4))
    many = digest_message(notices * 20, start=AT, end=AT)["blocks"][0]["text"]["text"]
    assert "… and 20 more" in many


def test_reply_is_ephemeral_and_clicked_message_replaces_the_buttons() -> None:
    body = reply("done")
    assert body["response_type"] == "ephemeral" and body["replace_original"] is False and body["text"] == "done"
    original = notice_message(Notice("paused", "smartlead:7", "x", AT))["blocks"]
    replaced = clicked_message(original, "Paused", "*Resume* clicked by <@U1>: resumed")
    assert replaced["replace_original"] is True
    assert all(b["type"] != "actions" for b in replaced["blocks"])
    assert replaced["blocks"][-1]["text"]["text"] == "*Resume* clicked by <@U1>: resumed"
    assert clicked_message([], "Paused", "ok")["blocks"][0]["text"]["text"] == "Paused"
