"""Generates tests/backtest/fixtures/three-days.jsonl: recorded events for the backtest tests (seeded, deterministic).

Run `.venv/bin/python tests/backtest/make_fixture.py` after changing it; test_backtest.py checks that the
committed file is exactly what this script produces. Three simulated working days (08:00-18:00 UTC) of:

- smartlead:1001, leadterra:camp_healthy  healthy: one bounce per 100 sends
- smartlead:1002, leadterra:camp_spike    a bounce spike after a healthy start: must cross 3% after 50+ sends
- smartlead:1003                          hovers just under: a bounce every 40th send (2.5% of any 200); every
                                          bounce is delivered twice, so counting a redelivery would cross 3%
- smartlead:1004                          paused by a person, then late bounces cross 3%: the hold is placed,
                                          the pause is skipped (someone else's pause is never claimed)
- leadterra:camp_small                    25% bounces but only 40 sends: below the minimum sample of 50
- inbox:q7w8e9                            10% bounces, but bounce-guard only watches Smartlead and Leadterra
- opens, replies, unsubscribes, `vendor.other` events, a campaign-less `account.disconnected`, and ~4% of
  all events duplicated (redeliveries: same id, same payload), appended at the end of the file.

The file is grouped by campaign, not in time order: the backtest sorts by `occurred_at`.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.events import Event

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "three-days.jsonl"
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
DAY_SECONDS = 10 * 3600          # sending hours per day
DAYS = 3
SEED = 20261102


def _at(seconds: float) -> datetime:
    """Working-time offset (seconds since the first 08:00) → wall-clock time."""
    day, within = divmod(int(seconds), DAY_SECONDS)
    return START + timedelta(days=day, seconds=within)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Campaign:
    def __init__(self, rng: random.Random, ref: str, sender: str) -> None:
        self.rng, self.ref, self.sender = rng, ref, sender
        self.vendor, _, self.cid = ref.partition(":")
        self.events: list[dict[str, Any]] = []

    def event(self, kind: str, n: int, at: datetime, **data: Any) -> dict[str, Any]:
        event = {"id": f"{self.vendor}:{kind}:{self.cid}-{n}", "type": kind, "source": self.vendor,
                 "occurred_at": _iso(at), "campaign": self.ref, "data": {"sender_email": self.sender, **data}}
        self.events.append(event)
        return event

    def send_times(self, sends: int, *, span: float = DAYS * DAY_SECONDS) -> list[datetime]:
        """`sends` sends spread over `span` working seconds, at least half a gap apart."""
        gap = span / sends
        return [_at(i * gap + self.rng.uniform(0, gap / 2)) for i in range(sends)]

    def play(self, sends: int, bounced: set[int], *, span: float = DAYS * DAY_SECONDS) -> list[datetime]:
        """Sends, and a bounce 5-40 s after each send in `bounced` (always before the next send)."""
        times = self.send_times(sends, span=span)
        for i, at in enumerate(times):
            self.event("email.sent", i, at, lead=f"lead{i}@prospect{i % 23}.example")
            roll = self.rng.random()
            if roll < 0.10:
                self.event("email.opened", i, at + timedelta(minutes=self.rng.randint(2, 90)))
            elif roll < 0.12:
                self.event("email.replied", i, at + timedelta(hours=self.rng.randint(1, 5)))
            elif roll < 0.13:
                self.event("lead.unsubscribed", i, at + timedelta(hours=self.rng.randint(1, 5)))
            if i in bounced:
                self.event("email.bounced", i, at + timedelta(seconds=self.rng.randint(5, 40)),
                           bounce_type=self.rng.choice(["hard", "soft"]))
        return times


def _one_per_block(rng: random.Random, start: int, stop: int, block: int) -> set[int]:
    """One bounce at a random position in each `block` of sends in [start, stop)."""
    return {rng.randrange(b, min(b + block, stop)) for b in range(start, stop, block)}


def generate() -> list[str]:
    """The fixture's lines."""
    rng = random.Random(SEED)
    campaigns: list[_Campaign] = []

    def campaign(ref: str, sender: str) -> _Campaign:
        made = _Campaign(rng, ref, sender)
        campaigns.append(made)
        return made

    campaign("smartlead:1001", "ana@acme-mail.example").play(500, _one_per_block(rng, 0, 500, 100))
    campaign("smartlead:1002", "ben@acme-mail.example").play(
        450, _one_per_block(rng, 0, 250, 100) | set(rng.sample(range(250, 450), 20)))
    hover = campaign("smartlead:1003", "cat@acme-mail.example")
    hover.play(600, {i for i in range(600) if i % 40 == 39})
    hover.events += [dict(e) for e in hover.events if e["type"] == "email.bounced"]   # redelivered, each once

    late = campaign("smartlead:1004", "dan@acme-mail.example")
    times = late.play(80, {10}, span=DAY_SECONDS)
    paused_at = times[-1] + timedelta(hours=1)
    late.events.append({"id": "events:campaign.paused:1004", "type": "campaign.paused", "source": "events",
                        "occurred_at": _iso(paused_at), "campaign": late.ref, "data": {"by": "user"}})
    for n in range(4):
        late.event("email.bounced", 100 + n, paused_at + timedelta(minutes=20 * (n + 1)), bounce_type="hard")

    campaign("leadterra:camp_healthy", "eve@beta-send.example").play(400, _one_per_block(rng, 0, 400, 100))
    campaign("leadterra:camp_spike", "fay@beta-send.example").play(
        300, {rng.randrange(0, 100)} | {i for i in range(100, 300) if i % 8 == 3})
    campaign("leadterra:camp_small", "gus@beta-send.example").play(40, set(rng.sample(range(40), 10)))
    campaign("inbox:q7w8e9", "hal@gamma.example").play(200, set(rng.sample(range(200), 20)))

    noise = _Campaign(rng, "smartlead:1001", "ana@acme-mail.example")
    for n in range(40):
        at = _at(rng.uniform(0, DAYS * DAY_SECONDS))
        vendor_type = rng.choice(["EMAIL_LINK_CLICKED_V2", "LEAD_CATEGORY_TAGGED", "WARMUP_SCORE_UPDATED"])
        noise.event("vendor.other", n, at, vendor_type=vendor_type)
    extra = [{"id": f"smartlead:account.disconnected:{n}", "type": "account.disconnected", "source": "smartlead",
              "occurred_at": _iso(_at(rng.uniform(0, DAYS * DAY_SECONDS))),
              "data": {"email": "ana@acme-mail.example"}} for n in range(3)]

    events = [e for c in campaigns for e in c.events] + noise.events + extra
    events += [dict(e) for e in rng.sample(events, len(events) // 25)]      # redeliveries
    return [Event.model_validate(e).model_dump_json() for e in events]      # canonical, and validated


def main() -> None:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    lines = generate()
    FIXTURE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} events to {FIXTURE}")


if __name__ == "__main__":
    main()
