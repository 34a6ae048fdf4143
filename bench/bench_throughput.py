"""Table 3: orders per second of one worker with no rate limit, at 0 and 20 ms added latency,
against a plain sequential loop with the official SDK (lazop-sdk) on the same sandbox.

Orders per second are counted between the first and the last call the sandbox received, for
lazcancel and the SDK alike. The SDK loop runs on the first orders of the batch only: at 20 ms
it would need minutes for all of them, and its rate is steady from the first order on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness as h
from lazop_sdk.base import LazopClient, LazopRequest

from lazcancel.log import configure_logging

# No limit at all would not exercise the shared limiter; this one never binds.
NO_LIMIT = 1_000_000.0
LATENCIES = (0.0, 0.02)
SPEEDUP_GOAL = 50
TUNED = {"concurrency": 128, "connection_limit": 256}


@dataclass(frozen=True)
class Run:
    label: str
    latency_s: float
    orders: int
    span_s: float
    wall_s: float
    calls: int

    @property
    def per_second(self) -> float:
        return self.orders / self.span_s


def tuned_config(directory: Path) -> Path:
    path = directory / "tuned.toml"
    path.write_text(
        f"[limits]\nconcurrency = {TUNED['concurrency']}\n"
        f"[http]\nconnection_limit = {TUNED['connection_limit']}\n",
        encoding="utf-8",
    )
    return path


async def lazcancel_run(
    st: h.Stack, ids: list[str], *, label: str, latency_s: float, config: Path | None
) -> Run:
    await st.fresh(latency_s=latency_s)
    batch_id, _ = await h.enqueue(st, NO_LIMIT, ids)
    run = await h.run_workers(st, 1, rate_limit=NO_LIMIT, config=config)
    stats = h.LedgerStats.of(await st.sandbox.ledger())
    cancelled = (await h.outcomes(st, batch_id)).get("cancelled", 0)
    return Run(label, latency_s, cancelled, stats.span(), run.wall_s, stats.calls)


def sdk_loop(url: str, ids: list[str]) -> None:
    """What a seller would write with the SDK: items, validate, create, one order at a time."""
    client = LazopClient(url, h.APP_KEY, h.APP_SECRET)
    for order_id in ids:
        items = _sdk_call(client, "/order/items/get", order_id=order_id)
        item_ids = json.dumps([str(item["order_item_id"]) for item in items])
        tip = _sdk_call(client, h.VALIDATE, order_id=order_id, order_item_id_list=item_ids)
        reason = next(
            r["reason_id"] for r in tip["reason_options"] if r["reason_name"] == "Out of Stock"
        )
        _sdk_call(
            client, h.CREATE, order_id=order_id, order_item_id_list=item_ids, reason_id=reason
        )


def _sdk_call(client: LazopClient, api: str, **params: str) -> Any:
    request = LazopRequest(api, "GET")
    for key, value in params.items():
        request.add_api_param(key, value)
    response = client.execute(request, h.TOKEN)
    if response.code != "0":
        raise RuntimeError(f"SDK call {api} answered {response.code}: {response.message}")
    return response.body["data"]


async def sdk_run(st: h.Stack, ids: list[str], *, latency_s: float) -> Run:
    await st.fresh(latency_s=latency_s)
    start = time.perf_counter()
    await asyncio.to_thread(sdk_loop, st.sandbox.url, ids)
    wall = time.perf_counter() - start
    stats = h.LedgerStats.of(await st.sandbox.ledger())
    return Run("lazop-sdk loop", latency_s, len(ids), stats.span(), wall, stats.calls)


async def measure(*, orders: int, repeats: int, sdk_orders: dict[float, int]) -> list[list[Run]]:
    """Series of runs, one series per (client, latency); series alternate within a repeat."""
    ids = h.order_ids(orders)
    series: dict[tuple[str, float], list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="lazcancel-bench-") as tmp:
        tuned = tuned_config(Path(tmp))
        setups: list[tuple[str, Path | None]] = [
            ("lazcancel, 1 worker, defaults", None),
            (f"lazcancel, 1 worker, concurrency {TUNED['concurrency']}", tuned),
        ]
        async with h.stack(orders) as st:
            for _ in range(repeats):
                for latency in LATENCIES:
                    for label, config in setups:
                        run = await lazcancel_run(
                            st, ids, label=label, latency_s=latency, config=config
                        )
                        series.setdefault((label, latency), []).append(run)
                    sample = ids[: sdk_orders[latency]]
                    run = await sdk_run(st, sample, latency_s=latency)
                    series.setdefault((run.label, latency), []).append(run)
    return sorted(series.values(), key=lambda s: (s[0].latency_s, s[0].label))


def throughput_table(all_series: list[list[Run]]) -> None:
    baseline = {
        s[0].latency_s: h.median(r.per_second for r in s)
        for s in all_series
        if s[0].label.startswith("lazop-sdk")
    }
    rows = []
    for series in all_series:
        first = series[0]
        rate = h.median(r.per_second for r in series)
        speedup = rate / baseline[first.latency_s]
        goal = ""
        if first.latency_s > 0 and not first.label.startswith("lazop-sdk"):
            goal = "met" if speedup >= SPEEDUP_GOAL else "MISSED"
        rows.append(
            [
                first.label,
                f"{first.latency_s * 1000:.0f} ms",
                f"{first.orders:,}",
                f"{h.median(r.span_s for r in series):.2f}",
                f"{h.median(r.wall_s for r in series):.2f}",
                f"{rate:,.1f}",
                f"{speedup:.1f}x",
                goal,
            ]
        )
    h.print_table(
        f"3. Throughput without limits (median of {len(all_series[0])} runs; span: first to "
        "last call at the gateway; wall: process start to exit)",
        ["client", "latency", "orders", "span s", "wall s", "orders/s", "vs SDK", "goal >= 50x"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_logging(level="warning")
    sdk_orders = {0.0: min(args.orders, 500), 0.02: min(args.orders, 150)}
    runs = asyncio.run(measure(orders=args.orders, repeats=args.repeats, sdk_orders=sdk_orders))
    throughput_table(runs)


if __name__ == "__main__":
    main()
