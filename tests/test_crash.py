"""Workers killed and stopped mid-batch: ``lazcancel worker`` processes against the sandbox.

A SIGKILLed worker's chunks are re-run as soon as its heartbeat is gone (not when arq's
in-progress key expires, ten minutes on); a SIGTERMed worker leaves its chunks to the next one
without using up their tries.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from jobs.enqueue import QUEUE_NAME
from lazada_sandbox import SandboxServer, Scenario
from lazcancel.embedded_redis import RedisServer, free_port
from lazcancel.models import Outcome
from lazcancel.settings import Settings
from lazcancel.store import BatchSpec
from tests.flow_helpers import creates, read_batch, rows, settings_for
from tests.test_faults import assert_agrees_with_sandbox
from worker.liveness import Liveness, heartbeat_key
from worker.runner import process_batch, submit_batch

WORKER_TIMEOUT_S = 120.0


class Workers:
    """Starts ``lazcancel worker --burst`` processes with the sandbox's credentials."""

    def __init__(self, sb: SandboxServer, redis_url: str, home: Path, config: str) -> None:
        self.home = home
        seller = sb.scenario.sellers["default"]
        (home / "lazcancel.toml").write_text(config)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LAZADA_", "LAZCANCEL_"))},
            "REDIS_URL": redis_url,
            "LAZADA_API_URL": sb.url,
            "LAZADA_APP_KEY": sb.scenario.app_key,
            "LAZADA_APP_SECRET": sb.scenario.app_secret,
            "LAZADA_ACCESS_TOKEN": seller.access_token,
            "LAZCANCEL_CONFIG": str(home / "lazcancel.toml"),
            "LAZCANCEL_HOME": str(home),
        }
        self.started: list[asyncio.subprocess.Process] = []
        self.logs: list[Path] = []

    async def start(self) -> asyncio.subprocess.Process:
        log = self.home / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "lazcancel", "worker", "--burst",
                env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        self.started.append(proc)
        return proc

    def events(self, name: str) -> list[str]:
        return [line for log in self.logs for line in log.read_text().splitlines() if name in line]

    async def stop_all(self) -> None:
        for proc in self.started:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def workers_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def factory(sb: SandboxServer, redis_url: str, config: str) -> Workers:
        made.append(Workers(sb, redis_url, tmp_path, config))
        return made[-1]

    yield factory
    for workers in made:
        await workers.stop_all()


def worker_config(*, heartbeat: float, rate: float, max_tries: int = 50) -> str:
    return f"""
[limits]
rate = {rate}
[retry]
backoff_base = 0.01
backoff_cap = 0.05
confirm_delay = 0.05
[worker]
heartbeat_seconds = {heartbeat}
max_tries = {max_tries}
"""


async def submit(settings: Settings, redis_url: str, order_ids: Sequence[str]) -> str:
    spec = BatchSpec(batch_id=f"crash-{random.randrange(10**6)}", seller="default")
    await submit_batch(settings=settings, redis_url=redis_url, spec=spec, rows=rows(*order_ids))
    return spec.batch_id


async def finish(proc: asyncio.subprocess.Process) -> int:
    return await asyncio.wait_for(proc.wait(), WORKER_TIMEOUT_S)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_sigkill_twenty_times_loses_nothing_and_cancels_nothing_twice(
    make_sandbox: Any, redis_url: str, workers_factory: Callable[..., Workers]
) -> None:
    sb = await make_sandbox(Scenario.generate(n_orders=2000, seed=11))
    order_ids = [o.order_id for o in sb.scenario.orders]
    batch_id = await submit(settings_for(sb), redis_url, order_ids)
    # 25 calls/s per API: the batch needs minutes of calls, so every kill lands mid-batch.
    workers = workers_factory(sb, redis_url, worker_config(heartbeat=1.0, rate=25))
    rng = random.Random(20261204)
    started = time.monotonic()

    for _ in range(20):
        proc = await workers.start()
        await asyncio.sleep(rng.uniform(0.5, 6.0))
        assert proc.returncode is None, "the batch must still be running when the kill comes"
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    calls_before_last = len(sb.ledger)
    assert calls_before_last > 2000, "the killed workers must have made progress"

    assert await finish(await workers.start()) == 0
    run = await read_batch(redis_url, batch_id)
    assert run.status.state == "done"
    tally = assert_agrees_with_sandbox(sb, run.results, order_ids)
    assert sum(tally.values()) == len(run.results)
    assert not [key for key in tally if key.startswith("failed")], tally
    assert tally["cancelled:"] > 2500
    # Chunks were taken back from dead workers, well before arq's 10-minute in-progress expiry.
    assert workers.events("job_reclaimed")
    assert time.monotonic() - started < 400


async def test_deploys_leave_chunks_for_the_next_worker_without_using_their_tries(
    make_sandbox: Any, redis_url: str, workers_factory: Callable[..., Workers]
) -> None:
    sb = await make_sandbox(Scenario.generate(n_orders=600, seed=5))
    order_ids = [o.order_id for o in sb.scenario.orders]
    batch_id = await submit(settings_for(sb), redis_url, order_ids)
    # One try per chunk: any start that a shutdown used up would fail its chunk for good.
    workers = workers_factory(sb, redis_url, worker_config(heartbeat=1.0, rate=40, max_tries=1))

    for deploy in range(4):
        proc = await workers.start()
        await asyncio.sleep(2.5)
        assert proc.returncode is None, "the batch must still be running at the deploy"
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        if deploy % 2:
            # An impatient supervisor: the second signal cancels the calls in flight.
            await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
        assert await finish(proc) == 0
        assert time.monotonic() - stopped < 10, "a deploy must not wait for whole chunks"

    assert await finish(await workers.start()) == 0
    run = await read_batch(redis_url, batch_id)
    assert run.status.state == "done"
    tally = assert_agrees_with_sandbox(sb, run.results, order_ids)
    assert not [key for key in tally if key.startswith("failed")], tally
    assert workers.events("chunk_paused"), "single signals must have paused chunks"
    assert not workers.events("max retries"), "no chunk may run out of tries"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis that keeps its data on disk, as a deployed one does, so it can be restarted."""
    server = RedisServer(port=free_port(), data_dir=tmp_path / "redis")
    server.start()
    yield server
    server.close()


async def supervise(workers: Workers, count: int, until: Callable[[], Awaitable[bool]]) -> int:
    """Keep ``count`` workers running, as the Procfile's supervisor does; returns restarts."""
    running = [await workers.start() for _ in range(count)]
    restarts = 0
    while not await until():
        for n, proc in enumerate(running):
            if proc.returncode is not None:
                restarts += proc.returncode != 0
                running[n] = await workers.start()
        await asyncio.sleep(0.2)
    for proc in running:
        await finish(proc)
    return restarts


async def test_redis_restart_mid_batch_keeps_workers_busy_and_loses_no_outcome(
    make_sandbox: Any, own_redis: RedisServer, workers_factory: Callable[..., Workers]
) -> None:
    sb = await make_sandbox(Scenario.generate(n_orders=400, seed=9))
    order_ids = [o.order_id for o in sb.scenario.orders]
    batch_id = await submit(settings_for(sb), own_redis.url, order_ids)
    workers = workers_factory(sb, own_redis.url, worker_config(heartbeat=2.0, rate=40))
    marks: dict[str, float] = {}

    async def outage() -> None:
        await asyncio.sleep(3)
        marks["down"] = time.monotonic()
        await asyncio.to_thread(own_redis.stop)
        await asyncio.sleep(3)
        await asyncio.to_thread(own_redis.start)
        marks["up"], marks["calls_up"] = time.monotonic(), len(sb.ledger)
        while len(sb.ledger) < marks["calls_up"] + 20:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        marks["busy_again"] = time.monotonic()

    restart = asyncio.create_task(outage())
    redis = aioredis.Redis.from_url(own_redis.url, decode_responses=True)

    async def finished() -> bool:
        if not restart.done():
            return False
        return bool(await redis.hget(f"lazcancel:batch:{batch_id}", "state") == "done")

    restarts = await supervise(workers, 2, finished)
    await redis.aclose()
    # The workers rode the restart out: none died, and calls resumed within seconds.
    assert restarts == 0
    assert marks["busy_again"] - marks["up"] < 5
    assert workers.events("worker_heartbeat_failed"), "Redis must have gone away under them"
    run = await read_batch(own_redis.url, batch_id)
    tally = assert_agrees_with_sandbox(sb, run.results, order_ids)
    assert not [key for key in tally if key.startswith("failed")], tally


async def test_outcome_decided_while_redis_is_down_is_written_when_it_returns(
    make_sandbox: Any, own_redis: RedisServer
) -> None:
    sb = await make_sandbox(Scenario.generate(n_orders=1, seed=3))
    [only] = sb.scenario.orders
    pending = [i.order_item_id for i in only.items if i.status == "pending"]
    assert pending, "the seeded order must have a cancellable item"
    # The create is answered 2 s late: Redis stops while it is on its way.
    sb.faults.set({"script": {"/order/reverse/cancel/create": ["slow"]}, "slow_seconds": 2.0})
    settings = settings_for(sb)
    batch_id = await submit(settings, own_redis.url, [only.order_id])
    marks: dict[str, float] = {}

    async def outage() -> None:
        while not creates(sb):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.to_thread(own_redis.stop)
        marks["down"] = time.time()
        await asyncio.sleep(4)
        marks["up"] = time.time()
        await asyncio.to_thread(own_redis.start)

    restart = asyncio.create_task(outage())
    await process_batch(settings=settings, redis_url=own_redis.url, batch_id=batch_id)
    await restart

    run = await read_batch(own_redis.url, batch_id)
    for item_id in pending:
        result = run.of(only.order_id, item_id)
        assert result.outcome is Outcome.CANCELLED
        # Stamped when decided, while Redis was down; written once it came back.
        decided = datetime.strptime(result.updated_at, "%Y-%m-%dT%H:%M:%SZ")
        decided_at = decided.replace(tzinfo=UTC).timestamp()
        assert marks["down"] - 1 <= decided_at < marks["up"] - 1
    assert_agrees_with_sandbox(sb, run.results, [only.order_id])


async def test_liveness_reclaims_only_jobs_of_dead_or_no_workers(redis_url: str) -> None:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    watcher = Liveness(redis, queue_name=QUEUE_NAME, ttl=1.0)
    await redis.set(heartbeat_key("live-worker"), "1", px=60_000)
    jobs = {"dead": "gone-worker", "alive": "live-worker", "starting": ""}
    for job, owner in jobs.items():
        await redis.zadd(QUEUE_NAME, {job: 1})
        await redis.set(f"arq:in-progress:{job}", "1", px=600_000)
        if owner:
            await redis.hset("lazcancel:running", job, owner)

    assert await watcher.check() == []  # first sight: suspicion only
    await asyncio.sleep(0.3)
    assert await watcher.check() == []  # not silent for a whole heartbeat yet
    # Started again meanwhile by a live worker: its in-progress key is new, so no longer suspect.
    await redis.set("arq:in-progress:starting", "1", px=610_000)
    await asyncio.sleep(0.8)
    assert await watcher.check() == ["dead"]
    assert not await redis.exists("arq:in-progress:dead")
    assert await redis.hget("lazcancel:running", "dead") is None
    assert await redis.exists("arq:in-progress:alive", "arq:in-progress:starting") == 2
    # Still unclaimed a heartbeat later: a worker died between arq's start and its record.
    await asyncio.sleep(1.1)
    assert await watcher.check() == ["starting"]
    assert await redis.exists("arq:in-progress:alive") == 1
    await redis.aclose()
