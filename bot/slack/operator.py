"""The worker side of Slack: a command or a click → permission → holds → reconcile → one reply.

Every mutating command or click runs under the campaigns' locks, reads the vendor's current status,
records the event and applies the person's intent in one transaction (bot.slack.actions), then lets
the executor's normal reconcile touch the vendor. The reply goes to the outbox keyed by the event id,
so a redelivered message never replies twice; when the vendor is down, the reply says so and the
message is retried (its redelivery finishes the pending action and posts an update).
Not responsible for: verifying Slack's signature (bot.web.slack) or sending (bot.slack.delivery).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any, Final

import structlog

from bot.config import Settings
from bot.errors import VendorUnavailable
from bot.events import CampaignRef, Event, utcnow
from bot.executor import Executor
from bot.slack import actions
from bot.slack.actions import Step
from bot.slack.blocks import clicked_message, reply
from bot.slack.views import (
    PASSIVE_KINDS,
    VendorView,
    campaign_line,
    history_text,
    outcome_text,
    read_vendor,
    vendor_name,
)
from bot.state.base import AuditRow
from bot.state.outbox import SqliteOutbox
from bot.state.protocol import StateStore, Transaction
from bot.vendors.base import CampaignVendor

__all__ = ["SlackOperator"]

log = structlog.get_logger(__name__)

#: What each mutating command or button needs, as the name of its allowlist (BOT_SLACK_<NAME>_USERS).
PERMISSIONS: Final = {"pause": "pause", "resume": "resume", "keep_paused": "pause", "approve": "approve",
                      "reject": "approve"}
_LABELS: Final = {"resume": "Resume", "keep_paused": "Keep paused", "approve": "Approve", "reject": "Reject"}
_MAX_LISTED: Final = 30
_Apply = Callable[[Transaction, CampaignRef, VendorView, datetime], Awaitable[Step]]


class SlackOperator:
    """Handles `command.*` and `interaction.clicked` events from source `slack` (see `handles`)."""

    def __init__(
        self, *, store: StateStore, outbox: SqliteOutbox, executor: Executor,
        vendors: Mapping[str, CampaignVendor], dry_run_vendors: frozenset[str], settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._executor = executor
        self._vendors = vendors
        self._dry = dry_run_vendors
        self._settings = settings
        self._clock = clock

    def handles(self, event: Event) -> bool:
        return event.source == "slack" and (event.type.startswith("command.") or event.type == "interaction.clicked")

    async def handle(self, event: Event) -> bool:
        """Act on the event; False when it was handled before (a redelivery)."""
        data = event.data
        user = str(data.get("user_id") or "")
        if event.type == "interaction.clicked":
            return await self._click(event, user)
        verb = event.type.removeprefix("command.")
        listed = data.get("campaigns")
        refs = [CampaignRef.parse(c) for c in (listed if isinstance(listed, list) else []) if isinstance(c, str)]
        if verb in ("status", "list", "history"):
            return await self._read(event, verb, refs)
        if verb not in ("pause", "resume"):
            return await self._answer_once(event, f"unknown command `{verb}`: try `help`")
        if not self._allowed(user, PERMISSIONS[verb]):
            return await self._refuse(event, user, verb, refs)
        reason = str(data.get("reason") or "")

        async def apply(tx: Transaction, ref: CampaignRef, view: VendorView, now: datetime) -> Step:
            if verb == "pause":
                return await actions.pause(tx, self._executor, ref, user=user, reason=reason, now=now,
                                           event_id=event.id, view=view)
            return await actions.resume(tx, self._executor, ref, user=user, now=now, view=view,
                                        override_for=timedelta(days=self._settings.override_days))

        return await self._run(event, refs, apply, header=f"*{verb}* by <@{user}>:")

    def _allowed(self, user: str, permission: str) -> bool:
        return bool(user) and user in self._settings.slack_users(permission)

    # ------------------------------------------------------------------ clicks

    async def _click(self, event: Event, user: str) -> bool:
        data = event.data
        action = str(data.get("action"))
        ref = CampaignRef.parse(str(data["campaign"])) if data.get("campaign") else None
        if action not in PERMISSIONS or ref is None:
            return await self._answer_once(event, "this button names no campaign campaign-guard knows; nothing done")
        if not self._allowed(user, PERMISSIONS[action]):
            return await self._refuse(event, user, action, [ref])
        decision_id = data.get("decision_id")
        decision = decision_id if isinstance(decision_id, int) and not isinstance(decision_id, bool) else None

        async def apply(tx: Transaction, ref: CampaignRef, view: VendorView, now: datetime) -> Step:
            if action == "resume":
                return await actions.resume(tx, self._executor, ref, user=user, now=now, view=view,
                                            override_for=timedelta(days=self._settings.override_days))
            if action == "keep_paused":
                return await actions.keep_paused(tx, self._executor, ref, user=user, now=now, event_id=event.id,
                                                 view=view)
            step = await actions.decide(tx, self._executor, ref, approve=action == "approve", decision_id=decision,
                                        user=user, now=now)
            # the executor has no parked decisions to act on: say so instead of pretending
            return step or Step(ref, "approving or rejecting parked pauses is not available in this version")

        def body(text: str) -> dict[str, Any]:
            result = f"*{_LABELS[action]}* clicked by <@{user}>: {text}"
            blocks = data.get("message_blocks")
            return clicked_message(blocks if isinstance(blocks, list) else [], str(data.get("message_text") or ""),
                                   result)

        return await self._run(event, [ref], apply, header="", body=body)

    # ------------------------------------------------------------------ the mutating path

    async def _run(self, event: Event, refs: Sequence[CampaignRef], apply: _Apply, *, header: str,
                   body: Callable[[str], dict[str, Any]] | None = None) -> bool:
        unavailable: VendorUnavailable | None = None
        lines: list[str] = []
        async with AsyncExitStack() as stack:
            for ref in sorted(set(refs), key=str):
                await stack.enter_async_context(self._executor.lock(ref))
            views = {ref: await read_vendor(ref, self._vendors, self._dry) for ref in refs}
            now = self._clock()
            async with self._store.transaction() as tx:
                new = await tx.record_event(event, now)
                steps = [await apply(tx, ref, views[ref], now) for ref in refs] if new else []
            for ref in refs:    # a no-op unless an action is pending: also finishes what a crash left behind
                outcome, error = await self._reconcile(ref)
                unavailable = unavailable or error
                step = next((s for s in steps if s.ref == ref), None)
                text = step.text if step is not None else ""
                lines.append(" — ".join(t for t in (text, outcome) if t))
        replied = await self._outbox.has(event.id)
        if new or not replied:
            if not new:       # the first delivery died before replying: describe the state now
                lines = [await self._describe(ref) for ref in refs]
            text = "\n".join(filter(None, [header, *lines]))
            await self._reply(event, text, body=body(text) if body else None)
        elif any(lines):      # a retry finished what the vendor could not do at first
            text = "\n".join(["Update:", *filter(None, lines)])
            await self._reply(event, text, key=f"{event.id}:retried")
        log.info("slack.handled", type=event.type, campaigns=[str(r) for r in refs], new=new)
        if unavailable is not None:
            raise unavailable
        return new

    async def _reconcile(self, ref: CampaignRef) -> tuple[str, VendorUnavailable | None]:
        """Reconcile (the caller holds the lock) and say what the vendor call did, from the audit rows."""
        key = str(ref)
        before = await self._store.audit(campaign=key, limit=1)
        mark = (before[-1].id or 0) if before else 0
        try:
            await self._executor.reconcile(ref)
        except VendorUnavailable as exc:
            return (f"{vendor_name(ref)} is not answering: campaign-guard keeps the intent and retries "
                    "automatically"), exc
        rows = [r for r in await self._store.audit(campaign=key, limit=20)
                if (r.id or 0) > mark and r.kind in ("action", "failure")]
        return outcome_text(ref, rows), None

    async def _describe(self, ref: CampaignRef) -> str:
        async with self._store.transaction() as tx:
            return campaign_line(ref, None, await tx.campaign(str(ref)), await tx.holds(str(ref)))

    async def _refuse(self, event: Event, user: str, action: str, refs: Sequence[CampaignRef]) -> bool:
        """Refuse, record the refusal in the audit log (once), and tell the person why."""
        permission = PERMISSIONS[action]
        setting = f"BOT_SLACK_{permission.upper()}_USERS"
        detail = f"user:{user or '?'} may not {action}: not in {setting}"
        now = self._clock()
        async with self._store.transaction() as tx:
            new = await tx.record_event(event, now)
            if new:
                targets: list[str | None] = [str(ref) for ref in refs]
                for target in targets or [None]:
                    await tx.add_audit(AuditRow(now, "refusal", target, None, action, "refused", detail,
                                                (event.id,), {"user_id": user, "via": "slack"}))
        log.warning("slack.refused", user_id=user, action=action, campaigns=[str(r) for r in refs])
        nobody = " (nobody is listed yet)" if not self._settings.slack_users(permission) else ""
        text = (f":no_entry: You may not {action.replace('_', ' ')} campaigns: your Slack id `{user}` is not in "
                f"{setting}{nobody}. Ask a campaign-guard admin to add it.")
        await self._reply(event, text)
        return new

    # ------------------------------------------------------------------ read-only commands

    async def _read(self, event: Event, verb: str, refs: Sequence[CampaignRef]) -> bool:
        if verb == "list":
            text = await self._list(str(event.data.get("filter") or "all"))
        elif verb == "history":
            text = "\n".join([history_text(ref, await self._store.audit(campaign=str(ref), limit=15)) for ref in refs])
        else:
            views = {ref: await read_vendor(ref, self._vendors, self._dry) for ref in refs}
            lines = []
            async with self._store.transaction() as tx:
                for ref in refs:
                    key = str(ref)
                    lines.append(campaign_line(ref, views[ref], await tx.campaign(key), await tx.holds(key),
                                               await tx.override(key, "*", self._clock())))
            text = "\n".join(lines)
        return await self._answer_once(event, text)

    async def _list(self, wanted: str) -> str:
        async with self._store.transaction() as tx:
            rows = [(key, await tx.campaign(key), await tx.holds(key)) for key in await tx.held_or_paused()]
        picked = []
        for key, record, holds in rows:
            paused = record.bot_paused or record.dry_paused
            held = any(h.kind not in PASSIVE_KINDS for h in holds)
            if (wanted == "paused" and paused) or (wanted == "held" and held) or (wanted == "all" and (paused or held)):
                picked.append(campaign_line(CampaignRef.parse(key), None, record, holds))
        what = {"paused": "paused by campaign-guard", "held": "held", "all": "paused or held by campaign-guard"}[wanted]
        if not picked:
            return f"No campaign is {what}."
        more = f"\n… and {len(picked) - _MAX_LISTED} more" if len(picked) > _MAX_LISTED else ""
        return f"*{len(picked)} campaign(s) {what}:*\n" + "\n".join(picked[:_MAX_LISTED]) + more

    async def _answer_once(self, event: Event, text: str) -> bool:
        async with self._store.transaction() as tx:
            new = await tx.record_event(event, self._clock())
        await self._reply(event, text)
        return new

    async def _reply(self, event: Event, text: str, *, key: str | None = None,
                     body: dict[str, Any] | None = None) -> None:
        url = str(event.data.get("response_url") or "")
        if not url:
            log.warning("slack.reply_dropped", reason="the request carried no response_url")
            return
        await self._outbox.enqueue("response_url", {"url": url, "body": body or reply(text)}, now=self._clock(),
                                   key=key or event.id)
