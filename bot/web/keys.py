"""Typed application keys shared by the web handlers (what `create_app` stores on the app)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final

from aiohttp import web

from bot.accounts import Accounts
from bot.broker.base import Broker
from bot.config import Settings
from bot.vendors.spec import VendorConfig

__all__ = ["ACCOUNTS", "BROKER", "CLOCK", "PUBLISH_TIMEOUT", "SETTINGS", "VENDOR_CONFIGS", "Clock"]

#: Returns the current time, timezone-aware (tests pass a frozen clock).
Clock = Callable[[], datetime]

SETTINGS: Final = web.AppKey("settings", Settings)
#: Each vendor's settings block (`Settings.vendor`), built once: `/webhooks/<vendor>` authenticates with it.
VENDOR_CONFIGS: Final = web.AppKey[Mapping[str, VendorConfig]]("vendor_configs")
#: The configured accounts (bot.accounts): `/webhooks/<vendor>/<account>` authenticates with the account's block.
ACCOUNTS: Final = web.AppKey("accounts", Accounts)
BROKER: Final = web.AppKey("broker", Broker)
CLOCK: Final = web.AppKey[Clock]("clock")
#: Seconds allowed for publishing every event of one request before answering 503.
PUBLISH_TIMEOUT: Final = web.AppKey("publish_timeout", float)
