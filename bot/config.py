"""Settings read from `BOT_*` environment variables, validated once at start."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from bot.errors import ConfigError
from bot.vendors import registry
from bot.vendors.spec import Setting, VendorConfig, VendorSpec

__all__ = ["CoreSettings", "Settings", "load_settings", "settings_class", "vendor_field"]

#: Optional settings for which an empty value means "not set".
_OPTIONAL: Final = (
    "inventory_file", "accounts_file", "webhook_token", "alertmanager_token", "grafana_webhook_secret", "slack_signing_secret",
    "slack_bot_token", "slack_channel", "digest_hour",
)
#: RabbitMQ's per-queue TTL is at most 2^32-1 ms; a retry delay of more than 30 days is a mistake anyway.
_MAX_DELAY: Final = 30 * 86400.0


def _unset_if_empty(value: Any) -> Any:
    """`BOT_X=` (as Compose's `${BOT_X:-}` passes an unset variable) means unset, not an empty value."""
    if isinstance(value, str | SecretStr):
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if not text.strip() else value
    return value


class CoreSettings(BaseSettings):
    """Everything configurable but the vendors' blocks, which `settings_class` adds from the registry.
    Secrets are `SecretStr` and unwrapped only where they are sent."""

    model_config = SettingsConfigDict(env_prefix="BOT_", extra="ignore", frozen=True)

    broker_url: SecretStr = Field(SecretStr("memory://"), description="amqp://user:pass@host:port/vhost or memory://")
    broker_prefix: str = Field("campaign-guard", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    state_url: str = "sqlite:///.campaign-guard/state.db"
    rules_dir: Path = Path("rules")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    dry_run: bool = False
    log_json: bool = True
    log_level: str = Field("info", pattern=r"^(debug|info|warning|error)$")

    # worker
    prefetch: int = Field(128, ge=1, le=1000, description="deliveries in flight per worker (unacked at RabbitMQ)")
    batch_size: int = Field(64, ge=1, le=1000,
                            description="deliveries decided together: one transaction, one multiple-ack")
    max_deliveries: int = Field(10, ge=1, le=1000)
    retry_delays: Annotated[tuple[float, ...], NoDecode] = (1.0, 5.0, 30.0, 120.0, 600.0)
    drain_seconds: float = Field(20.0, ge=0)
    override_days: float = Field(7.0, ge=0, description="after a person resumes, rules leave the campaign alone")
    breaker_limit: int = Field(5, ge=1, description="automated pauses per vendor allowed within breaker_window")
    breaker_window: float = Field(600.0, gt=0)
    pending_ttl: float = Field(86400.0, gt=0, description="seconds a parked decision waits for approval")
    sweep_seconds: float = Field(30.0, gt=0, description="how often pending actions and decisions are swept")
    reconcile_seconds: float = Field(
        300.0, ge=0, description="how often the vendor state of every held or bot-paused campaign is re-read "
        "(drift watch; 0 turns it off)")
    lease_seconds: float = Field(30.0, ge=3, description="how long a worker's claim on a campaign or a background "
                                 "duty lasts without renewal: a dead worker's are taken over within this time")
    inventory_file: Path | None = None
    accounts_file: Path | None = Field(None, description="YAML list of named vendor accounts (README, \"Accounts\")")
    inventory_refresh: float = Field(600.0, ge=0, description="seconds between reads of vendor campaign → sender lists; 0: off")
    poll_seconds: float = Field(900.0, ge=0, description="seconds between polls of the vendors' campaign analytics "
                                "and mailbox health (bot.poller; 0: off)")
    poll_share: float = Field(0.5, gt=0, le=1, description="at most this share of each rate window goes to "
                              "background reads (polls, drift reads): the rest is left to pauses and resumes")
    metrics_port: int = Field(0, ge=0, le=65535, description="`worker`: serve /metrics (and /healthz) on "
                              "BOT_HTTP_HOST:this port (0: not served; `run` and `web` serve them on BOT_HTTP_PORT)")

    # web intake
    webhook_token: SecretStr | None = None
    max_body_bytes: int = Field(1_048_576, ge=1024)

    # monitoring alerts (bot.web.alerts)
    alertmanager_token: SecretStr | None = Field(None, description="bearer token of /webhooks/alertmanager and "
                                                 "/webhooks/grafana; unset → BOT_WEBHOOK_TOKEN")
    grafana_webhook_secret: SecretStr | None = Field(None, description="HMAC secret of X-Grafana-Alerting-Signature")
    grafana_timestamp_header: str = Field("X-Grafana-Alerting-Signature-Timestamp", pattern=r"^[A-Za-z0-9-]{0,100}$")
    grafana_signature_max_age: float = Field(300.0, ge=0, description="signed timestamps older than this are "
                                             "refused (seconds; 0: no check)")

    # slack (bot.slack, bot.web.slack)
    slack_signing_secret: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_pause_users: str = Field("", description="Slack user ids allowed to pause, comma-separated")
    slack_resume_users: str = Field("", description="Slack user ids allowed to resume (empty: nobody)")
    slack_approve_users: str = Field("", description="Slack user ids allowed to approve/reject parked pauses")
    slack_digest_seconds: float = Field(300.0, gt=0, description="shadow notices are batched per interval")
    slack_retry_delays: Annotated[tuple[float, ...], NoDecode] = (1.0, 5.0, 30.0, 120.0, 600.0)
    slack_max_attempts: int = Field(30, ge=1, description="attempts per Slack message before it is marked failed")

    # daily digest (bot.digest)
    digest_hour: int | None = Field(9, ge=-1, le=23, description="hour (0-23, in BOT_DIGEST_TZ) of each Slack "
                                    "channel's daily digest; -1 or empty: no digest")
    digest_tz: str = Field("UTC", description="IANA time zone of BOT_DIGEST_HOUR and of the digest's times")

    # vendors
    vendor_timeout: float = Field(15.0, gt=0)
    vendor_max_attempts: int = Field(4, ge=1, le=20)

    @field_validator(*_OPTIONAL, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return _unset_if_empty(value)

    @field_validator("retry_delays", "slack_retry_delays", mode="before")
    @classmethod
    def _delays(cls, value: Any) -> Any:
        """A JSON list of seconds (`[1,5,30]`) or comma-separated numbers (`1,5,30`), each finite and ≥ 0."""
        if isinstance(value, str):
            text = value.strip()
            try:
                parsed = json.loads(text) if text.startswith("[") else [float(part) for part in text.split(",")
                                                                         if part.strip()]
            except ValueError:
                parsed = None
            if not isinstance(parsed, list) or not all(
                    isinstance(n, int | float) and not isinstance(n, bool) for n in parsed):
                raise ValueError("must be a JSON list of seconds, e.g. [1,5,30,120,600] (or 1,5,30,120,600)")
            value = parsed
        if isinstance(value, list | tuple) and not all(
                isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) and 0 <= n <= _MAX_DELAY
                for n in value):
            raise ValueError(f"every delay must be a number of seconds from 0 to {_MAX_DELAY:.0f} (30 days)")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("digest_tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        """An IANA name the system's tz database knows (`UTC` always; empty: UTC)."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if not value.strip():
            return "UTC"
        if value.upper() != "UTC":
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError("must be an IANA time zone, e.g. Europe/Paris or UTC") from None
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("amqp://", "amqps://", "memory://")):
            raise ValueError("must start with amqp://, amqps:// or memory://")
        return value

    @field_validator("state_url")
    @classmethod
    def _state_scheme(cls, value: str) -> str:
        if value.startswith(("postgresql://", "postgres://")):
            return value
        if not value.startswith("sqlite:///") or value == "sqlite:///":
            raise ValueError("must be sqlite:///relative/path, sqlite:////absolute/path or "
                             "postgresql://user:pass@host:5432/db")
        return value

    @property
    def concurrent_actions(self) -> int:
        """How many campaigns one worker reconciles at once (vendor calls and their state transactions):
        what sizes its share of the PostgreSQL connections, whatever `prefetch` is."""
        return min(self.prefetch, 16)

    @property
    def uses_postgres(self) -> bool:
        return self.state_url.startswith(("postgresql://", "postgres://"))

    @property
    def state_path(self) -> Path:
        """Filesystem path of the SQLite database (meaningless when `uses_postgres`)."""
        return Path(self.state_url.removeprefix("sqlite:///"))

    @property
    def uses_memory_broker(self) -> bool:
        return self.broker_url.get_secret_value().startswith("memory://")

    def vendor(self, name: str) -> VendorConfig:
        """The settings block of vendor `name` (`BOT_<NAME>_*`); KeyError for a vendor these settings
        do not know."""
        spec = registry.get(name)
        fields = type(self).model_fields
        if spec is None or any(f"{name}_{key}" not in fields for key in spec.settings):
            raise KeyError(f"no settings block for vendor {name!r}")
        return VendorConfig(name, {key: getattr(self, f"{name}_{key}") for key in spec.settings})

    def vendors(self) -> list[VendorSpec]:
        """The registered vendors these settings have a block for."""
        fields = type(self).model_fields
        return [spec for spec in registry.specs() if f"{spec.name}_api_key" in fields]

    def secrets(self) -> list[str]:
        """Every configured secret value: the core ones and each vendor's own (`VendorSpec.secrets`).
        The one list the log redactor is given (bot.log.register_secret)."""
        values = [self.broker_url, self.webhook_token, self.slack_signing_secret, self.slack_bot_token,
                  self.alertmanager_token, self.grafana_webhook_secret]
        found = [value.get_secret_value() for value in values if value is not None]
        if self.uses_postgres and (password := urlsplit(self.state_url).password):
            found.append(password)
        for spec in self.vendors():
            config = self.vendor(spec.name)
            found += [secret for key in spec.secrets if (secret := config.secret(key)) is not None]
        from bot.accounts import load_accounts  # here: bot.accounts reads these settings
        return found + load_accounts(self).secrets()

    def rate_limit(self, name: str) -> tuple[int, float]:
        """(`requests`, `per seconds`) of the `<name>_rate_limit` setting (`smartlead`, `inbox_read`)."""
        count, _, seconds = str(getattr(self, f"{name}_rate_limit")).partition("/")
        return int(count), float(seconds)

    def api_key(self, vendor: str) -> SecretStr | None:
        return self.vendor(vendor).api_key

    def base_url(self, vendor: str) -> str:
        return self.vendor(vendor).base_url

    def slack_users(self, permission: str) -> frozenset[str]:
        """User ids of `slack_<permission>_users` (pause | resume | approve)."""
        raw = str(getattr(self, f"slack_{permission}_users"))
        return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _rate(value: str) -> str:
    count, sep, seconds = value.partition("/")
    try:
        ok = bool(sep) and int(count) > 0 and float(seconds) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("must be REQUESTS/SECONDS, e.g. 10/2")
    return value


def _path_template(value: str) -> str:
    if not value.startswith("/") or value.count("{id}") != 1:
        raise ValueError("must start with / and contain {id} once")
    return value


def vendor_field(setting: Setting) -> tuple[Any, Any]:
    """(annotation, default) of one vendor setting, validated by its kind."""
    if setting.kind == "secret":
        secret = Annotated[SecretStr | None, BeforeValidator(_unset_if_empty)]
        return secret, Field(None, description=setting.description)
    check = {"url": _http_url, "rate": _rate, "path": _path_template}.get(setting.kind)
    kind = Annotated[str, AfterValidator(check)] if check is not None else str
    return kind, Field(setting.default or "", description=setting.description)


def settings_class(specs: Iterable[VendorSpec], *, base: type[CoreSettings] = CoreSettings,
                   name: str = "Settings") -> type[CoreSettings]:
    """`base` with each vendor's settings block as `<vendor>_<key>` fields (env `BOT_<VENDOR>_<KEY>`).
    `Settings` is this for the registry's vendors; a test may add a vendor of its own."""
    fields: dict[str, Any] = {f"{spec.name}_{key}": vendor_field(setting)
                              for spec in specs for key, setting in spec.settings.items()}
    made: type[CoreSettings] = create_model(name, __base__=base, __module__=__name__, **fields)
    return made


if TYPE_CHECKING:
    class Settings(CoreSettings):
        """Everything configurable, the vendors' blocks included (see `settings_class`)."""
else:
    Settings = settings_class(registry.specs())


def _problem(message: str) -> str:
    """pydantic's message without its `Value error, ` prefix."""
    return message.removeprefix("Value error, ")


def load_settings() -> Settings:
    """Read the environment; raise ConfigError naming each bad variable, all on one line:
    `invalid settings: BOT_A: <problem>; BOT_B: <problem>`."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"BOT_{field.upper()}: {_problem(err['msg'])}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
    except SettingsError as exc:
        # a value pydantic-settings could not even decode (as JSON, for a list); names the field
        found = re.search(r'field "([a-z_]+)"', str(exc))
        name = f"BOT_{found.group(1).upper()}" if found else "a BOT_* variable"
        raise ConfigError(f"invalid settings: {name}: cannot parse the value") from None
