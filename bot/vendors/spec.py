"""What a vendor is to the rest of campaign-guard: one `VendorSpec`, exported by its package.

Pure data: importing a spec imports no HTTP machinery. The webhook normalizer and authenticator are
pure functions and referenced directly; the client factory and the simulator's handlers need aiohttp,
so they are named as `"module:attribute"` and imported only where they are used (`bot.vendors.build`,
`bot.testing`). That is what lets the web edge, `bot.config` and `bot.events` read the registry
(`bot.vendors.registry`) without ever importing a client.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import SecretStr

from bot.events import Event
from bot.sources.auth import AuthResult, WebhookRequest
from bot.vendors.base import CampaignStatus

__all__ = ["Authenticator", "Normalizer", "Setting", "SettingKind", "VendorConfig", "VendorSpec", "resolve"]

#: A webhook normalizer: parsed JSON body and the time it arrived → events (pure, raises PayloadError).
Normalizer = Callable[[Any, datetime], list[Event]]
#: A webhook authenticator: the request and the vendor's own settings → verdict (pure, fails closed).
Authenticator = Callable[[WebhookRequest, "VendorConfig"], AuthResult]

#: secret: `SecretStr | None`, an empty value is unset; url: http(s) URL; rate: `REQUESTS/SECONDS`;
#: path: a path template holding `{id}` once; text: any string.
SettingKind = Literal["secret", "url", "rate", "path", "text"]


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting of a vendor's block: `BOT_<VENDOR>_<KEY>` in the environment."""

    kind: SettingKind
    default: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class VendorConfig:
    """A vendor's settings block as configured (`Settings.vendor(name)`): values by key."""

    name: str
    values: Mapping[str, Any]
    #: the rate budget its requests count against where a vendor shares one among keys (an Instantly
    #: workspace: `bot.accounts.Account.budget`); None: the credential's own
    budget: str | None = None

    def secret(self, key: str) -> str | None:
        """The secret's value, None when it is unset or empty."""
        value = self.values.get(key)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return text if isinstance(text, str) and text else None

    def text(self, key: str) -> str:
        return str(self.values[key])

    def rate(self, key: str = "rate_limit") -> tuple[int, float]:
        """(`requests`, `per seconds`) of a `rate` setting."""
        count, _, seconds = self.text(key).partition("/")
        return int(count), float(seconds)

    @property
    def api_key(self) -> SecretStr | None:
        value = self.values.get("api_key")
        return value if isinstance(value, SecretStr) and value.get_secret_value() else None

    @property
    def base_url(self) -> str:
        return self.text("base_url").rstrip("/")


@dataclass(frozen=True, slots=True)
class VendorSpec:
    """Everything campaign-guard knows about one vendor. See README, "Adding a vendor"."""

    name: str                                   # `smartlead`: campaign refs, URL paths, BOT_SMARTLEAD_*
    display_name: str                           # `Smartlead`: what people read (Slack)
    campaign_id: re.Pattern[str]                # ids are validated with it before any URL is built
    statuses: Mapping[str, CampaignStatus]      # the vendor's status words → the common model
    base_url: str                               # production base URL (ends where the vendor's paths begin)
    rate_limits: Mapping[str, tuple[int, float]]  # setting key → default (requests, seconds), per credential
    normalize: Normalizer                       # webhook body → events
    authenticate: Authenticator                 # webhook request → verdict
    #: a `bot.vendors.build.ClientFactory`, named "module:attribute" (the built-in vendors: so that reading
    #: the registry imports no client) or given (a vendor defined in a test)
    client: str | Callable[..., Any]
    simulator: str | None = None                # "module:attribute", a `bot.testing.sim_spec.SimVendor`
    can_read_state: bool = True                 # False: no read endpoint (Leadterra)
    #: what can open its webhook intake (else it answers 401, said at start): BOT_WEBHOOK_TOKEN, when
    #: `webhook_token`, or any of its own `webhook_secrets` settings
    webhook_token: bool = True
    webhook_secrets: tuple[str, ...] = ()
    #: settings beyond api_key, base_url and the rate limits (webhook_secret, paths, ...)
    extra_settings: Mapping[str, Setting] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Setting]:
        """The whole settings block, by key: `api_key`, `base_url`, each rate limit, then the extras."""
        block = {"api_key": Setting("secret", description=f"{self.display_name} API key"),
                 "base_url": Setting("url", self.base_url)}
        block |= {key: Setting("rate", f"{n}/{s:g}") for key, (n, s) in self.rate_limits.items()}
        return block | dict(self.extra_settings)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The keys of the block the log redactor must know (its `secret` settings)."""
        return tuple(key for key, setting in self.settings.items() if setting.kind == "secret")

    def env(self, key: str) -> str:
        """The environment variable of a setting: `BOT_SMARTLEAD_API_KEY`."""
        return f"BOT_{self.name.upper()}_{key.upper()}"


_TARGET: Final = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def resolve(target: str | Callable[..., Any]) -> Any:
    """The object named `"module:attribute"` (imported now); an object given is returned as it is."""
    if not isinstance(target, str):
        return target
    if not _TARGET.fullmatch(target):
        raise ValueError(f"expected module:attribute, got {target!r}")
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
