"""The canonical event and campaign reference: the one shape every source is normalized into."""

from __future__ import annotations

import re
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    model_serializer,
    model_validator,
)

__all__ = [
    "ACCOUNT_NAME",
    "DEFAULT_ACCOUNT",
    "EVENT_TYPES",
    "SOURCES",
    "VENDORS",
    "CampaignRef",
    "Event",
    "campaign_id_pattern",
    "utcnow",
]

class _Names(AbstractSet[str]):
    """A live view of names: the registered vendors (`bot.vendors.registry`), plus `others`.

    Read on each use, not copied at import, because the registry imports this module (its webhook
    normalizers make `Event`s) and a test may register a vendor of its own."""

    def __init__(self, others: frozenset[str] = frozenset()) -> None:
        self._others = others

    def _names(self) -> frozenset[str]:
        names: frozenset[str] = _registry().names()
        return names | self._others

    def __contains__(self, item: object) -> bool:
        return item in self._others or (isinstance(item, str) and _registry().known(item))

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names()))

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"{{{', '.join(map(repr, self))}}}"


#: Vendors the bot can act on: one package each (bot.vendors.registry).
VENDORS: Final[AbstractSet[str]] = _Names()

#: Where events come from: each vendor, `events` (the user's own systems posting canonical events),
#: Slack and the monitoring sources.
SOURCES: Final[AbstractSet[str]] = _Names(frozenset({"events", "slack", "alertmanager", "grafana"}))


def campaign_id_pattern(vendor: str) -> re.Pattern[str] | None:
    """The shape of `vendor`'s campaign ids (validated before any URL is built); None for no vendor."""
    spec = _registry().get(vendor)
    return spec.campaign_id if spec is not None else None


def _registry() -> ModuleType:
    """`bot.vendors.registry`, imported on first use (it imports this module: see `_Names`); every event's
    validation asks it twice, and an import statement in a function costs more than the question."""
    global _REGISTRY
    if _REGISTRY is None:
        from bot.vendors import registry  # here: see _Names
        _REGISTRY = registry
    return _REGISTRY


_REGISTRY: ModuleType | None = None


#: Canonical event types and what they mean. Sources map vendor vocabularies onto these; a vendor
#: event with no equivalent becomes `vendor.other` (accepted, recorded, matched by no shipped rule).
EVENT_TYPES: Final[dict[str, str]] = {
    "email.sent": "an email of the campaign was sent",
    "email.opened": "a recipient opened an email",
    "email.clicked": "a recipient clicked a link",
    "email.replied": "a recipient replied",
    "email.bounced": "an email bounced (data.bounce_type: hard|soft when known)",
    "email.complained": "a recipient marked an email as spam",
    "lead.unsubscribed": "a lead unsubscribed",
    "lead.category_updated": "a lead's category changed",
    "account.disconnected": "a sending account lost its connection (data.account, data.email)",
    "campaign.started": "the vendor reports the campaign started or resumed",
    "campaign.paused": "the vendor reports the campaign paused (data.by: user|system when known)",
    "campaign.completed": "the vendor reports the campaign completed",
    "campaign.bounce_threshold": "the vendor reports its own bounce threshold breached",
    "campaign.metrics": "a campaign's numbers: posted by the user's systems, or polled from the vendor's own analytics "
                        "(bot.polling; data: sent, bounced, replied, opened, unsubscribed, bounce_rate, "
                        "reply_rate, started_at, period)",
    "account.health": "a sending mailbox's health polled from the vendor (bot.polling; data: email, account_id, route, "
                      "smtp_ok, imap_ok, reputation, warmup_blocked, healthy, problems, period)",
    "alert.firing": "a monitoring alert fires (data: fingerprint, alertname, status, labels, annotations)",
    "alert.resolved": "a monitoring alert resolved (same data as alert.firing)",
    "command.pause": "a person asked in Slack to pause campaigns (data: campaigns, reason, user_id, response_url)",
    "command.resume": "a person asked in Slack to resume campaigns (data: campaigns, user_id, response_url)",
    "command.status": "a person asked in Slack for campaigns' status (data: campaigns, user_id, response_url)",
    "command.list": "a person asked in Slack for paused or held campaigns (data: filter, scope, scope_value, "
                    "user_id, response_url)",
    "command.history": "a person asked in Slack for campaigns' audit history (data: campaigns, response_url)",
    "interaction.clicked": "a person clicked a button of a Slack notice (data: action, campaign, decision_id, "
                           "user_id, response_url)",
    "vendor.other": "a vendor event type campaign-guard has no meaning for (data.vendor_type)",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


#: An account name (`bot.accounts`): lower-case letters, digits, `_` and `-`.
ACCOUNT_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
#: The account of a vendor's single-account settings block (`BOT_<VENDOR>_API_KEY`), never written in a ref.
DEFAULT_ACCOUNT: Final = "default"


class CampaignRef(BaseModel):
    """A campaign, written `vendor:id` everywhere (`smartlead:123`, `leadterra:camp_1`, `inbox:abc`), or
    `vendor@account:id` (`smartlead@acme:123`) for a campaign of a named account (bot.accounts).

    `account` None is the vendor's default account (its `BOT_<VENDOR>_*` block); `smartlead@default:1` is
    read as `smartlead:1`. The text is the campaign's identity in the state store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vendor: str
    id: str
    account: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            head, sep, campaign_id = value.partition(":")
            if not sep:
                raise ValueError(f"campaign must be written vendor:id, got {value[:80]!r}")
            vendor, at, account = head.partition("@")
            return {"vendor": vendor, "id": campaign_id, **({"account": account} if at else {})}
        return value

    @model_validator(mode="after")
    def _check_id(self) -> CampaignRef:
        pattern = campaign_id_pattern(self.vendor)
        if pattern is None:
            raise ValueError(f"unknown vendor {self.vendor[:40]!r}; expected one of {sorted(VENDORS)}")
        if not pattern.fullmatch(self.id):
            raise ValueError(f"invalid {self.vendor} campaign id {self.id[:80]!r}")
        if self.account is not None:
            if not ACCOUNT_NAME.fullmatch(self.account):
                raise ValueError(f"invalid account name {self.account[:40]!r}: lower-case letters, digits, _ and -")
            if self.account == DEFAULT_ACCOUNT:
                object.__setattr__(self, "account", None)
        return self

    @model_serializer
    def _to_text(self) -> str:
        return str(self)

    @classmethod
    def parse(cls, text: str) -> CampaignRef:
        """Validate `vendor:id` or `vendor@account:id` text; raises pydantic.ValidationError (a ValueError)."""
        return cls.model_validate(text)

    @property
    def route(self) -> str:
        """Which credential acts on the campaign: `smartlead` (the default account) or `smartlead@acme`."""
        return f"{self.vendor}@{self.account}" if self.account else self.vendor

    @property
    def account_name(self) -> str:
        return self.account or DEFAULT_ACCOUNT

    def of_account(self, account: str | None) -> CampaignRef:
        """The same campaign id at `account` (None or `default`: the default account)."""
        return CampaignRef(vendor=self.vendor, id=self.id,
                           account=None if account in (None, DEFAULT_ACCOUNT) else account)

    def __str__(self) -> str:
        return f"{self.route}:{self.id}"


class Event(BaseModel):
    """One normalized fact. `id` is stable for a given input, so redeliveries dedupe on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=1, ge=1, le=1)
    id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
    source: str
    occurred_at: AwareDatetime
    campaign: CampaignRef | None = None
    data: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_source(self) -> Event:
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source[:40]!r}; expected one of {sorted(SOURCES)}")
        return self

    @property
    def routing_key(self) -> str:
        """Topic routing key: `<source>.<type>`, e.g. `smartlead.email.bounced`."""
        return f"{self.source}.{self.type}"
