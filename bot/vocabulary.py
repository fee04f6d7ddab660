"""The one spelling of what decisions and audit rows do to a campaign (a leaf module: anything may import it)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["RULE_ACTS", "Act"]


class Act(StrEnum):
    """What a rule decides (`do:` in a rule file: the first four) and what an audit row records."""

    PAUSE = "pause"                 # place a hold; the campaign is paused while any hold remains
    RELEASE = "release"             # remove holds; the campaign resumes when none is left (if it was ours)
    NOTIFY = "notify"               # a notice only
    VENDOR_HOLD = "vendor_hold"     # record that the vendor paused it itself: never resumed over
    RESUME = "resume"               # a vendor resume (audit rows)
    OVERRIDE = "override"           # a person overrode campaign-guard (audit rows)


#: What a rule file's `do:` may say.
RULE_ACTS: Final = (Act.PAUSE, Act.RELEASE, Act.NOTIFY, Act.VENDOR_HOLD)
