"""Submitting a batch and processing it in this process: what ``lazcancel run`` and
``lazcancel enqueue`` share, and what the end-to-end tests drive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass

from arq.connections import ArqRedis, RedisSettings, create_pool

from jobs.enqueue import StagingReport, queue_chunks, stage_rows
from lazcancel.errors import InputError
from lazcancel.orders_file import OrderRow, RejectedRow
from lazcancel.settings import Settings
from lazcancel.store import BatchSpec, BatchStatus, BatchStore
from worker.runtime import connect_redis
from worker.settings import build_worker

Rows = Iterable[OrderRow | RejectedRow] | AsyncIterable[OrderRow | RejectedRow]


class RejectedRows(InputError):
    """Some rows were not valid order ids; nothing was enqueued."""

    def __init__(self, report: StagingReport) -> None:
        shown = "\n".join(str(r) for r in report.rejected[:20])
        more = report.rejected_count - min(len(report.rejected), 20)
        tail = f"\n... and {more} more" if more > 0 else ""
        super().__init__(
            f"{report.rejected_count} row(s) rejected; nothing was enqueued "
            f"(use --skip-invalid to enqueue the valid rows):\n{shown}{tail}"
        )
        self.report = report


@dataclass(frozen=True, slots=True)
class Submitted:
    batch_id: str
    orders: int
    duplicates: int
    rows_rejected: int
    chunks: int


async def arq_pool(redis_url: str) -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(redis_url))


async def submit_batch(
    *,
    settings: Settings,
    redis_url: str,
    spec: BatchSpec,
    rows: Rows,
    skip_invalid: bool = False,
    before_queue: Callable[[BatchStore, StagingReport], Awaitable[None]] | None = None,
) -> Submitted:
    """Stage ``rows`` and queue the batch; on rejected rows without ``skip_invalid``, or when
    ``before_queue`` raises, the staged rows are discarded and nothing is queued."""
    settings.seller(spec.seller)
    redis = connect_redis(redis_url)
    store = BatchStore(redis, ttl_seconds=settings.result_ttl_seconds)
    pool = await arq_pool(redis_url)
    try:
        await store.create_batch(spec)
        try:
            report = await stage_rows(
                store, spec.batch_id, rows, max_orders=settings.max_batch_orders
            )
            if report.rejected_count and not skip_invalid:
                raise RejectedRows(report)
            if before_queue is not None:
                await before_queue(store, report)
        except BaseException:
            await store.discard(spec.batch_id)
            raise
        chunks = await queue_chunks(
            store, pool, spec, orders=report.orders, rows_rejected=report.rejected_count
        )
        return Submitted(
            batch_id=spec.batch_id,
            orders=report.orders,
            duplicates=report.duplicates,
            rows_rejected=report.rejected_count,
            chunks=chunks,
        )
    finally:
        await pool.aclose()
        await redis.aclose()


async def process_batch(
    *,
    settings: Settings,
    redis_url: str,
    batch_id: str,
    on_progress: Callable[[BatchStatus], Awaitable[None]] | None = None,
    progress_every: float = 0.5,
) -> BatchStatus:
    """Run a burst worker in this process until the queue is empty; return the batch status."""
    worker = build_worker(settings, redis_url=redis_url, burst=True, handle_signals=False)
    redis = connect_redis(redis_url)
    store = BatchStore(redis)
    watcher = asyncio.create_task(_watch(store, batch_id, on_progress, progress_every))
    try:
        await worker.main()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await worker.close()
    status = await store.status(batch_id)
    await redis.aclose()
    if status is None:
        raise InputError(f"batch {batch_id} is not in Redis (expired or never enqueued)")
    if on_progress is not None:
        await on_progress(status)
    return status


async def _watch(
    store: BatchStore,
    batch_id: str,
    on_progress: Callable[[BatchStatus], Awaitable[None]] | None,
    every: float,
) -> None:
    if on_progress is None:
        return
    while True:
        status = await store.status(batch_id)
        if status is not None:
            await on_progress(status)
        await asyncio.sleep(every)
