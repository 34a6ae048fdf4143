"""Turning a stream of order rows into a stored batch and its chunk jobs.

Rows are staged in Redis as they are read, so memory stays bounded; the batch becomes visible
and its jobs are queued only once the whole input was accepted.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field

import structlog
from arq.connections import ArqRedis

from jobs.cancel import CHUNK_SIZE
from lazcancel.errors import InputError
from lazcancel.orders_file import OrderRow, RejectedRow
from lazcancel.store import BatchSpec, BatchStore, selection_token

QUEUE_NAME = "lazcancel:queue"
STAGE_ROWS = 1000

log = structlog.get_logger(__name__)


def new_batch_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def chunk_job_id(batch_id: str, index: int) -> str:
    """Deterministic, so queueing a chunk twice cannot run it twice."""
    return f"lazcancel:chunk:{batch_id}:{index}"


@dataclass(slots=True)
class StagingReport:
    orders: int = 0
    duplicates: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    rejected_count: int = 0


class BatchTooLarge(InputError):
    pass


async def stage_rows(
    store: BatchStore,
    batch_id: str,
    rows: Iterable[OrderRow | RejectedRow] | AsyncIterable[OrderRow | RejectedRow],
    *,
    max_orders: int,
    keep_rejected: int = 1000,
) -> StagingReport:
    """Stage rows into the batch, merging duplicates; rejected rows are collected, not staged."""
    report = StagingReport()
    pending: list[tuple[str, str]] = []

    async def flush() -> None:
        new, dup = await store.stage(batch_id, pending)
        report.orders += new
        report.duplicates += dup
        pending.clear()
        if report.orders > max_orders:
            raise BatchTooLarge(
                f"the batch holds more than {max_orders} orders (max_batch_orders); split the file"
            )

    async for row in _aiter(rows):
        if isinstance(row, RejectedRow):
            report.rejected_count += 1
            if len(report.rejected) < keep_rejected:
                report.rejected.append(row)
            continue
        pending.append((row.order_id, selection_token(row.order_item_id, row.sku)))
        if len(pending) >= STAGE_ROWS:
            await flush()
    if pending:
        await flush()
    return report


async def _aiter(
    rows: Iterable[OrderRow | RejectedRow] | AsyncIterable[OrderRow | RejectedRow],
) -> AsyncIterable[OrderRow | RejectedRow]:
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            yield row
    else:
        for row in rows:
            yield row


async def queue_chunks(
    store: BatchStore, pool: ArqRedis, spec: BatchSpec, *, orders: int, rows_rejected: int
) -> int:
    """Publish a staged batch and queue one job per chunk of orders; returns the chunk count."""
    chunks = -(-orders // CHUNK_SIZE)
    await store.publish(spec.batch_id, chunks=chunks, rows_rejected=rows_rejected)
    for index in range(chunks):
        await pool.enqueue_job(
            "process_chunk",
            spec.batch_id,
            index,
            _job_id=chunk_job_id(spec.batch_id, index),
            _queue_name=QUEUE_NAME,
        )
    if chunks == 0:
        await store.finish_empty(spec.batch_id)
    log.info("batch_enqueued", batch_id=spec.batch_id, orders=orders, chunks=chunks)
    return chunks
