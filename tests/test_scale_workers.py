"""Two worker processes against one sandbox limit: the shared limiter keeps them both under it."""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

from jobs.enqueue import new_batch_id
from lazada_sandbox import LedgerEntry, SandboxServer
from lazcancel.store import BatchSpec
from tests.flow_helpers import APP_KEY, APP_SECRET, TOKEN, item, order, read_batch, rows, scenario
from tests.flow_helpers import settings_for as flow_settings
from tests.sandbox_fixtures import MakeSandbox
from worker.runner import submit_batch

BURST_WORKER = Path(__file__).resolve().parents[1] / "bench" / "burst_worker.py"
LIMIT = 5
# Two chunks of the flow's 50 orders, so that each process gets one.
ORDERS = 60


def busiest_window(stamps: list[float], span: float = 1.0) -> int:
    """The most calls that fall within any half-open window [t, t + span)."""
    stamps = sorted(stamps)
    return max((bisect.bisect_left(stamps, t + span) - i for i, t in enumerate(stamps)), default=0)


def calls_by_route(ledger: list[LedgerEntry]) -> dict[str, list[float]]:
    by_route: dict[str, list[float]] = defaultdict(list)
    for entry in ledger:
        by_route[entry.route].append(entry.monotonic)
    return by_route


def worker_env(sb: SandboxServer, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAZADA_", "LAZCANCEL_"))}
    env.update(
        REDIS_URL=redis_url,
        LAZADA_API_URL=sb.url,
        LAZADA_APP_KEY=APP_KEY,
        LAZADA_APP_SECRET=APP_SECRET,
        LAZADA_ACCESS_TOKEN=TOKEN,
        LAZCANCEL_RATE_LIMIT=str(LIMIT),
    )
    return env


async def run_worker(env: dict[str, str]) -> list[dict[str, object]]:
    """Run one burst worker process to the end; its JSON log events."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BURST_WORKER),
        "--max-jobs=1",
        "--log-level=info",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=90)
    text = stderr.decode(errors="replace")
    assert proc.returncode == 0, text[-2000:]
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_two_worker_processes_stay_under_one_shared_limit(
    make_sandbox: MakeSandbox, redis_url: str
) -> None:
    order_ids = [str(700_000_000_000_000 + n * 100_000) for n in range(ORDERS)]
    sb = await make_sandbox(
        scenario(
            *(order(o, item(str(int(o) + 1))) for o in order_ids),
            rate_limit=LIMIT,
        )
    )
    settings = flow_settings(sb, rate_limit=float(LIMIT))
    spec = BatchSpec(batch_id=new_batch_id(), seller="default")
    await submit_batch(settings=settings, redis_url=redis_url, spec=spec, rows=rows(*order_ids))

    env = worker_env(sb, redis_url)
    logs = await asyncio.gather(run_worker(env), run_worker(env))

    assert [sum(e["event"] == "chunk_done" for e in events) for events in logs] == [1, 1]
    refused = [e for e in sb.ledger if e.code == "ApiCallLimit"]
    assert refused == []
    by_route = calls_by_route(sb.ledger)
    assert {route: busiest_window(stamps) for route, stamps in by_route.items()} == {
        "/orders/items/get": 2,
        "/order/reverse/cancel/validate": LIMIT,
        "/order/reverse/cancel/create": LIMIT,
    }
    # Shared, not divided: the two processes together still use most of the limit.
    validates = sorted(by_route["/order/reverse/cancel/validate"])
    assert len(validates) == ORDERS
    assert (ORDERS - 1) / (validates[-1] - validates[0]) >= 0.8 * LIMIT

    batch = await read_batch(redis_url, spec.batch_id)
    assert batch.status.state == "done"
    assert {r.outcome.value for r in batch.results.values()} == {"cancelled"}
    assert len(batch.results) == ORDERS
