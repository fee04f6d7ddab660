"""The daily digest of one channel, as Block Kit (posted by bot.digest) and as plain text (`campaign-guard
digest`): the same content, rendered twice. Pure: a `Digest` in, a message or a text out.

Within Slack's limits: a header of at most 150 characters, sections of at most 3,000, at most 50 blocks
(each list is cut, with how many more there are and where to read them all). Texts from the records (a
rule's reason, a vendor's error) are escaped for mrkdwn, as every notice's are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final

from bot.slack.blocks import esc

__all__ = ["MAX_BLOCKS", "SECTIONS", "Digest", "Line", "Section", "daily_message", "daily_text"]

#: section key → (title with its emoji, title in plain text), in the order they are shown
SECTIONS: Final = {
    "paused": (":octagonal_sign: Paused", "Paused"),
    "resumed": (":arrow_forward: Resumed", "Resumed"),
    "approvals": (":raised_hand: Waiting for approval", "Waiting for approval"),
    "mailboxes": (":mailbox_with_no_mail: Unhealthy mailboxes", "Unhealthy mailboxes"),
    "warnings": (":warning: Warnings", "Warnings"),
    "shadow": (":ghost: Shadow mode: would have", "Shadow mode: would have"),
}
_SUMMARY: Final = {"paused": "paused", "resumed": "resumed", "approvals": "waiting for approval",
                   "mailboxes": "unhealthy mailbox(es)", "warnings": "warning(s)", "shadow": "shadow decision(s)"}
MAX_BLOCKS: Final = 50
_HEADER: Final = 150
_SECTION: Final = 2900          # of Slack's 3,000 per section text, room for the "… and N more" line
_LINE: Final = 300
_BLOCKS_PER_SECTION: Final = 4  # 6 sections x (divider + 4) + 4 around them: 34, within MAX_BLOCKS


@dataclass(frozen=True, slots=True)
class Line:
    """One thing that happened (or waits): plain text from the records, about a campaign or not, at a time."""

    text: str
    campaign: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Section:
    key: str                     # a key of SECTIONS
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class Digest:
    """One channel's day: `channel` None for what no Slack channel receives (printed by the CLI only)."""

    channel: str | None
    start: datetime
    end: datetime
    zone: tzinfo
    sections: tuple[Section, ...]        # the non-empty ones, in SECTIONS order
    accounts: tuple[str, ...] = ()       # the accounts (routes) whose campaigns are told here

    def count(self, key: str) -> int:
        return next((len(s.lines) for s in self.sections if s.key == key), 0)

    @property
    def quiet(self) -> bool:
        return not self.sections


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(digest: Digest, at: datetime, fmt: str = "%H:%M") -> str:
    return at.astimezone(digest.zone).strftime(fmt)


def _span(digest: Digest) -> str:
    return (f"{_when(digest, digest.start, '%Y-%m-%d %H:%M')} → {_when(digest, digest.end, '%Y-%m-%d %H:%M')} "
            f"{digest.zone}")


def _summary(digest: Digest) -> list[str]:
    return [f"{digest.count(key)} {words}" for key, words in _SUMMARY.items()]


def _mrkdwn(digest: Digest, line: Line) -> str:
    when = f"{_when(digest, line.at)} " if line.at else ""
    subject = f"`{esc(line.campaign)}` — " if line.campaign else ""
    return _cut(f"• {when}{subject}{esc(line.text)}", _LINE)


def _section_blocks(digest: Digest, section: Section) -> list[dict[str, Any]]:
    """The section's lines in as few section blocks as fit, at most _BLOCKS_PER_SECTION."""
    heading = f"*{SECTIONS[section.key][0]}* ({len(section.lines)})"
    texts: list[str] = [heading]
    shown = 0
    for line in section.lines:
        rendered = _mrkdwn(digest, line)
        if len(texts[-1]) + 1 + len(rendered) > _SECTION:
            if len(texts) == _BLOCKS_PER_SECTION:
                break
            texts.append(rendered)
        else:
            texts[-1] += "\n" + rendered
        shown += 1
    if shown < len(section.lines):
        texts[-1] += f"\n… and {len(section.lines) - shown} more: `campaign-guard digest` lists them all"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in texts]


def daily_message(digest: Digest) -> dict[str, Any]:
    """The digest as one channel message (`text` is the notification's fallback)."""
    day = _when(digest, digest.end, "%a %d %b %Y")
    accounts = f" · accounts {', '.join(digest.accounts)}" if digest.accounts else ""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(f"campaign-guard daily digest · {day}",
                                                                         _HEADER)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(esc(_span(digest) + accounts), 300)}]},
    ]
    if digest.quiet:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            "Nothing to report: no pause, resume, pending approval, unhealthy mailbox, warning or shadow decision "
            "in these 24 hours.")}})
    else:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": " · ".join(_summary(digest))}})
    for section in digest.sections:
        blocks.append({"type": "divider"})
        blocks += _section_blocks(digest, section)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        "campaign-guard · daily digest · the same in a terminal: `campaign-guard digest`")}]})
    text = f"campaign-guard daily digest {day}: " + ("nothing to report" if digest.quiet else
                                                       ", ".join(_summary(digest)))
    return {"text": _cut(text, 3000), "blocks": blocks[:MAX_BLOCKS]}


def daily_text(digest: Digest) -> str:
    """The digest as plain text: every line, nothing cut."""
    where = f"channel {digest.channel}" if digest.channel else "no Slack channel (BOT_SLACK_CHANNEL is not set)"
    accounts = f" · accounts {', '.join(digest.accounts)}" if digest.accounts else ""
    out = [f"campaign-guard daily digest · {where}{accounts}", _span(digest)]
    out.append("nothing to report" if digest.quiet else " · ".join(_summary(digest)))
    for section in digest.sections:
        out.append(f"{SECTIONS[section.key][1]} ({len(section.lines)})")
        for line in section.lines:
            when = _when(digest, line.at, "%m-%d %H:%M") if line.at else " " * 11
            out.append(f"  {when}  {line.campaign or '-':<28} {line.text}")
    return "\n".join(out)
