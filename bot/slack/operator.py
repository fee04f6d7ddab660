"""The worker side of Slack: a command or a click → permission → holds → reconcile → one reply.

Every mutating command or click runs under the campaigns' locks, reads the vendor's current status,
records the event and applies the person's intent in one transaction (bot.slack.actions), then lets
the executor's normal reconcile touch the vendor. The reply goes to the outbox keyed by the event id,
so a redelivered message never replies twice; when the vendor is down, the reply says so and the
message is retried (its redelivery finishes the pending action and posts an update).

Accounts (bot.accounts): every campaign a command or click names is first placed in its account
(`smartlead:7` → `smartlead@acme:7` when only acme's inventory lists it); one that cannot be placed is
refused with the reason and the rest of the command goes on. A person may act on a campaign when in
the global allowlist (BOT_SLACK_<PERM>_USERS) or in its account's list for that permission; campaigns
of other accounts are refused one by one, each recorded as a `refusal` audit row. A person listed only
by accounts (in no global list) sees only those accounts' campaigns in `list`, `status` and `history`.
Not responsible for: verifying Slack's signature (bot.web.slack) or sending (bot.slack.delivery).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import structlog

from bot.accounts import PERMISSIONS as ACCOUNT_PERMISSIONS
from bot.accounts import Account, AccountError, Accounts
from bot.config import Settings
from bot.errors import VendorUnavailable
from bot.events import DEFAULT_ACCOUNT, CampaignRef, Event, utcnow
from bot.executor import Executor
from bot.slack import actions
from bot.slack.actions import Step
from bot.slack.blocks import clicked_message, esc, reply
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
from bot.state.outbox import Outbox
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
_LIST_WHAT: Final = {"paused": "paused by campaign-guard", "held": "held",
                     "all": "paused or held by campaign-guard"}


def _never_listed(ref: CampaignRef) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class _Refusal:
    """One campaign a person may not act on (or see): what the reply says and what the audit row says."""

    ref: CampaignRef
    action: str
    text: str
    detail: str


class SlackOperator:
    """Handles `command.*` and `interaction.clicked` events from source `slack` (see `handles`)."""

    def __init__(
        self, *, store: StateStore, outbox: Outbox, executor: Executor,
        vendors: Mapping[str, CampaignVendor], dry_run_vendors: frozenset[str], settings: Settings,
        clock: Callable[[], datetime] = utcnow, accounts: Accounts | None = None,
        listed: Callable[[CampaignRef], bool] = _never_listed,
    ) -> None:
        """`vendors` and `dry_run_vendors` are keyed by route (`CampaignRef.route`); `listed` says whether
        the inventory lists a campaign (it places refs written without their account)."""
        self._store = store
        self._outbox = outbox
        self._executor = executor
        self._vendors = vendors
        self._dry = dry_run_vendors
        self._settings = settings
        self._clock = clock
        self._accounts = accounts if accounts is not None else Accounts([])
        self._listed = listed

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
            return await self._read(event, verb, refs, user)
        if verb not in ("pause", "resume"):
            return await self._answer_once(event, f"unknown command `{verb}`: try `help`")
        permission = PERMISSIONS[verb]
        if not self._allowed(user, permission) and not self._accounts_of(user, permission):
            return await self._refuse(event, user, verb, refs)
        placed, notes = self._place(refs)
        refusals = [self._not_yours(user, verb, ref) for ref in placed if not self._may(user, permission, ref)]
        refused = {r.ref for r in refusals}
        reason = str(data.get("reason") or "")

        async def apply(tx: Transaction, ref: CampaignRef, view: VendorView, now: datetime) -> Step:
            if verb == "pause":
                return await actions.pause(tx, self._executor, ref, user=user, reason=reason, now=now,
                                           event_id=event.id, view=view)
            return await actions.resume(tx, self._executor, ref, user=user, now=now, view=view,
                                        override_for=timedelta(days=self._settings.override_days))

        return await self._run(event, [ref for ref in placed if ref not in refused], apply,
                               header=f"*{verb}* by <@{user}>:", refusals=refusals, notes=notes, user=user)

    # ------------------------------------------------------------------ accounts and permissions

    def _allowed(self, user: str, permission: str) -> bool:
        """In the global allowlist (BOT_SLACK_<PERM>_USERS): allowed on every account's campaigns."""
        return bool(user) and user in self._settings.slack_users(permission)

    def _accounts_of(self, user: str, permission: str | None = None) -> list[Account]:
        """The accounts whose lists name `user` (for `permission`; None: for any permission)."""
        wanted = ACCOUNT_PERMISSIONS if permission is None else (permission,)
        return [a for a in self._accounts if user and any(a.allows(user, p) for p in wanted)]

    def _may(self, user: str, permission: str, ref: CampaignRef) -> bool:
        account = self._accounts.account(ref)
        return self._allowed(user, permission) or (account is not None and bool(user)
                                                   and account.allows(user, permission))

    def _limited(self, user: str) -> bool:
        """Listed by some accounts and in no global list: sees those accounts' campaigns only."""
        return (not any(self._allowed(user, p) for p in ACCOUNT_PERMISSIONS)
                and bool(self._accounts_of(user)))

    def _visible(self, user: str, ref: CampaignRef) -> bool:
        return not self._limited(user) or ref.route in {a.route for a in self._accounts_of(user)}

    def _place(self, refs: Iterable[CampaignRef]) -> tuple[list[CampaignRef], list[str]]:
        """Each ref in its account (bot.accounts.Accounts.place); the ones that cannot be placed, as reply lines."""
        placed: dict[CampaignRef, None] = {}
        notes = []
        for ref in refs:
            try:
                placed[self._accounts.place(ref, self._listed)] = None
            except AccountError as exc:
                log.info("slack.unplaced", campaign=str(ref), error=str(exc))
                notes.append(f":warning: `{ref}` — {esc(str(exc))}. Nothing done to it.")
        return list(placed), notes

    def _label(self, account: Account) -> str:
        """`acme`; `smartlead@acme` when another vendor has an account of that name too; `smartlead (default)`."""
        if account.name == DEFAULT_ACCOUNT:
            return f"{account.vendor} (default)"
        twins = [a for a in self._accounts if a.name == account.name]
        return account.route if len(twins) > 1 else account.name

    def _names(self, accounts: Sequence[Account]) -> str:
        """`account acme` or `accounts acme, gamma`."""
        return ("accounts " if len(accounts) > 1 else "account ") + ", ".join(self._label(a) for a in accounts)

    def _owner(self, ref: CampaignRef) -> str:
        account = self._accounts.account(ref)
        if account is None:
            return f"belongs to no configured account ({ref.route})"
        client = f" (client {esc(account.client)})" if account.client else ""
        return f"belongs to {self._label(account)}{client}"

    def _not_yours(self, user: str, action: str, ref: CampaignRef) -> _Refusal:
        """A campaign of an account the person is not listed by (for this action; for reads: at all)."""
        permission = PERMISSIONS.get(action)
        names = self._names(self._accounts_of(user, permission))
        verb = "see" if permission is None else action.replace("_", " ")
        text = (f":no_entry: `{ref}` — your Slack id `{user}` may {verb} campaigns of {names} only; "
                f"`{ref}` {self._owner(ref)}. Nothing done to it.")
        detail = f"user:{user} may {verb} campaigns of {names} only; {ref} {self._owner(ref)}"
        return _Refusal(ref, action, text, detail)

    # ------------------------------------------------------------------ clicks

    async def _click(self, event: Event, user: str) -> bool:
        data = event.data
        action = str(data.get("action"))
        ref = CampaignRef.parse(str(data["campaign"])) if data.get("campaign") else None
        if action not in PERMISSIONS or ref is None:
            return await self._answer_once(event, "this button names no campaign campaign-guard knows; nothing done")
        permission = PERMISSIONS[action]
        if not self._allowed(user, permission) and not self._accounts_of(user, permission):
            return await self._refuse(event, user, action, [ref])
        placed, notes = self._place([ref])
        if not placed:
            return await self._answer_once(event, "\n".join(notes))
        ref = placed[0]
        if not self._may(user, permission, ref):
            refusal = self._not_yours(user, action, ref)
            return await self._answer_once(event, refusal.text, refusals=[refusal], user=user)
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
                   body: Callable[[str], dict[str, Any]] | None = None, refusals: Sequence[_Refusal] = (),
                   notes: Sequence[str] = (), user: str = "") -> bool:
        """Act on `refs`; the reply also carries `refusals` (recorded once as audit rows) and `notes`."""
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
                if new:
                    await self._audit_refusals(tx, event, user, refusals, now)
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
            text = "\n".join(filter(None, [header, *lines, *(r.text for r in refusals), *notes]))
            await self._reply(event, text, body=body(text) if body else None)
        elif any(lines):      # a retry finished what the vendor could not do at first
            text = "\n".join(["Update:", *filter(None, lines)])
            await self._reply(event, text, key=f"{event.id}:retried")
        log.info("slack.handled", type=event.type, campaigns=[str(r) for r in refs], new=new,
                 refused=[str(r.ref) for r in refusals])
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

    async def _audit_refusals(self, tx: Transaction, event: Event, user: str, refusals: Sequence[_Refusal],
                              now: datetime) -> None:
        for refusal in refusals:
            await tx.add_audit(AuditRow(now, "refusal", str(refusal.ref), None, refusal.action, "refused",
                                        refusal.detail, (event.id,), {"user_id": user, "via": "slack"}))
        if refusals:
            log.warning("slack.refused", user_id=user, action=refusals[0].action,
                        campaigns=[str(r.ref) for r in refusals])

    async def _refuse(self, event: Event, user: str, action: str, refs: Sequence[CampaignRef]) -> bool:
        """Refuse a person in no allowlist for the action (global or any account's), record the refusal in
        the audit log (once), and tell the person why."""
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
        listed = self._settings.slack_users(permission) or any(a.users.get(permission) for a in self._accounts)
        nobody = "" if listed else " (nobody is listed yet)"
        text = (f":no_entry: You may not {action.replace('_', ' ')} campaigns: your Slack id `{user}` is not in "
                f"{setting}{nobody}. Ask a campaign-guard admin to add it.")
        await self._reply(event, text)
        return new

    # ------------------------------------------------------------------ read-only commands

    async def _read(self, event: Event, verb: str, refs: Sequence[CampaignRef], user: str) -> bool:
        if verb == "list":
            data = event.data
            text = await self._list(str(data.get("filter") or "all"), str(data.get("scope") or ""),
                                    str(data.get("scope_value") or ""), user)
            return await self._answer_once(event, text)
        placed, notes = self._place(refs)
        refusals = [self._not_yours(user, verb, ref) for ref in placed if not self._visible(user, ref)]
        refused = {r.ref for r in refusals}
        shown = [ref for ref in placed if ref not in refused]
        if verb == "history":
            lines = [history_text(ref, await self._store.audit(campaign=str(ref), limit=15)) for ref in shown]
        else:
            views = {ref: await read_vendor(ref, self._vendors, self._dry) for ref in shown}
            lines = []
            async with self._store.transaction() as tx:
                for ref in shown:
                    key = str(ref)
                    lines.append(campaign_line(ref, views[ref], await tx.campaign(key), await tx.holds(key),
                                               await tx.override(key, "*", self._clock())))
        text = "\n".join([*lines, *(r.text for r in refusals), *notes])
        return await self._answer_once(event, text, refusals=refusals, user=user)

    def _scope(self, scope: str, value: str) -> tuple[set[str] | None, str]:
        """The routes a `list` scope keeps (None: no scope, every route) and how the answer names it."""
        if scope == "account":
            routes = {a.route for a in self._accounts if value in (a.name, a.route)}
            return routes, f"account {esc(value)}"
        if scope == "client":
            wanted = value.casefold()
            routes = {a.route for a in self._accounts if a.client and a.client.casefold() == wanted}
            return routes, f"client {esc(value)}"
        return None, ""

    async def _list(self, wanted: str, scope: str, value: str, user: str) -> str:
        routes, named = self._scope(scope, value)
        if routes is not None and not routes:
            if scope == "account":
                known = sorted({a.name for a in self._accounts if a.name != DEFAULT_ACCOUNT})
                return f"No account is named `{esc(value)}` (accounts: {', '.join(known) or 'none'})."
            clients = sorted({a.client for a in self._accounts if a.client})
            return f"No account has the client `{esc(value)}` (clients: {', '.join(map(esc, clients)) or 'none'})."
        limited = self._limited(user)
        mine = {a.route for a in self._accounts_of(user)}
        async with self._store.transaction() as tx:
            rows = [(key, await tx.campaign(key), await tx.holds(key)) for key in await tx.held_or_paused()]
        picked = []
        for key, record, holds in rows:
            ref = CampaignRef.parse(key)
            if (routes is not None and ref.route not in routes) or (limited and ref.route not in mine):
                continue
            paused = record.bot_paused or record.dry_paused
            held = any(h.kind not in PASSIVE_KINDS for h in holds)
            if (wanted == "paused" and paused) or (wanted == "held" and held) or (wanted == "all" and (paused or held)):
                picked.append(campaign_line(ref, None, record, holds))
        what = _LIST_WHAT[wanted]
        where = [named] if named else []
        if limited:
            where.append(f"of your {self._names(self._accounts_of(user))}")
        of = f" ({'; '.join(where)})" if where else ""
        if not picked:
            return f"No campaign is {what}{of}."
        more = f"\n… and {len(picked) - _MAX_LISTED} more" if len(picked) > _MAX_LISTED else ""
        return f"*{len(picked)} campaign(s) {what}{of}:*\n" + "\n".join(picked[:_MAX_LISTED]) + more

    async def _answer_once(self, event: Event, text: str, *, refusals: Sequence[_Refusal] = (),
                           user: str = "") -> bool:
        now = self._clock()
        async with self._store.transaction() as tx:
            new = await tx.record_event(event, now)
            if new:
                await self._audit_refusals(tx, event, user, refusals, now)
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
