"""Every figure the performance targets name, measured in one run on one machine.

    .venv/bin/python -m bench            # bench.load, then bench.fleet (20,000 events per case): minutes
    .venv/bin/python -m bench --quick    # smaller counts, for a smoke run

1. `bench.load`: webhook intake and the worker on SQLite against the bare aiohttp + aio-pika ceilings, and
   webhook → decision latency against bare publish → consume at 500 and at 1,000 events/s;
2. `bench.fleet`: `campaign-guard worker` processes on SQLite and on PostgreSQL, 1 against 2 and 3, with the
   workers' CPU µs per event in each case.
Then one table with each target and whether this run met it. The box is shared by the load generator,
RabbitMQ, PostgreSQL and the workers: compare the ratios within a run, not figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench import fleet, load


async def main(quick: bool) -> None:
    figures = await load.main(quick)
    print(flush=True)
    cases = await fleet.main(1_000 if quick else 20_000)
    print("\nall targets, this run")
    for figure, values, ratio, target in figures.rows():
        print(f"  {figure:<19} {values:<28} {ratio:>6}   {target}")
    for name, value, target, verdict in fleet.summary(cases):
        print(f"  {name:<48} {value:>6}   {target}  {verdict}".rstrip())
    sqlite1 = next((c for c in cases if (c.store, c.workers) == ("sqlite", 1) and not c.skipped), None)
    if sqlite1 is not None and sqlite1.measured:
        # the same worker as `campaign-guard worker` runs it, in a process of its own, against bench.load's
        # bare consumer of the same run (bench.load's own worker figure runs in the bench's process)
        print(f"  {'worker process (bench.fleet) / bare consume':<48} "
              f"{sqlite1.per_worker / figures.bare_consume:>6.0%}   >= 65%  ({sqlite1.per_worker:,.0f} / "
              f"{figures.bare_consume:,.0f} msg/s, {sqlite1.cpu_us:.0f} / {figures.bare_consume_cpu:.0f} µs CPU)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    import uvloop  # the loop campaign-guard's services run on

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(arguments.quick))
    sys.exit(0)
