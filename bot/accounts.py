"""Accounts: several credentials per vendor, each with its own settings block, client, channel and people.

An agency runs one Smartlead client key, or one Instantly workspace, per client. Each is an `Account`:
a vendor, a name, the vendor's settings block (key, base URL, webhook secret, rate limits), a client
label, a Slack channel and the Slack users allowed to pause, resume or approve its campaigns.

Where accounts come from (README, "Accounts"):
* every vendor's single-account block (`BOT_SMARTLEAD_API_KEY`, ...) is that vendor's `default` account,
  as before: refs stay `smartlead:123`. It exists while the vendor has no named account, or has a key;
* `BOT_ACCOUNTS_FILE`, a YAML list of named accounts (`accounts: [{vendor: smartlead, name: acme, ...}]`);
* indexed variables, one account per index: `BOT_ACCOUNT_1_VENDOR=smartlead`, `BOT_ACCOUNT_1_NAME=acme`,
  `BOT_ACCOUNT_1_API_KEY=...`, `BOT_ACCOUNT_1_SLACK_CHANNEL=C0ACME`, ...

A named account's campaigns are `vendor@account:id` (`smartlead@acme:123`): the account is part of the
campaign's identity, so ids that collide across accounts are two campaigns. A ref written without its
account (`smartlead:123`, as a plain webhook path or a person may write it) is placed by `Accounts.place`:
the one account whose key lists the campaign (the inventory), else refused with a clear error, never
guessed. Rate budgets are per account, or per `workspace` where the vendor counts that way (Instantly):
accounts naming the same workspace share one budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from bot.config import CoreSettings, vendor_field
from bot.errors import AccountError, AccountUnknown, ConfigError
from bot.events import ACCOUNT_NAME, DEFAULT_ACCOUNT, CampaignRef
from bot.vendors import registry
from bot.vendors.spec import VendorConfig, VendorSpec
from bot.yamlfile import read_section

__all__ = ["PERMISSIONS", "Account", "AccountError", "AccountUnknown", "Accounts", "load_accounts"]

#: What a Slack user may be allowed to do, each an allowlist (`BOT_SLACK_<NAME>_USERS`, `<name>_users`).
PERMISSIONS: Final = ("pause", "resume", "approve")
_INDEXED: Final = "BOT_ACCOUNT_"


@dataclass(frozen=True, slots=True)
class Account:
    """One credential of one vendor, and whom its campaigns belong to."""

    vendor: str
    name: str                                   # `default`: the vendor's `BOT_<VENDOR>_*` block
    config: VendorConfig
    client: str | None = None                   # a label people read (`Acme Corp`); rules select by it
    slack_channel: str | None = None            # notices of its campaigns (else BOT_SLACK_CHANNEL)
    #: permission → Slack user ids allowed on this account's campaigns only (besides BOT_SLACK_*_USERS)
    users: Mapping[str, frozenset[str]] = field(default_factory=dict)
    workspace: str | None = None                # accounts naming the same workspace share one rate budget

    @property
    def route(self) -> str:
        """`smartlead` for the default account, `smartlead@acme` for a named one (as in `CampaignRef.route`)."""
        return self.vendor if self.name == DEFAULT_ACCOUNT else f"{self.vendor}@{self.name}"

    @property
    def budget(self) -> str:
        """The rate budget this account's requests count against."""
        return f"{self.vendor}#{self.workspace}" if self.workspace else self.route

    def allows(self, user: str, permission: str) -> bool:
        return user in self.users.get(permission, frozenset())

    def ref(self, campaign_id: str) -> CampaignRef:
        return CampaignRef(vendor=self.vendor, id=campaign_id, account=self.name)


class Accounts:
    """Every configured account, by route; places campaigns in them."""

    def __init__(self, accounts: Iterable[Account]) -> None:
        self._by_route: dict[str, Account] = {}
        self._by_vendor: dict[str, list[Account]] = {}
        for account in accounts:
            if account.route in self._by_route:
                raise ConfigError(f"account {account.name!r} of {account.vendor} is configured twice")
            self._by_route[account.route] = account
            self._by_vendor.setdefault(account.vendor, []).append(account)
        #: vendors whose campaigns need no inventory to place: a ref means the default account's campaign
        self._default_only = {vendor for vendor, found in self._by_vendor.items()
                              if [a.name for a in found] == [DEFAULT_ACCOUNT]}

    def __iter__(self) -> Iterator[Account]:
        return iter(self._by_route.values())

    def __len__(self) -> int:
        return len(self._by_route)

    def get(self, route: str) -> Account | None:
        return self._by_route.get(route)

    def of_vendor(self, vendor: str) -> list[Account]:
        return list(self._by_vendor.get(vendor, ()))

    def account(self, ref: CampaignRef) -> Account | None:
        """The account of a placed ref (None: an account that is not configured)."""
        return self._by_route.get(ref.route)

    def secrets(self) -> list[str]:
        """Every account's secret values (its vendor's `secret` settings), for the log redactor."""
        spec_of = {spec.name: spec for spec in registry.specs()}
        return [secret for account in self for key in spec_of[account.vendor].secrets
                if (secret := account.config.secret(key)) is not None]

    def place(self, ref: CampaignRef, listed: Callable[[CampaignRef], bool]) -> CampaignRef:
        """The campaign `ref` means, with its account: `ref` itself when it names a configured account (or
        its vendor has only the default account); else the one account whose inventory `listed` it.
        Raises AccountError when several do (ambiguous), AccountUnknown when none does, and AccountError
        for an account that is not configured."""
        if ref.account is None and (ref.vendor in self._default_only or ref.vendor not in self._by_vendor):
            return ref
        accounts = self._by_vendor.get(ref.vendor, [])
        if ref.account is not None:
            if self.account(ref) is None:
                names = ", ".join(a.name for a in accounts) or "none"
                raise AccountError(f"{ref}: no {ref.vendor} account is named {ref.account!r} (configured: {names})")
            return ref
        found = [a.ref(ref.id) for a in accounts if listed(a.ref(ref.id))]
        if len(found) == 1:
            return found[0]
        names = ", ".join(a.name for a in accounts)
        if found:
            raise AccountError(f"{ref} is listed by several {ref.vendor} accounts ({', '.join(str(f) for f in found)}):"
                               f" write the one you mean, e.g. {found[0]}")
        raise AccountUnknown(f"{ref}: none of the {ref.vendor} accounts ({names}) lists campaign {ref.id} yet; "
                             f"write it {ref.vendor}@<account>:{ref.id}, or send its webhooks to "
                             f"/webhooks/{ref.vendor}/<account>")

    def channel(self, ref: CampaignRef | None, default: str | None) -> str | None:
        """The Slack channel of the campaign's account, else `default` (BOT_SLACK_CHANNEL)."""
        account = self.account(ref) if ref is not None else None
        return (account.slack_channel if account is not None else None) or default

    def client(self, ref: CampaignRef | None) -> str | None:
        account = self.account(ref) if ref is not None else None
        return account.client if account is not None else None


# ---------------------------------------------------------------------------------------------- loading


def _users(value: Any) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(str(item).strip() for item in items or () if str(item).strip())


class _Entry(BaseModel):
    """What every account entry has besides its vendor block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vendor: str
    name: str = Field(pattern=f"^{ACCOUNT_NAME.pattern}$")
    client: str | None = Field(None, max_length=200)
    slack_channel: str | None = Field(None, pattern=r"^[A-Za-z0-9#_-]{1,80}$")
    pause_users: frozenset[str] = frozenset()
    resume_users: frozenset[str] = frozenset()
    approve_users: frozenset[str] = frozenset()
    workspace: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,100}$")

    @field_validator("pause_users", "resume_users", "approve_users", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return _users(value) if isinstance(value, str | list | tuple) else value


def _entry_model(spec: VendorSpec) -> type[BaseModel]:
    """`_Entry` plus the vendor's settings block, each validated as `BOT_<VENDOR>_<KEY>` is."""
    fields: dict[str, Any] = {key: vendor_field(setting) for key, setting in spec.settings.items()}
    made: type[BaseModel] = create_model(f"{spec.display_name}Account", __base__=_Entry, **fields)
    return made


def _resolve_env(raw: dict[str, Any], where: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """`<key>_env: VARIABLE` → the variable's value as `<key>` (keys stay out of the accounts file)."""
    values = dict(raw)
    for name in [k for k in values if isinstance(k, str) and k.endswith("_env")]:
        variable = values.pop(name)
        key = name.removesuffix("_env")
        if key in values:
            raise ConfigError(f"{where}: give {key} or {name}, not both")
        if not isinstance(variable, str) or variable not in environ:
            raise ConfigError(f"{where}: {name}: environment variable {variable!r} is not set")
        values[key] = environ[variable]
    return values


def _account(raw: Any, where: str, environ: Mapping[str, str]) -> Account:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with vendor, name and the vendor's settings")
    spec = registry.get(str(raw.get("vendor", "")))
    if spec is None:
        raise ConfigError(f"{where}: vendor: expected one of {sorted(registry.names())}, got {raw.get('vendor')!r}")
    try:
        entry = _entry_model(spec).model_validate(_resolve_env(raw, where, environ))
    except ValidationError as exc:
        first = exc.errors()[0]
        field_name = ".".join(str(p) for p in first["loc"]) or "(entry)"
        raise ConfigError(f"{where}: {field_name}: {first['msg'].removeprefix('Value error, ')}") from None
    values = entry.model_dump()
    block = {key: getattr(entry, key) for key in spec.settings}
    return Account(spec.name, values["name"], VendorConfig(spec.name, block), values["client"],
                   values["slack_channel"], {p: values[f"{p}_users"] for p in PERMISSIONS}, values["workspace"])


def _file_entries(path: Path) -> list[tuple[str, Any]]:
    entries = read_section(path, "accounts", list, "the accounts file: vendor, name, api_key_env, ...")
    return [(f"{path}: accounts[{i}]", entry) for i, entry in enumerate(entries)]


def _indexed_entries(environ: Mapping[str, str]) -> list[tuple[str, Any]]:
    """`BOT_ACCOUNT_<N>_<KEY>` → one entry per N, in index order."""
    by_index: dict[int, dict[str, str]] = {}
    for variable, value in environ.items():
        if not variable.startswith(_INDEXED):
            continue
        index, sep, key = variable.removeprefix(_INDEXED).partition("_")
        if not sep or not index.isdigit() or not key:
            raise ConfigError(f"{variable}: expected {_INDEXED}<N>_<SETTING>, e.g. {_INDEXED}1_API_KEY")
        by_index.setdefault(int(index), {})[key.lower()] = value
    return [(f"{_INDEXED}{i}_*", by_index[i]) for i in sorted(by_index)]


def load_accounts(settings: CoreSettings, environ: Mapping[str, str] | None = None) -> Accounts:
    """Every account these settings configure (see the module docstring); ConfigError naming the entry."""
    environ = os.environ if environ is None else environ
    path = settings.accounts_file
    entries = (_file_entries(path) if path is not None else []) + _indexed_entries(environ)
    named: list[Account] = []
    for where, raw in entries:
        account = _account(raw, where, environ)
        if any(a.route == account.route for a in named):
            raise ConfigError(f"{where}: account {account.name!r} of {account.vendor} is configured twice")
        named.append(account)
    defaults = []
    for spec in settings.vendors():
        config = settings.vendor(spec.name)
        mine = [a for a in named if a.vendor == spec.name]
        if any(a.name == DEFAULT_ACCOUNT for a in mine):
            if config.api_key is not None:
                raise ConfigError(f"{spec.env('api_key')} and an account named default of {spec.name} are both "
                                  "configured: keep one")
            continue
        if not mine or config.api_key is not None:
            defaults.append(Account(spec.name, DEFAULT_ACCOUNT, config))
    return Accounts([*defaults, *named])
