"""Table 4: a 100,000-order batch. Enqueue time (``lazcancel enqueue FILE``), Redis memory per
order once queued and per item once its result is recorded, and the worker's peak RSS.

By default the worker processes the batch for a fixed time and is then stopped (SIGTERM: it
finishes the chunks in hand); the memory per recorded item is measured on what it processed.
``--full`` processes the whole batch (several minutes on two cores).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import harness as h

from lazcancel.log import configure_logging
from lazcancel.store import BatchStore

NO_LIMIT = 1_000_000.0
ENQUEUE_GOAL_S = 10.0
RSS_GOAL = 150 * 2**20
REDIS_GOAL = 300


@dataclass(frozen=True)
class Result:
    orders: int
    enqueue_s: float
    queued_bytes: int
    recorded_bytes: int
    items_done: int
    peak_rss: int
    processed_s: float

    @property
    def full(self) -> bool:
        return self.items_done >= self.orders

    @property
    def queued_per_order(self) -> float:
        return self.queued_bytes / self.orders

    @property
    def per_item_recorded(self) -> float:
        """Bytes per item with its result: its share of the queued batch plus its record."""
        return self.queued_per_order + self.recorded_bytes / max(1, self.items_done)


def write_orders_file(path: Path, ids: list[str]) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("order_id\n")
        out.writelines(f"{oid}\n" for oid in ids)


async def cli_enqueue(st: h.Stack, orders_file: Path) -> tuple[str, float]:
    """``lazcancel enqueue FILE --yes`` as a user runs it; the batch id and the wall time."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lazcancel",
        "--log-level=warning",
        "enqueue",
        str(orders_file),
        "--yes",
        cwd=h.BENCH_DIR.parent,
        env=st.worker_env(NO_LIMIT),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"enqueue exited with {proc.returncode}: {stderr.decode()[-2000:]}")
    return stdout.decode().split()[-1], elapsed


async def measure(*, orders: int, process_s: float | None) -> Result:
    ids = h.order_ids(orders)
    async with h.stack(orders) as st:
        with tempfile.TemporaryDirectory(prefix="lazcancel-bench-") as tmp:
            orders_file = Path(tmp) / "orders.csv"
            write_orders_file(orders_file, ids)
            await st.fresh()
            before = await st.used_memory()
            batch_id, enqueue_s = await cli_enqueue(st, orders_file)
        queued = await st.used_memory()

        start = time.perf_counter()
        procs = await h.spawn_workers(st, 1, rate_limit=NO_LIMIT)
        watcher = asyncio.ensure_future(h.watch_workers(procs))
        done, _ = await asyncio.wait({watcher}, timeout=process_s)
        if not done:
            procs[0].terminate()
        peak = (await watcher)[0]
        processed_s = time.perf_counter() - start
        status = await BatchStore(st.redis).status(batch_id)
        assert status is not None, f"batch {batch_id} vanished"
        recorded = await st.used_memory()
    return Result(
        orders=orders,
        enqueue_s=enqueue_s,
        queued_bytes=queued - before,
        recorded_bytes=recorded - queued,
        items_done=status.items_done,
        peak_rss=peak,
        processed_s=processed_s,
    )


def scale_table(result: Result) -> None:
    r = result
    scope = "all" if r.full else f"the {r.items_done:,} processed in {r.processed_s:.0f} s"
    h.print_table(
        f"4. Scale: a {r.orders:,}-order batch (one item each), one worker, no rate limit",
        ["measure", "value", "goal", ""],
        [
            ["enqueue: `lazcancel enqueue FILE --yes`, wall", f"{r.enqueue_s:.2f} s", "< 10 s",
             _verdict(r.enqueue_s < ENQUEUE_GOAL_S)],
            ["Redis used memory per order, queued", f"{r.queued_per_order:.0f} B", "< 300 B",
             _verdict(r.queued_per_order < REDIS_GOAL)],
            [f"Redis used memory per item with its result ({scope})",
             f"{r.per_item_recorded:.0f} B", "< 300 B", _verdict(r.per_item_recorded < REDIS_GOAL)],
            [f"worker peak RSS ({scope})", f"{r.peak_rss / 2**20:.0f} MB", "< 150 MB",
             _verdict(r.peak_rss < RSS_GOAL)],
        ],
    )  # fmt: skip


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--process-seconds", type=float, default=30.0)
    parser.add_argument("--full", action="store_true", help="process the whole batch")
    args = parser.parse_args()
    configure_logging(level="warning")
    process_s = None if args.full else args.process_seconds
    scale_table(asyncio.run(measure(orders=args.orders, process_s=process_s)))


if __name__ == "__main__":
    main()
