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
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lazada_sandbox import SandboxServer, Scenario
from lazcancel.settings import Settings
from lazcancel.store import BatchSpec
from tests.flow_helpers import read_batch, rows, settings_for
from tests.test_faults import assert_agrees_with_sandbox
from worker.runner import submit_batch

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
