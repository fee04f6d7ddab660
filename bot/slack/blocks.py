"""Block Kit messages: channel notices (with Resume / Keep paused / Approve / Reject), an incident's message
edited in place and its thread replies, shadow digests, command replies and the replacement of a clicked
notice. Pure: dicts in, dicts out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from bot.notify import Notice

__all__ = [
    "PAUSE_KINDS",
    "clicked_message",
    "digest_message",
    "esc",
    "incident_message",
    "notice_from_json",
    "notice_message",
    "notice_to_json",
    "reply",
    "thread_message",
    "title",
]

_TITLES: Final = {
    "paused": ":octagonal_sign: Paused", "resumed": ":arrow_forward: Resumed", "failed": ":x: Action failed",
    "skipped": ":information_source: Nothing done", "dry_run": ":test_tube: Dry run",
    "confirmed": ":octagonal_sign: Pause confirmed", "suppressed": ":zipper_mouth_face: Not paused (override)",
    "breaker_open": ":rotating_light: Blast-radius breaker open",
    "pending_decision": ":raised_hand: Pause waiting for approval", "decision_expired": ":hourglass: Decision expired",
    "override": ":bust_in_silhouette: Resumed by a person", "shadow": ":ghost: Shadow decisions",
    "unproven": ":grey_question: Paused, but not by campaign-guard's proof: it will not resume it",
    "drift": ":bust_in_silhouette: Changed at the vendor by a person",
    "withdrawn": ":leftwards_arrow_with_hook: Vendor call withdrawn before it was sent",
    "carried_live": ":octagonal_sign: Held in dry run, pausing now that the vendor is live",
    "warning": ":warning: Warning", "rule_notice": ":bell: Rule notice",
}
#: Notices about a campaign the bot holds paused: they carry Resume and Keep paused.
PAUSE_KINDS: Final = frozenset({"paused", "confirmed", "dry_run"})
_HIDDEN_INPUTS: Final = frozenset({"digest", "rule_digest", "event_ids"})
_MAX_FIELDS: Final = 10
_MAX_TEXT: Final = 2900


def title(kind: str) -> str:
    """A notice kind's title, with its emoji (`:octagonal_sign: Paused`)."""
    return _TITLES.get(kind, f":bell: {kind.replace('_', ' ').capitalize()}")


def esc(text: str) -> str:
    """Escape text we did not write for mrkdwn (Slack's three control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
        return _cut(esc(str(text)), 120)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _fields(notice: Notice) -> list[dict[str, str]]:
    fields = []
    if notice.campaign:
        fields.append({"type": "mrkdwn", "text": f"*Campaign*\n`{notice.campaign}`"})
    if notice.rule:
        fields.append({"type": "mrkdwn", "text": f"*Rule*\n`{esc(notice.rule)}`"})
    for name, value in notice.inputs.items():
        if name in _HIDDEN_INPUTS or len(fields) >= _MAX_FIELDS:
            continue
        fields.append({"type": "mrkdwn", "text": f"*{esc(name)}*\n{_number(value)}"})
    return fields


def _button(text: str, action_id: str, value: Mapping[str, Any], style: str | None = None,
            confirm: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text},
                              "action_id": action_id, "value": json.dumps(dict(value), separators=(",", ":"))}
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = {"title": {"type": "plain_text", "text": "Are you sure?"},
                             "text": {"type": "mrkdwn", "text": confirm},
                             "confirm": {"type": "plain_text", "text": text},
                             "deny": {"type": "plain_text", "text": "Cancel"}}
    return button


def _buttons(notice: Notice) -> list[dict[str, Any]]:
    if notice.kind == "pending_decision" and isinstance(notice.inputs.get("decision_id"), int):
        value = {"campaign": notice.campaign, "decision_id": notice.inputs["decision_id"]}
        return [_button("Approve", "approve", value, "primary"), _button("Reject", "reject", value, "danger")]
    if notice.kind in PAUSE_KINDS and notice.campaign:
        value = {"campaign": notice.campaign}
        return [_button("Resume", "resume", value, "danger",
                        f"Resume `{notice.campaign}`? Rules will leave it alone for a while (override)."),
                _button("Keep paused", "keep_paused", value, "primary")]
    return []


def notice_message(notice: Notice) -> dict[str, Any]:
    """One channel message for one notice: title, what happened, the numbers, and buttons."""
    heading = title(notice.kind)
    subject = f" `{notice.campaign}`" if notice.campaign else ""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*{heading}*{subject}\n{esc(notice.text)}")}},
    ]
    if fields := _fields(notice):
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"campaign-guard · {notice.kind} · {notice.at:%Y-%m-%d %H:%M:%S} UTC"}]})
    if buttons := _buttons(notice):
        blocks.append({"type": "actions", "block_id": "guard_actions", "elements": buttons})
    plain = heading.split(" ", 1)[-1]
    return {"text": _cut(f"{plain}{subject}: {notice.text}"), "blocks": blocks}


def incident_message(opening: Notice, latest: Notice, *, updates: int) -> dict[str, Any]:
    """An incident's one message, as `chat.update` leaves it after `latest`: where it stands now (the latest
    notice, with the buttons that fit it), what opened it and its numbers, and how many updates its thread
    holds."""
    message = notice_message(latest)
    blocks = [b for b in message["blocks"] if b["type"] not in ("context", "actions") and "fields" not in b]
    opened = f"{title(opening.kind).split(' ', 1)[-1]} {opening.at:%Y-%m-%d %H:%M} UTC"
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(
        f"*Incident opened:* {opened}" + (f" by `{esc(opening.rule)}`" if opening.rule else "")
        + f"\n{esc(opening.text)}")}})
    if fields := _fields(replace(opening, campaign=None, rule=None)):
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"campaign-guard · {latest.kind} · {latest.at:%Y-%m-%d %H:%M:%S} UTC · "
        f"{updates} update{'s' if updates != 1 else ''} in the thread")}]})
    if buttons := _buttons(latest):
        blocks.append({"type": "actions", "block_id": "guard_actions", "elements": buttons})
    return {"text": message["text"], "blocks": blocks}


def thread_message(notice: Notice) -> dict[str, Any]:
    """A notice as a reply in its incident's thread: the full notice, its buttons left to the message above."""
    message = notice_message(notice)
    return {"text": message["text"], "blocks": [b for b in message["blocks"] if b["type"] != "actions"]}


def notice_to_json(notice: Notice) -> dict[str, Any]:
    return {"kind": notice.kind, "campaign": notice.campaign, "text": notice.text, "at": notice.at.isoformat(),
            "rule": notice.rule, "inputs": json.loads(json.dumps(notice.inputs, default=str))}


def notice_from_json(data: Mapping[str, Any]) -> Notice:
    return Notice(str(data["kind"]), data.get("campaign"), str(data["text"]), datetime.fromisoformat(data["at"]),
                  data.get("rule"), dict(data.get("inputs") or {}))


def digest_message(notices: Sequence[Notice], *, start: datetime, end: datetime) -> dict[str, Any]:
    """Shadow decisions of one interval in one message: what would have been paused, and why."""
    lines = [f"• `{n.campaign or '-'}` {'(' + esc(n.rule) + ') ' if n.rule else ''}{esc(n.text)}" for n in notices]
    shown, hidden = lines[:40], len(lines) - 40
    body = "\n".join(shown) + (f"\n… and {hidden} more (see `campaign-guard audit`)" if hidden > 0 else "")
    header = (f"*{title('shadow')}* — {len(notices)} between {start:%H:%M} and {end:%H:%M} UTC "
              "(rules in shadow mode: nothing was paused)")
    return {"text": f"Shadow decisions: {len(notices)} would-be action(s)",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"{header}\n{body}")}}]}


def reply(text: str, *, replace_original: bool = False, in_channel: bool = False) -> dict[str, Any]:
    """A `response_url` body (ephemeral unless `in_channel`)."""
    body: dict[str, Any] = {"text": _cut(text, 3900), "response_type": "in_channel" if in_channel else "ephemeral",
                            "replace_original": replace_original}
    body["blocks"] = [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(text)}}]
    return body


def clicked_message(original: Sequence[Any], fallback: str, result: str) -> dict[str, Any]:
    """The clicked notice again, its buttons replaced by what the click did (replace_original)."""
    kept = [b for b in original if isinstance(b, dict) and b.get("type") != "actions"]
    if not kept:
        kept = [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(esc(fallback) or "campaign-guard")}}]
    kept.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(result)}})
    return {"text": _cut(f"{fallback}\n{result}", 3900), "replace_original": True, "blocks": kept}
