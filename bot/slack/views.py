"""What people read in Slack about campaigns: the vendor's view, a campaign's state, lists, history,
and what a reconcile did. Texts only; the reads happen in bot.slack.operator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.errors import VendorAuthError, VendorError, VendorNotFound, VendorUnavailable
from bot.events import CampaignRef
from bot.slack.blocks import esc
from bot.state.base import PASSIVE_KINDS, AuditRow, CampaignRecord, Hold, HoldKind
from bot.vendors import registry
from bot.vendors.base import CampaignStatus, CampaignVendor

__all__ = [
    "PASSIVE_KINDS",
    "VendorView",
    "api_key_name",
    "campaign_line",
    "history_text",
    "outcome_text",
    "read_vendor",
    "vendor_name",
]

def vendor_name(ref: CampaignRef) -> str:
    """The vendor's display name (`VendorSpec.display_name`)."""
    spec = registry.get(ref.vendor)
    return spec.display_name if spec is not None else ref.vendor


def api_key_name(ref: CampaignRef) -> str:
    """Where the campaign's API key is configured: `BOT_SMARTLEAD_API_KEY` (the vendor's default account)
    or `the acme account's api_key` (a named account: BOT_ACCOUNTS_FILE or BOT_ACCOUNT_<N>_API_KEY)."""
    if ref.account is not None:
        return f"the {ref.account} account's api_key"
    return f"BOT_{ref.vendor.upper()}_API_KEY"


@dataclass(frozen=True, slots=True)
class VendorView:
    """The vendor's status of a campaign as read just now; `status` None when it could not be read."""

    status: CampaignStatus | None
    note: str = ""
    missing: bool = False           # the vendor says there is no such campaign (404)
    unavailable: bool = False


async def read_vendor(ref: CampaignRef, vendors: Mapping[str, CampaignVendor], dry: frozenset[str]) -> VendorView:
    """Read the status, turning every vendor error into a view with a sentence saying what to do.
    `vendors` and `dry` are keyed by route (`smartlead`, `smartlead@acme`: `CampaignRef.route`)."""
    name = vendor_name(ref)
    vendor = vendors.get(ref.route)
    if vendor is None or ref.route in dry:
        key = f"{name} API key" if ref.account is None else f"API key for the {ref.account} {name} account"
        return VendorView(None, f"dry run: campaign-guard has no {key} (or BOT_DRY_RUN is set), so it reads "
                                "and changes nothing at the vendor")
    if not vendor.can_read_state:
        return VendorView(None, f"{name} has no status endpoint: campaign-guard knows only what it did")
    try:
        return VendorView(await vendor.state(ref.id))
    except VendorNotFound:
        return VendorView(None, f"{name} has no campaign `{ref.id}` (or campaign-guard's API key cannot see it): "
                                "check the id", missing=True)
    except VendorAuthError:
        return VendorView(None, f"{name} refused campaign-guard's API key: ask an admin to check "
                                f"{api_key_name(ref)}")
    except VendorUnavailable:
        return VendorView(None, f"{name} is not answering right now", unavailable=True)
    except VendorError as exc:
        return VendorView(None, f"{name} refused the status request ({exc.status})")


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _hold(hold: Hold) -> str:
    who = f"<@{hold.owner[5:]}>" if hold.owner.startswith("user:") else f"`{esc(hold.owner)}`"
    return f"{who} since {_when(hold.created_at)}: {esc(hold.reason)}"


def campaign_line(ref: CampaignRef, view: VendorView | None, record: CampaignRecord, holds: Sequence[Hold],
                  override: tuple[str, datetime] | None = None) -> str:
    """Everything campaign-guard knows about one campaign, as a few mrkdwn lines."""
    active = [h for h in holds if h.kind not in PASSIVE_KINDS]
    if view is not None and view.status is not None:
        status = f"{vendor_name(ref)} says *{view.status}*"
    elif view is not None:
        status = esc(view.note)
    else:
        status = f"last seen *{record.vendor_status or 'unknown'}*"
    if record.bot_paused:
        ours = "paused by campaign-guard"
    elif record.dry_paused:
        ours = "paused by campaign-guard in dry run (nothing sent)"
    elif view is not None and view.status is CampaignStatus.PAUSED:
        ours = f"paused outside campaign-guard: only {vendor_name(ref)}'s UI resumes it"
    else:
        ours = "not paused by campaign-guard"
    lines = [f"`{ref}` — {status}; {ours}" + (f"; action in progress: {record.pending}" if record.pending else "")]
    lines += [f"    • hold {_hold(h)}" for h in active] or ["    • no hold"]
    if override is not None:
        lines.append(f"    • override by {esc(override[0])}: rules leave it alone until {_when(override[1])}")
    parked = [h for h in holds if h.kind == HoldKind.PENDING]
    if parked:
        lines.append(f"    • {len(parked)} automated pause(s) waiting for approval")
    return "\n".join(lines)


def history_text(ref: CampaignRef, rows: Sequence[AuditRow]) -> str:
    if not rows:
        return f"`{ref}` — no audit records yet"
    lines = [f"`{ref}` — the latest {len(rows)} audit record(s):"]
    for row in rows:
        rule = f" {esc(row.rule)}" if row.rule else ""
        lines.append(f"    • {row.at:%m-%d %H:%M} {row.kind}/{row.action} *{row.outcome}*{rule}: {esc(row.detail)[:200]}")
    return "\n".join(lines)


def outcome_text(ref: CampaignRef, rows: Sequence[AuditRow]) -> str:
    """What reconciling the campaign did, from the audit rows it wrote."""
    name = vendor_name(ref)
    parts = []
    for row in rows:
        if row.kind == "failure":
            parts.append(f"{name} refused: {esc(row.detail)[:200]}. The hold is kept; check the campaign id "
                         f"and {api_key_name(ref)}, then try again")
        elif row.outcome == "paused":
            parts.append(f"paused in {name}")
        elif row.outcome == "resumed":
            parts.append(f"resumed in {name}")
        elif row.kind == "action":
            parts.append(esc(row.detail))
    return "; ".join(parts)
