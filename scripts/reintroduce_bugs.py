"""Reintroduce, one at a time, each bug the decision core was fixed for, run the tests that must catch it,
and restore the file. Prints one line per bug: CAUGHT (a test failed) or MISSED.

    .venv/bin/python scripts/reintroduce_bugs.py            # all (about 2 minutes; needs RabbitMQ)
    ONLY=7 .venv/bin/python scripts/reintroduce_bugs.py     # those whose name starts with 7

Each mutation names the exact code it replaces: when that code changes, the script stops with the name of
the stale mutation instead of testing nothing. Never run it beside other work on the same tree.
"""
import os
import subprocess
import sys
from pathlib import Path

os.chdir(Path(__file__).resolve().parent.parent)
STATEFUL = "tests/test_decisions_stateful.py"
RACES = "tests/integration/test_decision_races.py"
M = [
 ("1 release widens to every key", "bot/engine.py",
  'return f"rule:{rule_name}@{key}" if key else f"rule:{rule_name}"', 'return f"rule:{rule_name}"',
  ["tests/test_decisions.py::test_a_release_lifts_only_the_hold_of_the_campaign_that_recovered"]),
 ("2 hold during in-flight resume ignored", "bot/reconciler.py",
  "done = bool(now_holds) == bool(holds) and (bool(holds) or settle)", "done = True",
  [RACES + "::test_a_firing_alert_during_an_inflight_resume_pauses_the_campaign_again", STATEFUL]),
 ("3 release during in-flight pause overwritten", "bot/reconciler.py",
  "now_holds = active(await tx.holds(key))",
  "now_holds = holds",
  [RACES + "::test_a_resolution_during_an_inflight_pause_resumes_the_campaign", STATEFUL]),
 ("4 count ignores of", "bot/engine.py",
  'counted = "n" if denominator == numerator else "d"\n        if counted == "n":',
  'counted = "n"\n        if counted == "n":',
  ["tests/test_engine.py::test_count_counts_only_among_the_last_n_of_events",
   "tests/test_engine.py::test_count_pauses_on_three_within_the_last_n_of_events"]),
 ("5 cooldown drops a pause", "bot/engine.py",
  '    if not measure.figure and measure.min_age is None and not new.get("active"):\n',
  "    if new.get('released_at') and not new.get('active') and now - datetime.fromisoformat(new['released_at']) < rule.cooldown[0]:\n        return Evaluation(new)\n"
  '    if not measure.figure and measure.min_age is None and not new.get("active"):\n',
  ["tests/test_engine.py::test_a_cooldown_never_drops_or_delays_a_pause"]),
 ("6 breaker counts holds", "bot/reconciler.py",
  "        vendor = self._client(ref)\n        seen = await vendor.observe(ref.id) if vendor.can_read_state else None\n",
  "        vendor = self._client(ref)\n        if record.pending is Pending.PAUSE and (await self._admitted(ref, record, holds)) is None:\n            return\n        seen = await vendor.observe(ref.id) if vendor.can_read_state else None\n",
  ["tests/test_decisions.py::test_the_breaker_counts_only_pauses_that_stop_a_running_campaign",
   "tests/test_decisions.py::test_dry_run_pauses_never_count_toward_the_breaker"]),
 ("7a Leadterra old pausedAt claimed", "bot/vendors/leadterra/client.py", "    if when < since:", "    if False:",
  [RACES + "::test_a_leadterra_campaign_a_person_paused_is_never_claimed_nor_resumed",
   "tests/vendors/test_leadterra.py"]),
 ("7b empty 200 read as paused", "bot/vendors/leadterra/client.py",
  '        return status, stamp, "the answer carries no campaign status"',
  '        return target, stamp, ""', ["tests/vendors/test_leadterra.py", "tests/vendors/test_write_contract.py"]),
 ("7c Smartlead UI resume-then-pause", "bot/reconciler.py",
  "            moved = (seen.changed_at is not None and record.vendor_marker is not None\n                     and seen.changed_at != record.vendor_marker)",
  "            moved = False",
  [RACES + "::test_a_resume_then_pause_in_the_smartlead_ui_makes_the_pause_a_persons"]),
 ("10 sender scope crosses vendors", "bot/inventory.py",
  "if not target.vendor or _within(c, target.vendor)]", "]", ["tests/test_inventory.py"]),
 ("12 dry run never carried live", "bot/worker.py", "            if ref.route in live_vendors:", "            if False:",
  ["tests/test_decisions.py::test_holds_recorded_in_dry_run_are_paused_when_the_vendor_goes_live"]),
 ("12b dry-run pauses counted by the breaker", "bot/reconciler.py",
  "        if ref.route in self._dry:\n            await self._finish(record, holds, settle=True, dry_paused=True,",
  ("        if ref.route in self._dry and await self._admitted(ref, record, holds) is not None:\n"
   "            await self._finish(record, holds, settle=True, dry_paused=True,"),
  ["tests/test_decisions.py::test_dry_run_pauses_never_count_toward_the_breaker"]),
 ("8 two workers on one SQLite file", "bot/state/worker_lock.py",
  "            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", "            pass",
  ["tests/test_worker_lock.py::test_a_second_worker_on_the_same_database_refuses_to_start"]),
 ("9 synchronous=NORMAL", "bot/state/sqlite.py", 'PRAGMA synchronous=FULL', 'PRAGMA synchronous=NORMAL',
  ["tests/test_decisions.py::test_commits_are_durable_on_an_os_crash"]),
 ("11 events without an id collide", "bot/web/webhooks.py", "request_id=uuid.uuid4().hex",
  "request_id=str(len(body))", ["tests/web/test_webhooks.py::test_events_without_id_or_key_are_distinct_per_post"]),
 ("13 write-ahead intent stored before the rate-limit wait", "bot/reconciler.py",
  "        result = await vendor.pause(ref.id, current=seen, guard=partial(self._wanted, str(ref), held=True),",
  ("        await self._wanted(str(ref), held=True)\n"
   "        result = await vendor.pause(ref.id, current=seen, guard=partial(self._wanted, str(ref), held=True),"),
  ["tests/test_decisions.py::test_a_crash_while_a_pause_waits_for_the_rate_limit_never_claims_a_persons_pause"]),
 ("guard: a write never withdrawn", "bot/reconciler.py", "guard=partial(self._wanted, str(ref), held=False)",
  "guard=None", [RACES + "::test_a_resume_waiting_out_a_429_is_withdrawn_when_an_alert_fires_meanwhile", STATEFUL]),
 # issue 11 and the fleet
 ("14 a write sent with another account's key", "bot/reconciler.py",
  "        vendor = self._vendors.get(ref.route)\n        if vendor is None:\n            raise AccountError",
  ("        vendor = next((v for r, v in self._vendors.items() if r.startswith(ref.vendor)), None)\n"
   "        if vendor is None:\n            raise AccountError"),
  ["tests/integration/test_accounts_pipeline.py"]),
 ("15 no writer lease across processes", "bot/fleet.py", "        while not await self._claim(campaign):",
  "        while not await self._claim(campaign) and False:", ["tests/test_fleet.py"]),
 ("16 a vendor write after the writer lease ran out", "bot/fleet.py",
  "        if self._clock() - confirmed < self.seconds * 2 / 3 or await self._claim(campaign):",
  "        if True:", ["tests/test_fleet.py"]),
 ("17 windows taken without their row locks", "bot/state/postgres.py",
  ' OFFSET 0 FOR UPDATE) AS w"', ' OFFSET 0) AS w"', ["tests/state/test_postgres_fleet.py"]),
 # the batch path and polling
 ("18 an unjudged batch acked at shutdown", "bot/worker.py",
  "            group.done.cancel()", "            group.done.set_result(None)",
  ["tests/test_worker.py::test_a_batch_whose_judgement_is_cancelled_is_never_acked"]),
 ("19 the same event twice in a batch counted twice", "bot/worker.py",
  "                recorded.discard(item.event.id)", "                pass",
  ["tests/test_worker.py::test_the_same_event_twice_in_one_batch_is_recorded_and_counted_once"]),
 ("20 a multiple-ack across a delivery in flight", "bot/broker/acks.py",
  "            if state is _State.IN_FLIGHT:\n                break", "            if False:\n                break",
  ["tests/broker/test_acks.py", "tests/integration/test_amqp_batches.py"]),
 ("21 poll events not deduplicated per period", "bot/polling.py",
  'return Event(id=f"poll:{ref}:{period}"', 'return Event(id=f"poll:{ref}:{now.timestamp()}"',
  ["tests/test_poller.py"]),
 ("22 the two bounce guards keep two holds", "rules/bounce-guard-analytics.yaml",
  "shared_hold: bounce-guard", "", ["tests/test_bounce_guards_properties.py"]),
 # the worker's CPU round
 ("23 the engine's short path judges a paused window", "bot/engine.py",
  'measure.min_age is None and not new.get("active"):', "measure.min_age is None:",
  ["tests/test_engine.py", "tests/test_decisions.py"]),
 ("23b the short path never warns", "bot/engine.py",
  "        if rule.warn is not None and counted[3] >= (rule.warn.min_sample or measure.min_sample):",
  "        if False:", ["tests/test_engine_language.py"]),
 ("24 a batch's windows never stored", "bot/worker.py",
  "            await tx.set_windows(changed, now)", "            pass",
  ["tests/test_worker.py"]),
] + ([tuple(x) for x in __import__("json").loads(sys.argv[1])] if len(sys.argv) > 1 else [])
only = os.environ.get("ONLY")
missed = 0
for name, path, old, new, tests in M:
    if only and not name.startswith(only):
        continue
    file = Path(path)
    src = file.read_text()
    if src.count(old) != 1:
        sys.exit(f"stale mutation {name!r}: {path} holds its code {src.count(old)} times, not once")
    file.write_text(src.replace(old, new))
    try:
        out = subprocess.run([".venv/bin/pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "timeout=300", *tests],
                             capture_output=True, text=True, check=False,
                             env={**os.environ, "BOT_HYPOTHESIS_EXAMPLES": "300"})
    finally:
        file.write_text(src)
    failed = [line.split(" ")[1] for line in out.stdout.splitlines() if line.startswith("FAILED")]
    missed += not out.returncode
    print(f"{name:45s} {'CAUGHT by ' + failed[0] if out.returncode else 'MISSED'}", flush=True)
sys.exit(1 if missed else 0)
