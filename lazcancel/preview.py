"""What a staged batch would cancel, found before it is queued: a dry run of the flow's reads.

It reads the items, chooses them as the flow does and asks Lazada's validate, but it records and
cancels nothing. ``confirm_hook`` turns it into the check that ``run`` and ``enqueue`` make
before queueing a batch larger than ``confirm_threshold``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

import structlog

from jobs.cancel import CHUNK_SIZE, pick_reason
from jobs.choose import choose_items
from jobs.enqueue import StagingReport
from lazcancel.client import LazadaClient
from lazcancel.errors import InputError, LazadaError
from lazcancel.models import OrderItem, Verdict
from lazcancel.store import BatchSpec, BatchStore, Selection

# Reasons whose use sets the SKU's stock to 0 (lazada-api.md §18, §19), by lower-cased name.
STOCK_ZERO_WORDS = ("out of stock", "wrong price", "pricing error")
SHOWN_ITEMS = 20

BeforeQueue = Callable[[BatchStore, StagingReport], Awaitable[None]]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviewItem:
    """One item the batch would cancel, and the reason Lazada would be sent for it."""

    order_id: str
    order_item_id: str
    sku: str | None
    status: str
    reason_id: str
    reason_name: str

    @property
    def stock_zero(self) -> bool:
        return zeroes_stock(self.reason_name)


@dataclass(kw_only=True)
class Preview:
    """The dry-run view of a batch; ``complete`` is False when it stopped early past a limit."""

    batch_id: str
    items: list[PreviewItem] = field(default_factory=list)
    orders_read: int = 0
    left_alone: Counter[str] = field(default_factory=Counter)
    complete: bool = True

    @property
    def orders(self) -> list[str]:
        """Orders with at least one item to cancel."""
        return sorted({item.order_id for item in self.items})

    @property
    def stock_zero_skus(self) -> list[str]:
        """Seller SKUs whose stock Lazada will set to 0 because of the chosen reason."""
        return sorted({item.sku or "" for item in self.items if item.stock_zero})

    def exceeds(self, threshold: int | None) -> bool:
        return threshold is not None and len(self.items) > threshold


class ConfirmationRequired(InputError):
    """The batch would cancel more items than ``confirm_threshold``; nothing was enqueued."""

    def __init__(self, preview: Preview, threshold: int) -> None:
        super().__init__(
            render_preview(preview)
            + f"\nThat is more than confirm_threshold ({threshold}) items. Nothing was enqueued;"
            " check the preview, then run the same command again with --yes."
        )
        self.preview = preview
        self.threshold = threshold


def zeroes_stock(reason_name: str) -> bool:
    name = reason_name.lower()
    return any(word in name for word in STOCK_ZERO_WORDS)


async def preview_batch(
    *,
    store: BatchStore,
    client: LazadaClient,
    spec: BatchSpec,
    orders: int,
    cancellable: Collection[str],
    concurrency: int = 16,
    stop_above: int | None = None,
) -> Preview:
    """Dry-run the staged batch ``spec.batch_id`` (``orders`` orders) against Lazada.

    With ``stop_above``, reading stops once more items than that were found: enough to know
    the batch is over a threshold, without reading the rest of a large batch.
    """
    preview = Preview(batch_id=spec.batch_id)
    slots = asyncio.Semaphore(max(1, concurrency))
    for index in range(-(-orders // CHUNK_SIZE)):
        if stop_above is not None and len(preview.items) > stop_above:
            preview.complete = False
            break
        chunk = await store.chunk_orders(spec.batch_id, index, CHUNK_SIZE)
        await _preview_chunk(preview, chunk, client, spec, cancellable, slots)
    log.info(
        "batch_previewed",
        batch_id=spec.batch_id,
        items=len(preview.items),
        orders=len(preview.orders),
        complete=preview.complete,
    )
    return preview


async def _preview_chunk(
    preview: Preview,
    chunk: Sequence[tuple[str, Selection]],
    client: LazadaClient,
    spec: BatchSpec,
    cancellable: Collection[str],
    slots: asyncio.Semaphore,
) -> None:
    try:
        found = await client.get_multiple_order_items([order_id for order_id, _ in chunk])
    except LazadaError as exc:
        preview.left_alone[exc.code] += len(chunk)
        return
    preview.orders_read += len(chunk)

    async def one(order_id: str, selection: Selection) -> None:
        async with slots:
            await _preview_order(
                preview, order_id, selection, found.get(order_id), client, spec, cancellable
            )

    await asyncio.gather(*(one(order_id, selection) for order_id, selection in chunk))


async def _preview_order(
    preview: Preview,
    order_id: str,
    selection: Selection,
    items: list[OrderItem] | None,
    client: LazadaClient,
    spec: BatchSpec,
    cancellable: Collection[str],
) -> None:
    if not items:
        preview.left_alone["order_not_found" if items is None else "order_has_no_items"] += 1
        return
    choice = choose_items(
        order_id,
        items,
        selection,
        skus=spec.skus,
        cancellable=cancellable,
        allow_whole_package=spec.allow_whole_package,
    )
    preview.left_alone.update(result.code or result.outcome.value for result in choice.decided)
    if not choice.targets:
        return

    try:
        tip = await client.validate_cancel(order_id, [i.order_item_id for i in choice.targets])
    except LazadaError as exc:
        preview.left_alone[exc.code] += len(choice.targets)
        return
    if tip.verdict is Verdict.REJECTED:
        preview.left_alone["rejected"] += len(choice.targets)
        return
    reason = pick_reason(tip.reason_options, spec.reason)
    if reason is None:
        preview.left_alone["reason_not_offered"] += len(choice.targets)
        return
    preview.items.extend(
        PreviewItem(
            order_id=order_id,
            order_item_id=item.order_item_id,
            sku=item.sku,
            status=item.status,
            reason_id=reason.reason_id,
            reason_name=reason.reason_name,
        )
        for item in choice.targets
    )


def render_preview(preview: Preview, *, shown: int = SHOWN_ITEMS) -> str:
    """The preview as text for a person: counts, stock-zeroed SKUs, the first items."""
    at_least = "" if preview.complete else "at least "
    reasons = sorted({f"{i.reason_name} ({i.reason_id})" for i in preview.items})
    lines = [
        f"Preview of batch {preview.batch_id}: {at_least}{len(preview.items)} item(s) in "
        f"{len(preview.orders)} order(s) would be cancelled"
        + (f", reason {', '.join(reasons)}" if reasons else "")
        + ".",
    ]
    zeroed = preview.stock_zero_skus
    if zeroed:
        lines.append(f"Lazada will set the stock of these SKUs to 0: {', '.join(zeroed)}")
    if preview.left_alone:
        counts = ", ".join(f"{code} {n}" for code, n in sorted(preview.left_alone.items()))
        lines.append(f"Not cancelled: {counts}")
    for item in preview.items[:shown]:
        lines.append(
            f"  order {item.order_id} item {item.order_item_id} sku {item.sku or '-'}"
            f" ({item.status})"
        )
    if len(preview.items) > shown:
        lines.append(f"  ... and {len(preview.items) - shown} more item(s)")
    return "\n".join(lines)


def confirm_hook(
    *,
    client: LazadaClient,
    spec: BatchSpec,
    threshold: int | None,
    cancellable: Collection[str],
    yes: bool = False,
    concurrency: int = 16,
) -> BeforeQueue | None:
    """The ``before_queue`` check of ``submit_batch``, or None when no preview is needed.

    No preview is made with ``yes``, for a dry run, or without a threshold. Otherwise a batch
    whose preview exceeds ``threshold`` items raises ConfirmationRequired, whose message holds
    the rendered preview; ``submit_batch`` then discards the staged rows.
    """
    if threshold is None or yes or spec.dry_run:
        return None

    async def check(store: BatchStore, report: StagingReport) -> None:
        preview = await preview_batch(
            store=store,
            client=client,
            spec=spec,
            orders=report.orders,
            cancellable=cancellable,
            concurrency=concurrency,
            stop_above=threshold,
        )
        if preview.exceeds(threshold):
            log.warning(
                "batch_needs_confirmation",
                batch_id=spec.batch_id,
                items=len(preview.items),
                threshold=threshold,
            )
            raise ConfirmationRequired(preview, threshold)

    return check
