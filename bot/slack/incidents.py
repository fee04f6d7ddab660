"""Which notices make an incident: one Slack message per campaign's trouble, edited in place.

An incident runs from the first notice that pauses a campaign, parks its pause for approval or warns about
it, until the notice that it runs again or is let go (resumed, resumed by a person, a parked pause expired).
Every notice about the campaign in between edits that one message and is told in its thread; the next
pause starts a new message. Pure: a notice in, its phase out (bot.slack.delivery files it, bot.state.outbox
keeps the incident).

A notice does not say whether it came from a pause or a resume (bot.reconciler words the resume path's
`skipped`, `unproven` and `dry_run` notices itself): those are told apart by their text here, the one place
that knows it. An incident that no notice ends (a pause that was not campaign-guard's is let go silently)
closes once it stayed quiet for `QUIET`: the next opening notice starts a new message.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Final

from bot.notify import Notice

__all__ = ["QUIET", "Phase", "phase"]

#: An open incident whose newest notice is older than this is over: an opening notice starts a new message.
QUIET: Final = timedelta(hours=24)


class Phase(StrEnum):
    """What a notice does to its campaign's incident."""

    OPEN = "open"           # starts one when none is open, else joins it
    UPDATE = "update"       # joins the open one, else is a message of its own
    CLOSE = "close"         # joins and ends the open one, else is a message of its own


#: Kinds that pause, park or warn about a campaign.
_OPENING: Final = frozenset({"paused", "confirmed", "dry_run", "carried_live", "pending_decision", "unproven",
                             "skipped", "failed", "rule_notice", "warning", "suppressed", "drift"})
#: Kinds that say a campaign runs again or is let go.
_CLOSING: Final = frozenset({"resumed", "override", "decision_expired"})
#: bot.reconciler's resume path (no hold is left): "dry run: would have resumed …", "resume sent; …",
#: and the reasons it did not resume (`_not_resumed`)
_RESUME_PATH: Final = re.compile(
    r"^(dry run: would have resumed|resume sent|already active|campaign is \S+: never resumed automatically"
    r"|\S+ shows the campaign changed since campaign-guard paused it)")


def phase(notice: Notice) -> Phase | None:
    """The notice's phase; None when it belongs to no incident (no campaign, or a shadow decision: digested)."""
    if notice.campaign is None or notice.kind == "shadow":
        return None
    if notice.kind in _CLOSING:
        return Phase.CLOSE
    if notice.kind in ("skipped", "unproven", "dry_run") and _RESUME_PATH.match(notice.text):
        return Phase.CLOSE
    return Phase.OPEN if notice.kind in _OPENING else Phase.UPDATE
