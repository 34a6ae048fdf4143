"""What every benchmark needs: a private Redis, a sandbox process, burst worker processes, and
what the sandbox's ledger says about a run. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table

from jobs.enqueue import new_batch_id
from lazcancel.embedded_redis import RedisServer, free_port
from lazcancel.orders_file import OrderRow
from lazcancel.settings import SellerSettings, Settings
from lazcancel.store import BatchSpec, BatchStore
from worker.runner import submit_batch
from worker.runtime import connect_redis

BENCH_DIR = Path(__file__).resolve().parent
APP_KEY = "200001"
APP_SECRET = "bench-secret-0123456789abcdef"
TOKEN = "bench-token-default"
VALIDATE = "/order/reverse/cancel/validate"
CREATE = "/order/reverse/cancel/create"
ITEMS = "/orders/items/get"
# Order ids of realistic length (15 digits); each order's one item id follows it.
FIRST_ORDER_ID = 600_000_000_000_000
ID_STEP = 100
SAMPLE_EVERY_S = 0.1


def order_ids(n: int) -> list[str]:
    return [str(FIRST_ORDER_ID + k * ID_STEP) for k in range(n)]


def write_scenario(path: Path, n_orders: int, *, rate_limit: int | None = None) -> list[str]:
    """A store of ``n_orders`` pending one-item orders, limited to ``rate_limit`` calls/s."""
    ids = order_ids(n_orders)
    orders = [
        {
            "order_id": oid,
            "created_at": "2026-12-01T10:00:00+08:00",
            "items": [{"order_item_id": str(int(oid) + 1), "status": "pending", "sku": "SKU-A"}],
        }
        for oid in ids
    ]
    scenario: dict[str, Any] = {
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "sellers": {"default": {"access_token": TOKEN, "country": "SG"}},
        "orders": orders,
        "rate_limit": rate_limit,
    }
    path.write_text(json.dumps(scenario), encoding="utf-8")
    return ids


class SandboxProcess:
    """``bench/sandbox_server.py`` serving one scenario file on a free loopback port."""

    def __init__(self, scenario: Path) -> None:
        self.scenario = scenario
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/rest"
        self._control = f"http://127.0.0.1:{self.port}/_sandbox"
        self._proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self, wait_s: float = 120.0) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH_DIR / "sandbox_server.py"),
            f"--scenario={self.scenario}",
            f"--port={self.port}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
        )
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                raise RuntimeError(f"sandbox exited with {self._proc.returncode} at start-up")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise RuntimeError(f"sandbox did not listen on port {self.port} within {wait_s:.0f} s")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def reset(self) -> None:
        async with self._session.post(self._control + "/reset") as resp:
            resp.raise_for_status()

    async def set_latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (the sandbox's "slow" fault on every call)."""
        plan = {"rate": 1.0, "kinds": ["slow"], "slow_seconds": seconds} if seconds > 0 else {}
        async with self._session.post(self._control + "/faults", json=plan) as resp:
            resp.raise_for_status()

    async def ledger(self) -> list[dict[str, Any]]:
        async with self._session.get(self._control + "/ledger") as resp:
            resp.raise_for_status()
            body = await resp.json()
        entries: list[dict[str, Any]] = body["entries"]
        return entries

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()

    @property
    def _session(self) -> aiohttp.ClientSession:
        assert self._http is not None
        return self._http


@dataclass
class Stack:
    """One Redis and one sandbox for a series of runs; ``fresh()`` empties both between runs."""

    redis_server: RedisServer
    sandbox: SandboxProcess
    redis: aioredis.Redis

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    async def fresh(self, *, latency_s: float = 0.0) -> None:
        await self.redis.flushall()
        await self.sandbox.reset()
        if latency_s > 0:
            await self.sandbox.set_latency(latency_s)

    async def used_memory(self) -> int:
        info = await self.redis.info("memory")
        return int(info["used_memory"])

    def settings(self, rate_limit: float) -> Settings:
        seller = SellerSettings(
            name="default",
            app_key=APP_KEY,
            app_secret=APP_SECRET,
            access_token=TOKEN,
            api_url=self.sandbox.url,
        )
        return Settings(sellers={"default": seller}, rate_limit=rate_limit)

    def worker_env(self, rate_limit: float) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAZADA_", "LAZCANCEL_"))}
        env.update(
            REDIS_URL=self.redis_url,
            LAZADA_API_URL=self.sandbox.url,
            LAZADA_APP_KEY=APP_KEY,
            LAZADA_APP_SECRET=APP_SECRET,
            LAZADA_ACCESS_TOKEN=TOKEN,
            LAZCANCEL_RATE_LIMIT=repr(rate_limit),
        )
        return env


@asynccontextmanager
async def stack(n_orders: int, *, rate_limit: int | None = None) -> AsyncIterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="lazcancel-bench-") as tmp:
        path = Path(tmp) / "scenario.json"
        write_scenario(path, n_orders, rate_limit=rate_limit)
        redis_server = RedisServer(port=free_port())
        redis_server.start()
        sandbox = SandboxProcess(path)
        redis = connect_redis(redis_server.url)
        try:
            await sandbox.start()
            yield Stack(redis_server, sandbox, redis)
        finally:
            await redis.aclose()
            await sandbox.stop()
            redis_server.close()


async def enqueue(st: Stack, rate_limit: float, ids: Sequence[str]) -> tuple[str, float]:
    """Stage and queue a batch of ``ids``; its id and the seconds it took."""
    spec = BatchSpec(batch_id=new_batch_id(), seller="default")
    rows = (OrderRow(line=n, order_id=oid) for n, oid in enumerate(ids, start=1))
    start = time.perf_counter()
    await submit_batch(
        settings=st.settings(rate_limit), redis_url=st.redis_url, spec=spec, rows=rows
    )
    return spec.batch_id, time.perf_counter() - start


@dataclass
class WorkersRun:
    wall_s: float
    peak_rss: list[int] = field(default_factory=list)


def worker_command() -> list[str]:
    """What a seller runs: ``lazcancel worker --burst``, logging at its default level."""
    return [sys.executable, "-m", "lazcancel", "worker", "--burst"]


async def spawn_workers(
    st: Stack, n: int, *, rate_limit: float, config: Path | None = None
) -> list[asyncio.subprocess.Process]:
    env = st.worker_env(rate_limit)
    if config is not None:
        env["LAZCANCEL_CONFIG"] = str(config)
    return [
        await asyncio.create_subprocess_exec(
            *worker_command(),
            cwd=BENCH_DIR.parent,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(n)
    ]


async def watch_workers(procs: Sequence[asyncio.subprocess.Process]) -> list[int]:
    """Wait for every worker, sampling RSS; their peak RSS, or RuntimeError if one failed."""
    waits = [asyncio.ensure_future(_tail(p)) for p in procs]
    peaks = await sample_rss([p.pid for p in procs], waits)
    for proc, wait in zip(procs, waits, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"worker exited with {proc.returncode}: {wait.result()}")
    return peaks


async def run_workers(
    st: Stack, n: int, *, rate_limit: float, config: Path | None = None
) -> WorkersRun:
    """Start ``n`` burst workers at once and wait for all of them."""
    start = time.perf_counter()
    procs = await spawn_workers(st, n, rate_limit=rate_limit, config=config)
    peaks = await watch_workers(procs)
    return WorkersRun(wall_s=time.perf_counter() - start, peak_rss=peaks)


async def _tail(proc: asyncio.subprocess.Process) -> str:
    """Wait for ``proc``, keeping the end of its stderr for an error message."""
    _, stderr = await proc.communicate()
    return stderr.decode(errors="replace")[-2000:]


async def sample_rss(pids: Sequence[int], waits: Sequence[asyncio.Future[Any]]) -> list[int]:
    """Peak resident memory of each process in ``pids`` until every wait is done."""
    peaks = [0] * len(pids)
    handles = [psutil.Process(pid) for pid in pids]
    while not all(w.done() for w in waits):
        for k, handle in enumerate(handles):
            with suppress(psutil.NoSuchProcess):
                peaks[k] = max(peaks[k], handle.memory_info().rss)
        await asyncio.wait(waits, timeout=SAMPLE_EVERY_S)
    return peaks


async def outcomes(st: Stack, batch_id: str) -> dict[str, int]:
    status = await BatchStore(st.redis).status(batch_id)
    assert status is not None, f"batch {batch_id} vanished"
    if not status.finished:
        raise RuntimeError(f"batch {batch_id} ended in state {status.state}")
    return dict(status.counts)


@dataclass(frozen=True)
class LedgerStats:
    """What the gateway saw: calls per route, their spans, and the refusals."""

    calls: int
    by_route: dict[str, list[float]]
    api_call_limit: int

    @classmethod
    def of(cls, entries: Iterable[dict[str, Any]]) -> LedgerStats:
        by_route: dict[str, list[float]] = {}
        calls = refused = 0
        for entry in entries:
            calls += 1
            refused += entry["code"] == "ApiCallLimit"
            by_route.setdefault(entry["route"], []).append(float(entry["monotonic"]))
        for stamps in by_route.values():
            stamps.sort()
        return cls(calls=calls, by_route=by_route, api_call_limit=refused)

    def span(self, route: str | None = None) -> float:
        """Seconds from the first call to the last (of ``route``, or of all routes)."""
        if route is None:
            stamps = sorted(t for route_stamps in self.by_route.values() for t in route_stamps)
        else:
            stamps = self.by_route[route]
        return stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0

    def rate(self, route: str) -> float:
        """Calls per second of ``route`` over its span."""
        stamps = self.by_route.get(route, [])
        return (len(stamps) - 1) / self.span(route) if len(stamps) > 1 else 0.0

    def busiest_second(self, route: str) -> int:
        """The most calls of ``route`` within any one-second window [t, t + 1)."""
        stamps = self.by_route.get(route, [])
        return max(
            (bisect.bisect_left(stamps, t + 1.0) - i for i, t in enumerate(stamps)), default=0
        )


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for k, column in enumerate(columns):
        table.add_column(column, justify="left" if k == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=120).print(table)
