"""The simulated Smartlead's data beyond campaigns: analytics counts and mailboxes (docs/vendors.md §1.4, §1.5).

`bot.testing.VendorSimulator` keeps campaigns only; this module keeps, per simulator, what Smartlead's
analytics and email-account endpoints serve, and is how a test (or the `/_sim/smartlead/` control routes,
`bot.vendors.smartlead.sim_control`) sets it:

    set_campaign_stats(sim, "smartlead:1", sent=500, bounced=8, replied=45, first_sent_at=when)
    add_mailbox(sim, "ana@sales.example", campaigns=["smartlead:1"], smtp_ok=False, reputation=62)

Counts are set per sequence step (`sequence`, default 1); a campaign's totals are the sum of its steps.
Counts belong to the campaign object they were set on: a campaign removed (or `sim.reset()`) and added
again has none. `first_sent_at` (default: the campaign's `created_at`) dates the activity, which the
simulator spreads evenly over the days from then to today (`sim.wall`) to answer date-filtered reads.

A mailbox is every sender email some campaign lists in `accounts` (healthy defaults) plus each one
added here; `add_mailbox` also puts it on the campaigns named (so `GET /campaigns/{id}/email-accounts`
lists it). A key sees a mailbox it owns (`key`), one without an owner, and every mailbox on a campaign it
sees. Mailboxes added here outlive `sim.reset()`; `forget(sim)` drops them and every count.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final
from weakref import WeakKeyDictionary

from bot.events import CampaignRef

if TYPE_CHECKING:        # not at run time: importing bot.testing loads the simulators, this one included
    from bot.testing.sim_core import SimCampaign
    from bot.testing.simulator import VendorSimulator

__all__ = ["COUNTS", "CampaignStats", "SimMailbox", "StepCounts", "account_id", "add_mailbox", "added_mailboxes",
           "campaign_stats", "first_day", "forget", "mailbox", "set_campaign_stats", "visible_mailboxes"]

#: the per-step counts of `GET /campaigns/{id}/statistics` (§1.4)
COUNTS = ("sent", "opened", "clicked", "replied", "unsubscribed", "bounced")


def account_id(email: str) -> int:
    """A mailbox's id: stable for its (case-insensitive) address, six digits."""
    return zlib.crc32(email.lower().encode()) % 900_000 + 100_000


@dataclass
class StepCounts:
    """One sequence step's counts."""

    sent: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    unsubscribed: int = 0
    bounced: int = 0

    def add(self, other: StepCounts) -> StepCounts:
        return StepCounts(*(getattr(self, name) + getattr(other, name) for name in COUNTS))


@dataclass
class CampaignStats:
    """A campaign's analytics as the simulator serves them."""

    campaign: SimCampaign = field(repr=False)          # the campaign object these counts were set on
    steps: dict[int, StepCounts] = field(default_factory=dict)
    positive_replied: int = 0
    unique_leads: int | None = None                   # None: the campaign's `leads`
    unique_opens: int | None = None                   # None: the opens
    first_sent_at: datetime | None = None             # None: the campaign's `created_at`

    def total(self) -> StepCounts:
        result = StepCounts()
        for counts in self.steps.values():
            result = result.add(counts)
        return result


@dataclass
class SimMailbox:
    """One sending mailbox and its health as Smartlead reports it (§1.5). No credential is stored: the
    simulator makes up fake passwords when it serves the account."""

    email: str
    owner: str | None = field(default=None, repr=False)     # a key, as for campaigns
    from_name: str | None = None                             # None: from the address
    type: str = "SMTP"                                       # GMAIL | OUTLOOK | SMTP
    message_per_day: int = 40
    daily_sent_count: int = 0
    smtp_ok: bool = True
    imap_ok: bool = True
    smtp_failure_error: str | None = None
    imap_failure_error: str | None = None
    warmup_status: str = "ACTIVE"                            # ACTIVE | INACTIVE | BLOCKED
    reputation: int = 100                                    # 0-100
    warmup_sent: int = 0
    warmup_spam: int = 0
    warmup_reply_rate: int = 0
    blocked_reason: str | None = None
    warmup_blocked: bool = False

    @property
    def id(self) -> int:
        return account_id(self.email)


#: health field → the types it takes (from its annotation: "bool", "int", "str", "str | None")
_SETTABLE: Final = {f.name: tuple({"bool": bool, "int": int, "str": str, "None": type(None)}[part.strip()]
                                  for part in str(f.type).split("|"))
                    for f in fields(SimMailbox) if f.name not in ("email", "owner")}


def _check_health(health: dict[str, Any]) -> None:
    unknown = set(health) - set(_SETTABLE)
    if unknown:
        raise ValueError(f"unknown mailbox fields: {sorted(unknown)}")
    for name, value in health.items():
        kinds = _SETTABLE[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"{name} must be {' or '.join(k.__name__ for k in kinds)}")


@dataclass
class _Data:
    stats: dict[str, CampaignStats] = field(default_factory=dict)
    mailboxes: dict[str, SimMailbox] = field(default_factory=dict)      # lower-cased email → mailbox


_DATA: WeakKeyDictionary[VendorSimulator, _Data] = WeakKeyDictionary()


def _data(sim: VendorSimulator) -> _Data:
    found = _DATA.get(sim)
    if found is None:
        found = _DATA[sim] = _Data()
    return found


def _smartlead(sim: VendorSimulator, ref: str) -> SimCampaign:
    if CampaignRef.parse(ref).vendor != "smartlead":
        raise ValueError(f"{ref!r} is not a Smartlead campaign")
    return sim.campaign(ref)


def set_campaign_stats(
    sim: VendorSimulator, ref: str, *, sequence: int = 1, sent: int = 0, opened: int = 0, clicked: int = 0,
    replied: int = 0, unsubscribed: int = 0, bounced: int = 0, positive_replied: int | None = None,
    unique_leads: int | None = None, unique_opens: int | None = None, first_sent_at: datetime | None = None,
) -> CampaignStats:
    """Set the counts of one sequence step (1-20) of an existing Smartlead campaign; the campaign-wide values
    (`positive_replied`, `unique_leads`, `unique_opens`, `first_sent_at`) change only when given."""
    campaign = _smartlead(sim, ref)
    counts = StepCounts(sent, opened, clicked, replied, unsubscribed, bounced)
    if not 1 <= sequence <= 20 or any(getattr(counts, name) < 0 for name in COUNTS):
        raise ValueError("sequence must be 1-20 and counts not negative")
    if first_sent_at is not None and first_sent_at.tzinfo is None:
        raise ValueError("first_sent_at must be timezone-aware")
    stats = campaign_stats(sim, campaign) or CampaignStats(campaign)
    stats.steps[sequence] = counts
    if positive_replied is not None:
        stats.positive_replied = positive_replied
    if unique_leads is not None:
        stats.unique_leads = unique_leads
    if unique_opens is not None:
        stats.unique_opens = unique_opens
    if first_sent_at is not None:
        stats.first_sent_at = first_sent_at
    _data(sim).stats[campaign.ref] = stats
    return stats


def campaign_stats(sim: VendorSimulator, campaign: SimCampaign) -> CampaignStats | None:
    """The counts set on this very campaign object, if any."""
    stats = _data(sim).stats.get(campaign.ref)
    return stats if stats is not None and stats.campaign is campaign else None


def first_day(stats: CampaignStats) -> date:
    """The day a campaign's activity starts: `first_sent_at`, else its `created_at`."""
    if stats.first_sent_at is not None:
        return stats.first_sent_at.astimezone(UTC).date()
    return datetime.fromisoformat(stats.campaign.created_at).astimezone(UTC).date()


def add_mailbox(sim: VendorSimulator, email: str, *, campaigns: Iterable[str] = (), key: str | None = None,
                **health: Any) -> SimMailbox:
    """Add (or replace) a mailbox with `health` (fields of `SimMailbox`: smtp_ok, reputation, ...) and put it on
    the Smartlead `campaigns` named (refs). `key`: the key that owns it (accepted from now on)."""
    if "@" not in email:
        raise ValueError("a mailbox needs an email address")
    _check_health(health)
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError("key must be a non-empty string or None")
    targets = [_smartlead(sim, ref) for ref in campaigns]
    mailbox = SimMailbox(email, owner=key, **health)
    _data(sim).mailboxes[email.lower()] = mailbox
    if key is not None:
        sim.keys["smartlead"].add(key)
    for campaign in targets:
        if email.lower() not in {a.lower() for a in campaign.accounts}:
            campaign.accounts.append(email)
    return mailbox


def mailbox(sim: VendorSimulator, email: str) -> SimMailbox:
    """The mailbox added for `email`, else a healthy one (a sender listed by some campaign)."""
    return _data(sim).mailboxes.get(email.lower()) or SimMailbox(email)


def added_mailboxes(sim: VendorSimulator) -> list[SimMailbox]:
    """The mailboxes added with `add_mailbox`, in the order they were added."""
    return list(_data(sim).mailboxes.values())


def visible_mailboxes(sim: VendorSimulator, key: str) -> list[tuple[SimMailbox, list[SimCampaign]]]:
    """Every mailbox `key` sees, by id, with the campaigns it rotates on that `key` sees."""
    campaigns = sim.visible_campaigns("smartlead", key)
    seen: dict[str, tuple[SimMailbox, list[SimCampaign]]] = {}
    for lower, added in _data(sim).mailboxes.items():
        if added.owner is None or added.owner == key:
            seen[lower] = (added, [])
    for campaign in campaigns:
        for email in campaign.accounts:
            entry = seen.setdefault(email.lower(), (mailbox(sim, email), []))
            if not any(listed is campaign for listed in entry[1]):
                entry[1].append(campaign)
    return sorted(seen.values(), key=lambda entry: entry[0].id)


def forget(sim: VendorSimulator) -> None:
    """Drop every count and every added mailbox of `sim`."""
    _DATA.pop(sim, None)
