"""What the command line shows and writes: batch summaries, progress, and result exports.

It formats what the store reports; it neither reads Redis itself nor decides exit codes.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import AsyncIterable, Callable
from types import TracebackType
from typing import Any, TextIO

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from jobs.cancel import CHUNK_SIZE
from lazcancel.models import ItemResult, Outcome
from lazcancel.store import BatchStatus

RESULT_FIELDS = (
    "batch_id",
    "seller",
    "order_id",
    "order_item_id",
    "sku",
    "status",
    "outcome",
    "code",
    "message",
    "request_id",
    "attempts",
    "updated_at",
)
FORMATS = ("csv", "json", "jsonl")
ID_FIELDS = frozenset({"order_id", "order_item_id"})
# A leading tab keeps a spreadsheet from reading a 16-digit id as a float (which keeps only
# 15 digits); it is invisible there, and int() or any whitespace strip gives the id back.
CSV_TEXT_PREFIX = "\t"
# Cells starting with these can run as formulas when a spreadsheet opens the file.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PROGRESS_LOG_EVERY_S = 2.0

log = structlog.get_logger(__name__)


# -- results ---------------------------------------------------------------------------------


def result_row(result: ItemResult, *, batch_id: str, seller: str) -> dict[str, Any]:
    """One result as the promised row: every field of RESULT_FIELDS, in that order."""
    return {
        "batch_id": batch_id,
        "seller": seller,
        "order_id": result.order_id,
        "order_item_id": result.order_item_id or None,
        "sku": result.sku,
        "status": result.status,
        "outcome": result.outcome.value,
        "code": result.code,
        "message": result.message,
        "request_id": result.request_id,
        "attempts": result.attempts,
        "updated_at": result.updated_at or None,
    }


def csv_cell(field: str, value: Any) -> str:
    """A CSV cell: ids as text for spreadsheets, formula-like text defused with a quote."""
    if value is None:
        return ""
    text = str(value)
    if field in ID_FIELDS:
        return CSV_TEXT_PREFIX + text
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


async def write_results(
    results: AsyncIterable[ItemResult],
    out: TextIO,
    *,
    fmt: str,
    batch_id: str,
    seller: str,
) -> int:
    """Stream ``results`` to ``out`` in ``fmt``, one row at a time; returns the row count."""
    writer = _WRITERS[fmt](out)
    count = 0
    async for result in results:
        writer.row(result_row(result, batch_id=batch_id, seller=seller))
        count += 1
    writer.close()
    return count


class _CsvWriter:
    def __init__(self, out: TextIO) -> None:
        self._csv = csv.writer(out, lineterminator="\r\n")
        self._csv.writerow(RESULT_FIELDS)

    def row(self, row: dict[str, Any]) -> None:
        self._csv.writerow([csv_cell(field, row[field]) for field in RESULT_FIELDS])

    def close(self) -> None:
        return None


class _JsonLinesWriter:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def row(self, row: dict[str, Any]) -> None:
        self._out.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        return None


class _JsonArrayWriter:
    """A JSON array written element by element, so no list of rows is ever held."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._first = True
        out.write("[")

    def row(self, row: dict[str, Any]) -> None:
        self._out.write("\n" if self._first else ",\n")
        self._out.write(json.dumps(row, ensure_ascii=False))
        self._first = False

    def close(self) -> None:
        self._out.write("]\n" if self._first else "\n]\n")


_WRITERS: dict[str, Callable[[TextIO], _CsvWriter | _JsonLinesWriter | _JsonArrayWriter]] = {
    "csv": _CsvWriter,
    "json": _JsonArrayWriter,
    "jsonl": _JsonLinesWriter,
}


# -- summaries -------------------------------------------------------------------------------


def orders_done(status: BatchStatus) -> int:
    """Orders finished, counted by whole chunks (the last chunk may be short)."""
    return min(status.orders, status.chunks_done * CHUNK_SIZE)


def summary_dict(batch_id: str, status: BatchStatus) -> dict[str, Any]:
    """The batch's state and counts as one JSON-ready object (``run --json``, ``status``)."""
    return {
        "batch_id": batch_id,
        "state": status.state,
        "seller": status.spec.seller,
        "reason": status.spec.reason,
        "skus": list(status.spec.skus),
        "dry_run": status.spec.dry_run,
        "allow_whole_package": status.spec.allow_whole_package,
        "source": status.spec.source,
        "orders": status.orders,
        "orders_done": orders_done(status),
        "duplicates": status.duplicates,
        "rows_rejected": status.rows_rejected,
        "chunks": status.chunks,
        "chunks_done": status.chunks_done,
        "items": status.items_done,
        **{outcome.value: status.counts.get(outcome.value, 0) for outcome in Outcome},
        "skipped_by_code": dict(sorted(status.codes.get(Outcome.SKIPPED.value, {}).items())),
        "failed_by_code": dict(sorted(status.codes.get(Outcome.FAILED.value, {}).items())),
        "halted": status.halted,
        "created_at": status.created_at or None,
        "updated_at": status.updated_at or None,
    }


def outcome_table(status: BatchStatus) -> Table:
    """Items per outcome, and per code for skipped and failed items."""
    table = Table(title="items by outcome", title_justify="left")
    table.add_column("outcome")
    table.add_column("code")
    table.add_column("items", justify="right")
    main = Outcome.WOULD_CANCEL if status.spec.dry_run else Outcome.CANCELLED
    for outcome in Outcome:
        count = status.counts.get(outcome.value, 0)
        codes = {c: n for c, n in status.codes.get(outcome.value, {}).items() if c}
        if outcome not in _BY_CODE or not codes:
            if count or outcome in {main, Outcome.FAILED}:
                table.add_row(outcome.value, "", str(count))
            continue
        for code, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(outcome.value, code, str(n))
    table.add_row("total", "", str(status.items_done), end_section=True)
    return table


_BY_CODE = frozenset({Outcome.SKIPPED, Outcome.FAILED})


def print_summary(
    console: Console, batch_id: str, status: BatchStatus, *, sandbox: bool = False
) -> None:
    """The human summary: what the batch asked for, where it stands, and its counts."""
    spec = status.spec
    console.print(
        f"state: {status.state}   seller: {spec.seller}   reason: {spec.reason}   "
        f"dry run: {'yes' if spec.dry_run else 'no'}"
    )
    console.print(outcome_table(status))
    console.print(
        f"orders: {status.orders}   duplicates merged: {status.duplicates}   "
        f"rows rejected: {status.rows_rejected}"
    )
    if status.halted:
        console.print(f"halted: {status.halted}")
    where = " --sandbox" if sandbox else ""
    console.print(f"results: lazcancel results {batch_id}{where} --format csv")


def print_status(
    console: Console, batch_id: str, status: BatchStatus, *, sandbox: bool = False
) -> None:
    """``lazcancel status``: the summary, with the batch's source, times and progress."""
    console.print(f"batch_id: {batch_id}")
    console.print(
        f"source: {status.spec.source or '-'}   created: {status.created_at or '-'}   "
        f"updated: {status.updated_at or '-'}"
    )
    console.print(f"progress: {progress_line(status)}")
    print_summary(console, batch_id, status, sandbox=sandbox)


def text_console() -> Console:
    """stdout for plain lines and tables: no guessing of highlights, long lines kept whole."""
    return Console(highlight=False, soft_wrap=True)


def progress_line(status: BatchStatus) -> str:
    """A one-line progress report for ``status --watch`` off a terminal."""
    return (
        f"state={status.state} orders_done={orders_done(status)}/{status.orders} "
        f"chunks={status.chunks_done}/{status.chunks} items={status.items_done} "
        + " ".join(f"{o.value}={status.counts.get(o.value, 0)}" for o in Outcome)
    )


# -- progress --------------------------------------------------------------------------------


class TerminalProgress:
    """A rich progress bar on stderr: orders done (by chunk), items, rate and time left.

    While it is shown, log lines must be written through ``sys.stderr`` as it is then (rich
    puts them above the bar); ``on_live`` and ``on_done`` let the caller re-aim logging.
    """

    def __init__(
        self,
        *,
        total_orders: int,
        on_live: Callable[[], None] = lambda: None,
        on_done: Callable[[], None] = lambda: None,
    ) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("orders  {task.fields[items]} items  {task.fields[rate]:.1f}/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._total = total_orders
        self._task: TaskID | None = None
        self._started = time.monotonic()
        self._on_live = on_live
        self._on_done = on_done

    def __enter__(self) -> TerminalProgress:
        self._progress.start()
        self._task = self._progress.add_task("cancelling", total=self._total, items=0, rate=0.0)
        self._on_live()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
        self._on_done()

    async def update(self, status: BatchStatus) -> None:
        if self._task is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self._progress.update(
            self._task,
            completed=orders_done(status),
            items=status.items_done,
            rate=status.items_done / elapsed,
            description="aborting" if status.state == "aborting" else "cancelling",
        )


class LogProgress:
    """Progress as ``batch_progress`` log events, at most one every few seconds."""

    def __init__(self, *, every_s: float = PROGRESS_LOG_EVERY_S) -> None:
        self._every = every_s
        self._last_at = 0.0
        self._last: tuple[str, int, int] | None = None
        self._started = time.monotonic()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def update(self, status: BatchStatus) -> None:
        now = time.monotonic()
        key = (status.state, status.chunks_done, status.items_done)
        if key == self._last or (now - self._last_at < self._every and not status.finished):
            return
        self._last, self._last_at = key, now
        log.info(
            "batch_progress",
            batch_id=status.spec.batch_id,
            state=status.state,
            orders_done=orders_done(status),
            orders=status.orders,
            chunks_done=status.chunks_done,
            chunks=status.chunks,
            items_done=status.items_done,
            items_per_s=round(status.items_done / max(now - self._started, 1e-6), 1),
        )
