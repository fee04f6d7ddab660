"""Slash-command grammar and Slack request → canonical Event (pure: no I/O, no clock).

    pause <vendor:id>[,<vendor:id>...] [reason]      resume <vendor:id>[,...]
    status <vendor:id>[,...]    history <vendor:id>[,...]    help
    list [paused|held] [account:<name>|client:<label>]

A campaign of a named account is written `vendor@account:id` (`smartlead@acme:123`, bot.accounts).

The slash command's own name is whatever the workspace registered; only its text is parsed here.
Event ids derive from Slack's `trigger_id` (else a hash of the raw body), so a replayed HTTP request
yields the same id and dedupes, while a re-typed command is a new event (idempotent by state instead).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from bot.errors import PayloadError
from bot.events import ACCOUNT_NAME, VENDORS, CampaignRef, Event

__all__ = [
    "BUTTON_ACTIONS",
    "CAMPAIGN_VERBS",
    "LIST_FILTERS",
    "MAX_CAMPAIGNS",
    "SCOPES",
    "Command",
    "UsageError",
    "click_event",
    "command_event",
    "help_text",
    "parse_command",
]

CAMPAIGN_VERBS: Final = ("pause", "resume", "status", "history")
VERBS: Final = (*CAMPAIGN_VERBS, "list", "help")
LIST_FILTERS: Final = ("all", "paused", "held")
#: What `list` may be narrowed to: one account (`account:acme`, `account:smartlead@acme`) or one client label.
SCOPES: Final = ("account", "client")
MAX_CLIENT: Final = 200
_ACCOUNT_SCOPE: Final = re.compile(rf"(?:[a-z0-9_]+@)?{ACCOUNT_NAME.pattern}")
_QUOTES: Final = "\"'\u201c\u201d\u2018\u2019"    # Slack turns straight quotes curly
#: Button action ids (bot.slack.blocks builds them; bot.slack.operator acts on them).
BUTTON_ACTIONS: Final = ("resume", "keep_paused", "approve", "reject")
MAX_CAMPAIGNS: Final = 20
MAX_REASON: Final = 300
_CAMPAIGNS_THEN_REST: Final = re.compile(r"^(?P<campaigns>[^\s,]+(?:\s*,\s*[^\s,]+)*),?\s*(?P<rest>.*)$", re.DOTALL)


class UsageError(PayloadError):
    """The command text does not follow the grammar; the message says what to type instead."""


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command: `verb`, its campaigns (in order, no repeats), a pause reason, a list filter and
    the list's scope (`scope` one of SCOPES, `scope_value` the account or client label; "" for none)."""

    verb: str
    campaigns: tuple[CampaignRef, ...] = ()
    reason: str = ""
    filter: str = "all"
    scope: str = ""
    scope_value: str = ""


def help_text(name: str = "/guard") -> str:
    """The usage text (answered at the edge for `help`, an empty command, or bad syntax)."""
    return "\n".join([
        (f"*campaign-guard* — `{name} <command>`; campaigns are written `vendor:id` "
         f"({', '.join(sorted(VENDORS))}), or `vendor@account:id` for a named account "
         "(`smartlead@acme:123`), several separated by commas."),
        f"• `{name} pause smartlead:123[,smartlead:124] [reason]` — hold campaigns paused (pause permission)",
        (f"• `{name} resume smartlead:123` — remove the holds you may remove; counts as an override "
         "(resume permission)"),
        f"• `{name} status smartlead:123` — vendor status, holds and overrides",
        (f"• `{name} list [paused|held] [account:<name>|client:<label>]` — campaigns campaign-guard paused or "
         "holds, of every account or of one account or client (`list held client:Acme Corp`)"),
        f"• `{name} history smartlead:123` — the latest audit records",
        (f"• `{name} help` — this text. Read-only commands are open to everyone in the workspace; a person "
         "allowed only on some accounts' campaigns sees and acts on those accounts' campaigns only."),
    ])


def _campaign(text: str) -> CampaignRef:
    try:
        return CampaignRef.parse(text)
    except (ValidationError, ValueError):
        raise UsageError(f"unknown campaign `{text[:80]}`: write it vendor:id, e.g. `smartlead:123`, "
                         f"`leadterra:camp_abc`, `inbox:abc123`, or vendor@account:id for a named account "
                         f"(`smartlead@acme:123`) (vendors: {', '.join(sorted(VENDORS))})") from None


def _campaigns_and_rest(verb: str, args: str) -> tuple[tuple[CampaignRef, ...], str]:
    match = _CAMPAIGNS_THEN_REST.match(args)
    if not args or match is None:
        raise UsageError(f"`{verb}` needs a campaign: `{verb} smartlead:123` (several: `smartlead:1,smartlead:2`)")
    refs = tuple(dict.fromkeys(_campaign(part.strip()) for part in match["campaigns"].split(",") if part.strip()))
    if len(refs) > MAX_CAMPAIGNS:
        raise UsageError(f"at most {MAX_CAMPAIGNS} campaigns per command, got {len(refs)}")
    return refs, match["rest"].strip()


def parse_command(text: str) -> Command:
    """Parse the text after the slash command; raises UsageError with what to type instead."""
    text = html.unescape(text or "").strip()       # Slack escapes &, < and > in command text
    verb, _, args = text.partition(" ")
    verb, args = verb.lower(), args.strip()
    if verb in ("", "help"):
        return Command("help")
    if verb not in VERBS:
        raise UsageError(f"unknown command `{verb[:40]}`: use one of {', '.join(VERBS)}")
    if verb == "list":
        return _list(args)
    refs, rest = _campaigns_and_rest(verb, args)
    if verb != "pause" and rest:
        raise UsageError(f"`{verb}` takes campaigns only, got `{rest[:60]}` after them "
                         "(separate several campaigns with commas)")
    if len(rest) > MAX_REASON:
        raise UsageError(f"the reason is limited to {MAX_REASON} characters")
    return Command(verb, refs, reason=rest)


def _list(args: str) -> Command:
    """`list [paused|held] [account:<name>|client:<label>]`."""
    first, _, rest = args.partition(" ")
    wanted = first.lower() if first.lower() in LIST_FILTERS else "all"
    scope_text = rest.strip() if first.lower() in LIST_FILTERS else args
    if not scope_text:
        return Command("list", filter=wanted)
    scope, sep, value = scope_text.partition(":")
    scope, value = scope.strip().lower(), value.strip().strip(_QUOTES).strip()
    if not sep or scope not in SCOPES:
        raise UsageError("`list` takes `paused`, `held` or nothing, then optionally `account:<name>` or "
                         f"`client:<label>`, e.g. `list held account:acme`; got `{scope_text[:60]}`")
    if scope == "account":
        value = value.lower()
        if not _ACCOUNT_SCOPE.fullmatch(value):
            raise UsageError(f"`account:` takes an account name (lower-case letters, digits, _ and -), e.g. "
                             f"`list account:acme` or `list account:smartlead@acme`; got `{value[:60]}`")
    elif not value:
        raise UsageError("`client:` takes a client label, e.g. `list client:Acme Corp`")
    elif len(value) > MAX_CLIENT:
        raise UsageError(f"the client label is limited to {MAX_CLIENT} characters")
    return Command("list", filter=wanted, scope=scope, scope_value=value)


def _event_id(kind: str, trigger_id: str | None, body: bytes) -> str:
    if trigger_id and re.fullmatch(r"[A-Za-z0-9._-]{1,150}", trigger_id):
        return f"slack:{kind}:{trigger_id}"
    return f"slack:{kind}:sha256:{hashlib.sha256(body).hexdigest()}"


def command_event(command: Command, form: Mapping[str, str], *, body: bytes, now: datetime) -> Event:
    """The canonical event for a parsed slash command (`help` never becomes one)."""
    data: dict[str, Any] = {
        "command": command.verb, "campaigns": [str(ref) for ref in command.campaigns], "reason": command.reason,
        "filter": command.filter, "scope": command.scope, "scope_value": command.scope_value, "user_id": form.get("user_id", ""), "user_name": form.get("user_name", ""),
        "team_id": form.get("team_id", ""), "channel_id": form.get("channel_id", ""),
        "response_url": form.get("response_url", ""), "slash_command": form.get("command", ""),
    }
    return Event(id=_event_id("command", form.get("trigger_id"), body), type=f"command.{command.verb}",
                 source="slack", occurred_at=now, data=data)


def _button_value(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise PayloadError("button value: expected a JSON object")
    return value


def _object(value: Any) -> dict[str, Any]:
    """A JSON object field, or {} when it is missing or not an object."""
    return value if isinstance(value, dict) else {}


def click_event(payload: Mapping[str, Any], *, body: bytes, now: datetime) -> Event | None:
    """The canonical event for a `block_actions` payload on one of our buttons; None for anything else."""
    actions = payload.get("actions")
    if payload.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        return None
    action = actions[0] if isinstance(actions[0], dict) else {}
    action_id = action.get("action_id")
    if action_id not in BUTTON_ACTIONS:
        return None
    value = _button_value(action.get("value"))
    campaign = str(_campaign(str(value.get("campaign", "")))) if value.get("campaign") else None
    decision_id = value.get("decision_id")
    if decision_id is not None and not isinstance(decision_id, int):
        raise PayloadError("button value: decision_id must be an integer")
    user = _object(payload.get("user"))
    message = _object(payload.get("message"))
    channel = _object(payload.get("channel"))
    data: dict[str, Any] = {
        "action": action_id, "campaign": campaign, "decision_id": decision_id,
        "user_id": str(user.get("id", "")), "user_name": str(user.get("username") or user.get("name") or ""),
        "response_url": str(payload.get("response_url", "")), "channel_id": str(channel.get("id", "")),
        "message_ts": str(message.get("ts", "")), "message_text": str(message.get("text", ""))[:3000],
        "message_blocks": message.get("blocks") if isinstance(message.get("blocks"), list) else [],
    }
    trigger = payload.get("trigger_id")
    return Event(id=_event_id(f"click:{action_id}", trigger if isinstance(trigger, str) else None, body),
                 type="interaction.clicked", source="slack", occurred_at=now, data=data)
