"""Tables 1 and 2: how much of a per-API limit L one and four workers use, and calls per order.

A batch of one-item pending orders against a sandbox that answers ApiCallLimit above L calls
per second per API; every worker is told the same L.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import harness as h

from lazcancel.log import configure_logging

# A share of L, measured on validate and create: the two calls every order makes.
LIMITED = (h.VALIDATE, h.CREATE)
FLOOR = 2 + 2 / 50
UTILISATION_GOAL = 0.95
CALLS_GOAL = 1.05


@dataclass(frozen=True)
class Run:
    workers: int
    orders: int
    cancelled: int
    wall_s: float
    span_s: float
    rates: dict[str, float]
    calls: int
    api_call_limit: int
    busiest: dict[str, int]

    @property
    def share(self) -> float:
        """The smaller of validate's and create's calls per second, over L."""
        return min(self.rates[route] for route in LIMITED)


async def one_run(st: h.Stack, ids: list[str], *, workers: int, limit: float) -> Run:
    await st.fresh()
    batch_id, _ = await h.enqueue(st, limit, ids)
    run = await h.run_workers(st, workers, rate_limit=limit)
    stats = h.LedgerStats.of(await st.sandbox.ledger())
    counts = await h.outcomes(st, batch_id)
    return Run(
        workers=workers,
        orders=len(ids),
        cancelled=counts.get("cancelled", 0),
        wall_s=run.wall_s,
        span_s=stats.span(),
        rates={route: stats.rate(route) / limit for route in LIMITED},
        calls=stats.calls,
        api_call_limit=stats.api_call_limit,
        busiest={route: stats.busiest_second(route) for route in LIMITED},
    )


async def measure(
    *, orders: int, limit: int, repeats: int, workers: tuple[int, ...] = (1, 4)
) -> dict[int, list[Run]]:
    """Runs per worker count; worker counts alternate so that drift hits each alike."""
    runs: dict[int, list[Run]] = {n: [] for n in workers}
    async with h.stack(orders, rate_limit=limit) as st:
        ids = h.order_ids(orders)
        for _ in range(repeats):
            for n in workers:
                runs[n].append(await one_run(st, ids, workers=n, limit=float(limit)))
    return runs


def utilisation_table(runs: dict[int, list[Run]], *, limit: int) -> None:
    rows = []
    for n, series in runs.items():
        share = h.median(r.share for r in series)
        refused = sum(r.api_call_limit for r in series)
        met = share >= UTILISATION_GOAL and refused == 0
        rows.append(
            [
                f"{n} worker{'s' if n > 1 else ''}",
                f"{series[0].orders:,}",
                f"{h.median(r.span_s for r in series):.1f}",
                f"{h.median(r.rates[h.VALIDATE] for r in series) * limit:.1f}",
                f"{h.median(r.rates[h.CREATE] for r in series) * limit:.1f}",
                f"{share:.1%}",
                f"{h.median(r.orders / r.span_s for r in series) / limit:.1%}",
                str(max(max(r.busiest.values()) for r in series)),
                str(refused),
                "met" if met else "MISSED",
            ]
        )
    h.print_table(
        f"1. Limit utilisation, L = {limit} calls/s per API: medians of {len(series)} runs; "
        "ApiCallLimit and the busiest second over all runs",
        [
            "workers",
            "orders",
            "span s",
            "validate/s",
            "create/s",
            "share of L",
            "orders/s÷L",
            "max in 1 s",
            "ApiCallLimit",
            "goal",
        ],
        rows,
    )


def calls_row(label: str, runs: Sequence[tuple[int, int]]) -> list[str]:
    """A row of table 2 from (calls, orders cancelled) of each run."""
    per_order = h.median(calls / cancelled for calls, cancelled in runs)
    return [
        label,
        f"{h.median(calls for calls, _ in runs):,.0f}",
        f"{h.median(cancelled for _, cancelled in runs):,.0f}",
        f"{per_order:.4f}",
        f"{FLOOR:.2f}",
        f"{per_order / FLOOR - 1:+.2%}",
        "met" if per_order <= FLOOR * CALLS_GOAL else "MISSED",
    ]


def calls_table(rows: list[list[str]]) -> None:
    h.print_table(
        "2. Calls per order (all API calls ÷ orders cancelled; floor 2 + 2/50)",
        ["run", "calls", "cancelled", "calls/order", "floor", "over floor", "goal ≤ +5 %"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_logging(level="warning")
    runs = asyncio.run(measure(orders=args.orders, limit=args.limit, repeats=args.repeats))
    utilisation_table(runs, limit=args.limit)
    calls_table(
        [
            calls_row(f"{n} worker(s), L = {args.limit}", [(r.calls, r.cancelled) for r in s])
            for n, s in runs.items()
        ]
    )


if __name__ == "__main__":
    main()
