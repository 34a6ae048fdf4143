"""arq worker settings: which functions run, on which queue, and the start-up that wires them.

``lazcancel worker`` builds the worker from these; ``build_worker`` also serves ``lazcancel run``,
which processes its batch in-process.
"""

from __future__ import annotations

from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.worker import Worker

from jobs.cancel import process_chunk
from jobs.enqueue import QUEUE_NAME
from lazcancel.settings import Settings, load_settings
from worker.runtime import Runtime, open_runtime

# A chunk is 50 orders; at 10 calls/s it needs seconds. A killed worker's chunk is picked up
# again once this expires, so it stays well above a chunk's run time but not much more.
JOB_TIMEOUT_S = 600
MAX_TRIES = 50


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or load_settings()
    runtime = await open_runtime(settings, redis_url=ctx["redis_url"])
    ctx["runtime"] = runtime
    ctx["flow"] = runtime.flow


async def shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is not None:
        await runtime.close()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [process_chunk]
    queue_name = QUEUE_NAME
    on_startup = startup
    on_shutdown = shutdown
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
) -> Worker:
    return Worker(
        functions=WorkerSettings.functions,
        queue_name=QUEUE_NAME,
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=handle_signals,
        max_jobs=max_jobs,
        job_timeout=job_timeout,
        max_tries=MAX_TRIES,
        keep_result=WorkerSettings.keep_result,
        poll_delay=poll_delay,
        ctx={"settings": settings, "redis_url": redis_url},
    )
