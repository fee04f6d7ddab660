"""Test helpers shipped with the package: the vendor simulator (also behind `campaign-guard simulate`)."""

from __future__ import annotations

from bot.testing.sim_core import ACCOUNT_SECRET, CallRecord, Fault, SimCampaign, fingerprint, max_in_window
from bot.testing.sim_registry import DEFAULT_KEYS, DEFAULT_LIMITS, PREFIXES
from bot.testing.simulator import VendorSimulator, run_simulator

__all__ = [
    "ACCOUNT_SECRET",
    "DEFAULT_KEYS",
    "DEFAULT_LIMITS",
    "PREFIXES",
    "CallRecord",
    "Fault",
    "SimCampaign",
    "VendorSimulator",
    "fingerprint",
    "max_in_window",
    "run_simulator",
]
