"""The simulated vendors: each registered vendor's `SimVendor` (`VendorSpec.simulator`), and the tables
derived from them that tests and the control API read."""

from __future__ import annotations

from typing import Final

from bot.testing.sim_spec import SimVendor
from bot.vendors import registry
from bot.vendors.spec import resolve

__all__ = ["COMMON_TO_NATIVE", "DEFAULT_KEYS", "DEFAULT_LIMITS", "NATIVE_STATUSES", "PREFIXES", "SIM_VENDORS"]


def _load() -> dict[str, SimVendor]:
    found: dict[str, SimVendor] = {}
    for spec in registry.specs():
        if spec.simulator is not None:
            sim = resolve(spec.simulator)
            if not isinstance(sim, SimVendor):
                raise TypeError(f"{spec.simulator} is not a SimVendor")
            found[spec.name] = sim
    return found


SIM_VENDORS: Final = _load()
#: Where each vendor is served, mirroring the real base URLs' paths (docs/vendors.md §0).
PREFIXES: Final = {name: sim.prefix for name, sim in SIM_VENDORS.items()}
#: Credentials the simulator accepts unless told otherwise (fake, for tests and demos only).
DEFAULT_KEYS: Final = {name: sim.key for name, sim in SIM_VENDORS.items()}
#: (requests, seconds) per credential and bucket; None = unlimited.
DEFAULT_LIMITS: Final = {bucket: value for sim in SIM_VENDORS.values() for bucket, value in sim.limits.items()}
NATIVE_STATUSES: Final = {name: sim.statuses for name, sim in SIM_VENDORS.items()}
COMMON_TO_NATIVE: Final = {name: dict(sim.common) for name, sim in SIM_VENDORS.items()}
