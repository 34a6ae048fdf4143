"""arq worker settings: which functions run, on which queue, and the start-up that wires them.

``lazcancel worker`` builds the worker from these; ``build_worker`` also serves ``lazcancel run``,
which processes its batch in-process, and ``lazcancel sweep``, the scheduler of the sweep rules.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, cast

from arq.connections import RedisSettings, create_pool
from arq.cron import CronJob, cron
from arq.typing import WorkerCoroutine
from arq.worker import Worker
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs.cancel import process_chunk
from jobs.enqueue import QUEUE_NAME
from jobs.sweep import SweepReport, housekeep, scheduled_sweep, sweep_rule
from lazcancel.errors import SettingsError
from lazcancel.settings import Settings, SweepRule, load_settings
from worker.liveness import Liveness
from worker.runtime import Runtime, open_runtime

# A chunk is 50 orders; at 10 calls/s it needs seconds. A killed worker's chunk is picked up
# again once this expires, so it stays well above a chunk's run time but not much more.
JOB_TIMEOUT_S = 600
MAX_TRIES = 50
# A chunk stops itself this long before arq's timeout would fail it, and is run again.
CHUNK_MARGIN_S = 30
# Attempts of each arq Redis command: backoff capped at 2 s rides out a two-minute restart.
REDIS_RETRIES = 64
# The sweep scheduler's own queue: chunk workers never see its cron jobs, and it queues the
# sweep batches' chunks on QUEUE_NAME for them.
SWEEP_QUEUE_NAME = "lazcancel:sweeps"
SCHEDULE_FIELDS = frozenset({"month", "day", "weekday", "hour", "minute", "second"})
WorkerMode = Literal["chunks", "sweep"]


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or load_settings()
    runtime = await open_runtime(settings, redis_url=ctx["redis_url"])
    ctx["runtime"] = runtime
    ctx["flow"] = runtime.flow
    ctx["sweep"] = runtime.sweep


async def shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is not None:
        await runtime.close()


async def chunk_startup(ctx: dict[str, Any]) -> None:
    """A chunk worker also beats, records its jobs and re-runs the jobs of dead workers."""
    await startup(ctx)
    runtime: Runtime = ctx["runtime"]
    assert runtime.flow is not None
    runtime.flow.stopping = ctx.get("stopping") or Stopping()
    timeout = float(ctx.get("job_timeout") or JOB_TIMEOUT_S)
    runtime.flow.chunk_seconds = max(timeout - CHUNK_MARGIN_S, timeout * 0.9)
    runtime.liveness = Liveness(
        runtime.redis, queue_name=QUEUE_NAME, ttl=runtime.settings.heartbeat_seconds
    )
    await runtime.liveness.start()


async def job_started(ctx: dict[str, Any]) -> None:
    liveness = ctx["runtime"].liveness
    if liveness is not None:
        await liveness.job_started(ctx["job_id"])


async def job_ended(ctx: dict[str, Any]) -> None:
    liveness = ctx["runtime"].liveness
    if liveness is not None:
        await liveness.job_ended(ctx["job_id"])


def patient_redis(redis_url: str) -> RedisSettings:
    """arq's connection, retrying through a Redis restart (about two minutes) before the
    worker gives up and exits for its supervisor to restart it."""
    return dataclasses.replace(
        RedisSettings.from_dsn(redis_url),
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=REDIS_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
    )


class Stopping:
    """Whether the worker is shutting down: a signal reached it, or it stopped taking jobs."""

    def __init__(self, worker: Worker | None = None) -> None:
        self.worker = worker
        self.signalled = False
        if worker is not None:
            worker.on_stop = self.on_stop

    def on_stop(self, _signal: Any) -> None:
        self.signalled = True

    def __call__(self) -> bool:
        return self.signalled or (self.worker is not None and not self.worker.allow_pick_jobs)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [process_chunk]
    queue_name = QUEUE_NAME
    on_startup = chunk_startup
    on_shutdown = shutdown
    on_job_start = job_started
    after_job_end = job_ended
    job_timeout = JOB_TIMEOUT_S
    max_tries = MAX_TRIES
    keep_result = 3600


def build_worker(
    settings: Settings,
    *,
    redis_url: str,
    burst: bool = False,
    handle_signals: bool = True,
    max_jobs: int = 4,
    job_timeout: float = JOB_TIMEOUT_S,
    poll_delay: float = 0.2,
    mode: WorkerMode = "chunks",
) -> Worker:
    """A worker for the cancel flow's chunks, or (``mode="sweep"``) the sweep rules' scheduler."""
    if mode == "sweep":
        return _sweep_worker(
            settings, redis_url=redis_url, handle_signals=handle_signals, poll_delay=poll_delay
        )
    ctx: dict[str, Any] = {"settings": settings, "redis_url": redis_url, "job_timeout": job_timeout}
    worker = Worker(
        functions=WorkerSettings.functions,
        queue_name=QUEUE_NAME,
        redis_settings=patient_redis(redis_url),
        on_startup=chunk_startup,
        on_shutdown=shutdown,
        on_job_start=job_started,
        after_job_end=job_ended,
        burst=burst,
        handle_signals=handle_signals,
        max_jobs=max_jobs,
        job_timeout=job_timeout,
        max_tries=settings.max_tries,
        keep_result=WorkerSettings.keep_result,
        poll_delay=poll_delay,
        ctx=ctx,
    )
    ctx["stopping"] = Stopping(worker)
    return worker


# -- sweeps --------------------------------------------------------------------------------


def _sweep_worker(
    settings: Settings, *, redis_url: str, handle_signals: bool, poll_delay: float
) -> Worker:
    jobs = sweep_cron_jobs(settings.sweeps)
    if not jobs:
        raise SettingsError(
            "no sweep rule has a schedule: add schedule = { minute = [0, 30] } (arq cron fields)"
            " to a [[sweeps]] rule in the LAZCANCEL_CONFIG file, or run lazcancel sweep --once"
        )
    return Worker(
        cron_jobs=jobs,
        queue_name=SWEEP_QUEUE_NAME,
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        job_timeout=JOB_TIMEOUT_S,
        poll_delay=poll_delay,
        # Schedules and tick names are both in UTC, whatever the machine's time zone.
        timezone=UTC,
        ctx={"settings": settings, "redis_url": redis_url},
    )


def sweep_cron_jobs(rules: tuple[SweepRule, ...]) -> list[CronJob]:
    """One arq cron job per rule with a schedule; rules without one run only with --once."""
    return [
        cron(
            _sweep_job(rule.name),
            name=f"sweep:{rule.name}",
            unique=True,
            max_tries=1,
            timeout=JOB_TIMEOUT_S,
            **cron_fields(rule),
        )
        for rule in rules
        if rule.schedule
    ]


def cron_fields(rule: SweepRule) -> dict[str, Any]:
    """The rule's schedule as arq cron arguments (a list becomes a set of allowed values)."""
    unknown = set(rule.schedule) - SCHEDULE_FIELDS
    if unknown:
        raise SettingsError(
            f"sweep {rule.name!r}: unknown schedule keys {sorted(unknown)}; "
            f"use {', '.join(sorted(SCHEDULE_FIELDS))}"
        )
    return {key: _cron_value(rule.name, key, value) for key, value in rule.schedule.items()}


def _cron_value(rule: str, key: str, value: Any) -> int | str | set[int]:
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole or (key == "weekday" and isinstance(value, str)):
        return value  # type: ignore[no-any-return]
    items = list(value) if isinstance(value, list | tuple | set) else []
    if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        return set(items)
    raise SettingsError(
        f"sweep {rule!r}: schedule.{key} must be a whole number or a list of them, got {value!r}"
    )


def _sweep_job(rule_name: str) -> WorkerCoroutine:
    async def sweep_job(ctx: dict[str, Any]) -> dict[str, Any]:
        return await scheduled_sweep(ctx, rule_name)

    sweep_job.__qualname__ = f"sweep_job[{rule_name}]"
    return cast(WorkerCoroutine, sweep_job)


async def run_sweeps_once(
    settings: Settings,
    *,
    redis_url: str,
    dry_run: bool = False,
    process: bool = True,
    now: datetime | None = None,
) -> list[SweepReport]:
    """Run every sweep rule for the current minute, then (``process``) work off its batches
    in this process, as ``lazcancel run`` does; finally remove batches past the retention."""
    runtime = await open_runtime(settings, redis_url=redis_url)
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    tick = now or datetime.now(UTC)
    try:
        assert runtime.sweep is not None
        reports = [
            await sweep_rule(runtime.sweep, rule, tick=tick, pool=pool, dry_run=dry_run)
            for rule in settings.sweeps
        ]
        await housekeep(
            runtime.redis, retention_seconds=settings.result_ttl_seconds, now=tick.timestamp()
        )
    finally:
        await pool.aclose()
        await runtime.close()
    if process and any(report.orders_queued for report in reports):
        worker = build_worker(settings, redis_url=redis_url, burst=True, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()
    return reports
