"""Campaign inventory: which campaigns send from which accounts, for sender/domain/vendor scopes.

Sources, merged: a static mapping file (`BOT_INVENTORY_FILE`, for what vendors do not tell), and what
events show (a Smartlead `EMAIL_SENT` names its campaign and sending account), persisted in the state
store so it survives restarts. Lookups are in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import ValidationError

from bot.engine import Target, key_value
from bot.errors import ConfigError
from bot.events import DEFAULT_ACCOUNT, CampaignRef, Event
from bot.yamlfile import read_section

__all__ = ["Inventory", "load_inventory_file"]


def load_inventory_file(path: Path) -> dict[str, set[str]]:
    """Read `campaigns: {vendor:id: [sender@domain, ...]}`; ConfigError naming the entry on mistakes."""
    campaigns = read_section(path, "campaigns", dict, "the inventory: vendor:id mapped to a list of sender emails")
    mapping: dict[str, set[str]] = {}
    for ref, senders in campaigns.items():
        try:
            key = str(CampaignRef.parse(str(ref)))
        except ValidationError as exc:
            raise ConfigError(f"{path}: campaigns.{ref}: {exc.errors()[0]['msg']}") from None
        if not isinstance(senders, list) or not all(isinstance(s, str) and "@" in s for s in senders):
            raise ConfigError(f"{path}: campaigns.{ref}: expected a list of sender emails")
        mapping[key] = {s.strip().lower() for s in senders}
    return mapping


def _within(campaign: str, scope: str) -> bool:
    """Is `campaign` (`vendor[@account]:id`) of `scope`: a vendor (`smartlead`: every account's campaigns)
    or one account (`smartlead@acme`; `smartlead@default`: the default account's)?"""
    vendor, at, account = scope.partition("@")
    head = campaign.partition(":")[0]
    own_vendor, _, own_account = head.partition("@")
    return own_vendor == vendor and (not at or (own_account or DEFAULT_ACCOUNT) == account)


class Inventory:
    """Campaign → sender accounts, answering `which campaigns does this target mean?`."""

    def __init__(self, mapping: Mapping[str, Iterable[str]] | None = None) -> None:
        self._senders: dict[str, set[str]] = {}
        for campaign, senders in (mapping or {}).items():
            for sender in senders:
                self.add(campaign, sender)

    def add(self, campaign: str, sender: str | None = None) -> bool:
        """Record a campaign (and a sender it uses); True when that was new."""
        senders = self._senders.setdefault(campaign, set())
        if sender is None or sender in senders:
            return False
        senders.add(sender)
        return True

    def observe(self, event: Event) -> tuple[str, str] | None:
        """Learn (campaign, sender) from an event; returns the pair when it was new."""
        if event.campaign is None:
            return None
        sender = key_value("sender_account", event)
        campaign = str(event.campaign)
        if self.add(campaign, sender) and sender is not None:
            return campaign, sender
        return None

    def resolve(self, targets: Iterable[Target]) -> list[CampaignRef]:
        """Every known campaign a set of targets designates, sorted, without duplicates.

        A sender account or domain designates the campaigns of the target's vendor only (a Smartlead
        account's trouble says nothing of a Leadterra campaign that sends from the same address), and of
        its account when the target names one (`smartlead@acme`: the event came from that account); with
        no vendor known (an alert naming a sender but no `vendor` label), those of every vendor.
        """
        found: set[str] = set()
        for target in targets:
            if target.scope == "campaign":
                try:
                    found.add(str(CampaignRef.parse(target.value)))
                except ValidationError:
                    continue
            elif target.scope == "vendor":
                found.update(c for c in self._senders if _within(c, target.value))
            elif target.scope in ("sender_account", "sender_domain"):
                scoped = [(c, senders) for c, senders in self._senders.items()
                          if not target.vendor or _within(c, target.vendor)]
                if target.scope == "sender_account":
                    found.update(c for c, senders in scoped if target.value in senders)
                else:
                    found.update(c for c, senders in scoped if any(s.rpartition("@")[2] == target.value
                                                                    for s in senders))
        return [CampaignRef.parse(c) for c in sorted(found)]

    def listed(self, ref: CampaignRef) -> bool:
        """Does the inventory know this campaign (of this account)? What `Accounts.place` asks."""
        return str(ref) in self._senders

    def senders(self, campaign: str) -> frozenset[str]:
        return frozenset(self._senders.get(campaign, ()))

    def __len__(self) -> int:
        return len(self._senders)

    def __contains__(self, campaign: object) -> bool:
        return campaign in self._senders
