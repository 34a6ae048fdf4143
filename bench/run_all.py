"""``make bench``: the four tables of docs/benchmarks.md in one run, against the sandbox on
loopback. ``--quick`` is a smoke run (small batches, one repeat); its figures are not the ones
to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time

import bench_limits
import bench_scale
import bench_throughput

from lazcancel.log import configure_logging


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small batches, one repeat")
    parser.add_argument("--repeats", type=int, help="runs per measurement (default 3)")
    parser.add_argument("--orders", type=int, help="batch of tables 1-3 (default 5000)")
    parser.add_argument("--limit", type=int, default=200, help="L, calls/s per API (table 1)")
    parser.add_argument("--scale-orders", type=int, help="batch of table 4 (default 100000)")
    parser.add_argument("--scale-seconds", type=float, default=30.0, help="table 4 run time")
    parser.add_argument("--full-scale", action="store_true", help="table 4: the whole batch")
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.orders = args.orders or (1000 if args.quick else 5000)
    args.scale_orders = args.scale_orders or (20_000 if args.quick else 100_000)
    if args.quick:
        args.scale_seconds = min(args.scale_seconds, 5.0)
    return args


async def run(args: argparse.Namespace) -> None:
    sdk_orders = {0.0: min(args.orders, 100 if args.quick else 500)}
    sdk_orders[0.02] = min(args.orders, 40 if args.quick else 150)

    limits = await bench_limits.measure(orders=args.orders, limit=args.limit, repeats=args.repeats)
    speed = await bench_throughput.measure(
        orders=args.orders, repeats=args.repeats, sdk_orders=sdk_orders
    )
    scale = await bench_scale.measure(
        orders=args.scale_orders, process_s=None if args.full_scale else args.scale_seconds
    )

    bench_limits.utilisation_table(limits, limit=args.limit)
    calls = [
        bench_limits.calls_row(
            f"{n} worker{'s' if n > 1 else ''}, L = {args.limit}",
            [(r.calls, r.cancelled) for r in series],
        )
        for n, series in limits.items()
    ]
    calls += [
        bench_limits.calls_row(
            f"{series[0].label}, {series[0].latency_s * 1000:.0f} ms",
            [(r.calls, r.orders) for r in series],
        )
        for series in speed
        if series[0].label.startswith("lazcancel")
    ]
    bench_limits.calls_table(calls)
    bench_throughput.throughput_table(speed)
    bench_scale.scale_table(scale)


def main() -> None:
    args = parse_args()
    configure_logging(level="warning")
    start = time.perf_counter()
    asyncio.run(run(args))
    print(
        f"\n{'quick run' if args.quick else 'run'} took {time.perf_counter() - start:.0f} s on "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}; "
        f"command: {' '.join(['bench/run_all.py', *sys.argv[1:]])}"
    )


if __name__ == "__main__":
    main()
