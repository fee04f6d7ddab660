"""What `PRAGMA synchronous=FULL` costs the state store, next to NORMAL, through its group commit.

    .venv/bin/python -m bench.durability                  # about 20 s
    .venv/bin/python -m bench.durability --seconds 1      # smoke run
    .venv/bin/python -m bench.durability --dir /var/lib/x # measure another disk

In WAL mode NORMAL fsyncs only at checkpoints: a COMMIT is atomic and survives the process dying, but an
OS crash or power loss can undo the last commits, including a recorded `pause-sent` intent or events the
broker was already told were handled (acked). FULL fsyncs the WAL at every COMMIT, so what was committed
stays committed. The state store pays that once per group commit, so the price depends on how many
transactions share a COMMIT:

- lone: one transaction after another (a quiet worker: every event is its own group): COMMITs/s = events/s;
- 16 in flight: 16 concurrent writers, as the worker's deliveries with BOT_PREFETCH=16 (groups form).

Each transaction is the worker's write shape: the event's row, its rule window, an audit row. The database
lives in `--dir` (default: a temporary directory in `./.campaign-guard/`, where `run` keeps its state; a
tmpfs would make every fsync free and the comparison meaningless: the file system is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench._common import REPO
from bot.events import CampaignRef, Event
from bot.state.base import AuditRow
from bot.state.sqlite import SqliteStateStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MODES = ("NORMAL", "FULL")


@dataclass
class Figure:
    events: int
    commits: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def commits_per_s(self) -> float:
        return self.commits / self.seconds


def _event(n: int) -> Event:
    return Event(id=f"bench:durability:{n}", type="email.sent", source="smartlead", occurred_at=NOW,
                 campaign=CampaignRef.parse(f"smartlead:{1000 + n % 50}"), data={"sender_email": f"s{n % 50}@acme.example"})


async def _one(store: SqliteStateStore, n: int) -> None:
    event = _event(n)
    async with store.transaction() as tx:
        await tx.record_event(event, NOW)
        await tx.set_window("bounce-guard", str(event.campaign), {"seq": "d" * (n % 200), "ids": [event.id]}, NOW)
        await tx.add_audit(AuditRow(NOW, "decision", str(event.campaign), "bounce-guard", "pause", "hold_placed",
                                    f"bench {n}"))


async def _measure(path: Path, mode: str, *, concurrency: int, seconds: float) -> Figure:
    async with SqliteStateStore.open(path) as store:
        await store._db.execute(f"PRAGMA synchronous={mode}")   # the store opens with FULL; NORMAL is the before
        (current,) = await (await store._db.execute("PRAGMA synchronous")).fetchone()
        assert current == {"NORMAL": 1, "FULL": 2}[mode], current
        done, commits_before = 0, store.commits
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        async def writer(offset: int) -> None:
            nonlocal done
            n = offset
            while time.perf_counter() < deadline:
                await _one(store, n)
                n += concurrency
                done += 1

        await asyncio.gather(*(writer(i + 1_000_000 * concurrency) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        return Figure(done, store.commits - commits_before, elapsed)


def _filesystem(path: Path) -> str:
    """The mount's file system type (ext4, xfs, tmpfs...), from /proc/mounts."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return f"{kind} at {best or '?'}"


async def main(directory: Path | None, seconds: float, repeat: int) -> None:
    parent = directory or REPO / ".campaign-guard"
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-durability-", dir=parent))
    try:
        print(f"state database in {root} ({_filesystem(root)}), {os.cpu_count()} CPUs, "
              f"{seconds:g} s per figure, best of {repeat}")
        print(f"{'synchronous':<12} {'writers':>8} {'events/s':>10} {'COMMITs/s':>10} {'events/COMMIT':>14}")
        results: dict[tuple[str, int], Figure] = {}
        for concurrency in (1, 16):
            for mode in MODES:
                runs = []
                for attempt in range(repeat):
                    path = root / f"{mode.lower()}-{concurrency}-{attempt}.db"
                    runs.append(await _measure(path, mode, concurrency=concurrency, seconds=seconds))
                best = max(runs, key=lambda f: f.events_per_s)
                results[(mode, concurrency)] = best
                per_commit = best.events / best.commits if best.commits else float("nan")
                print(f"{mode:<12} {concurrency:>8} {best.events_per_s:>10,.0f} {best.commits_per_s:>10,.0f} "
                      f"{per_commit:>14.1f}")
        for concurrency in (1, 16):
            normal, full = results[("NORMAL", concurrency)], results[("FULL", concurrency)]
            print(f"FULL/NORMAL with {concurrency:>2} writer(s): {full.events_per_s / normal.events_per_s:.2f} "
                  f"of the events/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each figure (default 3)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure, the best is kept (default 1)")
    parser.add_argument("--dir", type=Path, help="where to put the database (default: under the repository)")
    options = parser.parse_args()
    asyncio.run(main(options.dir, options.seconds, options.repeat))
