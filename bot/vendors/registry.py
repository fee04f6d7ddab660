"""The vendors campaign-guard knows: one line per vendor package. Everything else iterates this.

Pure metadata (see `bot.vendors.spec`): the web edge, `bot.config` and `bot.events` read it, and
importing it imports no HTTP client. Adding a vendor: its package under `bot/vendors/<name>/`, its
tests, and one line in `_BUILT_IN` (README, "Adding a vendor").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from bot.vendors.inbox import SPEC as INBOX
from bot.vendors.instantly import SPEC as INSTANTLY
from bot.vendors.leadterra import SPEC as LEADTERRA
from bot.vendors.lemlist import SPEC as LEMLIST
from bot.vendors.smartlead import SPEC as SMARTLEAD
from bot.vendors.spec import VendorSpec

__all__ = ["get", "names", "registered", "specs"]

_BUILT_IN: Final = (
    SMARTLEAD,
    LEADTERRA,
    INBOX,
    INSTANTLY,
    LEMLIST,
)

_specs: dict[str, VendorSpec] = {spec.name: spec for spec in _BUILT_IN}


def specs() -> tuple[VendorSpec, ...]:
    """Every registered vendor, in registration order."""
    return tuple(_specs.values())


def names() -> frozenset[str]:
    return frozenset(_specs)


def get(name: str) -> VendorSpec | None:
    return _specs.get(name)


def known(name: str) -> bool:
    """Is `name` a registered vendor? (What every event's validation asks: no set is built.)"""
    return name in _specs


@contextmanager
def registered(spec: VendorSpec) -> Iterator[VendorSpec]:
    """Tests only: `spec` is a vendor while the block runs. Settings made inside it have its block
    (`bot.config.Settings` is rebuilt on entry and exit)."""
    if spec.name in _specs:
        raise ValueError(f"vendor {spec.name!r} is already registered")
    _specs[spec.name] = spec
    try:
        yield spec
    finally:
        del _specs[spec.name]
