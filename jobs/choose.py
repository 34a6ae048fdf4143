"""Which items of one order to cancel, and why the others are left alone.

Pure decisions on what GetOrderItems returned; no I/O. Lazada's validate call still has the
last word on every item chosen here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from lazcancel.models import ItemResult, OrderItem, Outcome
from lazcancel.store import Selection

CANCELED = "canceled"
# Items in these states have no package yet; any other state with a package id is packed.
UNPACKED = frozenset({"pending", "unpaid"})


@dataclass(slots=True)
class Choice:
    targets: list[OrderItem] = field(default_factory=list)
    decided: list[ItemResult] = field(default_factory=list)


def skip(item: OrderItem, code: str, message: str) -> ItemResult:
    return ItemResult(
        order_id=item.order_id,
        order_item_id=item.order_item_id,
        sku=item.sku,
        status=item.status,
        outcome=Outcome.SKIPPED,
        code=code,
        message=message,
    )


def choose_items(
    order_id: str,
    items: Sequence[OrderItem],
    selection: Selection,
    *,
    skus: Collection[str],
    cancellable: Collection[str],
    allow_whole_package: bool,
    cancelled_by_batch: Collection[str] = (),
) -> Choice:
    """Split one order's items into cancel targets and decided results.

    ``cancelled_by_batch`` holds item ids this batch already sent a cancel for (a rerun after a
    crash): reading them as canceled confirms that cancel rather than reporting someone else's.
    """
    choice = Choice()
    by_id = {item.order_item_id: item for item in items}
    for missing in sorted(selection.item_ids - by_id.keys()):
        choice.decided.append(_not_in_order(order_id, missing))

    for item in items:
        if not _selected(item, selection):
            # Items beside the ones a row named are not the user's concern; items beside a
            # row's SKU are, as with --sku: the order is visibly left alone.
            if selection.skus:
                choice.decided.append(_not_file_sku(item))
            continue
        verdict = _screen(item, skus, cancellable, cancelled_by_batch)
        if verdict is None:
            choice.targets.append(item)
        else:
            choice.decided.append(verdict)

    _apply_package_rule(choice, items, cancellable, allow_whole_package)
    return choice


def _selected(item: OrderItem, selection: Selection) -> bool:
    if selection.whole:
        return True
    return item.order_item_id in selection.item_ids or _sku_key(item.sku) in selection.skus


def _sku_key(sku: str | None) -> str:
    # Selection tokens cannot hold spaces; store.selection_token folds them the same way.
    return (sku or "").replace(" ", "\u00a0")


def _screen(
    item: OrderItem,
    skus: Collection[str],
    cancellable: Collection[str],
    cancelled_by_batch: Collection[str],
) -> ItemResult | None:
    status = item.status.strip().lower()
    if status == CANCELED:
        if item.order_item_id in cancelled_by_batch:
            return ItemResult(
                order_id=item.order_id,
                order_item_id=item.order_item_id,
                sku=item.sku,
                status=item.status,
                outcome=Outcome.CANCELLED,
                code=None,
                message="cancel confirmed when the batch resumed",
            )
        return skip(item, "already_canceled", "the item was already canceled")
    # --sku applies to every row, a row naming an item id included.
    if skus and item.sku not in skus:
        return skip(item, "sku_not_selected", f"seller SKU {item.sku!r} is not in --sku")
    if status not in cancellable:
        return skip(item, "status_not_cancellable", f"status {item.status!r} cannot be cancelled")
    return None


def _apply_package_rule(
    choice: Choice,
    items: Sequence[OrderItem],
    cancellable: Collection[str],
    allow_whole_package: bool,
) -> None:
    """Cancelling one packed item cancels its whole package at Lazada (lazada-api.md §17)."""
    chosen = {item.order_item_id for item in choice.targets}
    packages: dict[str, list[OrderItem]] = {}
    for item in items:
        if item.package_id and item.status.strip().lower() not in UNPACKED:
            packages.setdefault(item.package_id, []).append(item)

    kept: list[OrderItem] = []
    extra: list[OrderItem] = []
    for item in choice.targets:
        members = packages.get(item.package_id, []) if item.package_id else []
        others = [
            m
            for m in members
            if m.order_item_id not in chosen and m.status.strip().lower() != CANCELED
        ]
        if not others:
            kept.append(item)
        elif allow_whole_package:
            kept.append(item)
            extra.extend(m for m in others if m.status.strip().lower() in cancellable)
        else:
            names = ", ".join(sorted(m.order_item_id for m in others))
            choice.decided.append(
                skip(
                    item,
                    "package_has_other_items",
                    f"package {item.package_id} also holds {names}; cancelling would take them"
                    " along (use --allow-whole-package)",
                )
            )
    unique = {item.order_item_id: item for item in kept + extra}
    choice.targets = list(unique.values())
    # A package member taken along is cancelled, whatever the filters said about it.
    taken = {item.order_item_id for item in extra}
    choice.decided = [r for r in choice.decided if r.order_item_id not in taken]


def package_groups(items: Sequence[OrderItem]) -> list[list[OrderItem]]:
    """Items that Lazada cancels together: one group per packed package, else one per item."""
    groups: dict[str, list[OrderItem]] = {}
    for item in items:
        packed = item.package_id and item.status.strip().lower() not in UNPACKED
        key = f"package:{item.package_id}" if packed else f"item:{item.order_item_id}"
        groups.setdefault(key, []).append(item)
    return list(groups.values())


def _not_file_sku(item: OrderItem) -> ItemResult:
    return skip(item, "sku_not_selected", f"seller SKU {item.sku!r} is not the SKU the file named")


def _not_in_order(order_id: str, order_item_id: str) -> ItemResult:
    return ItemResult(
        order_id=order_id,
        order_item_id=order_item_id,
        outcome=Outcome.SKIPPED,
        code="item_not_in_order",
        message=f"order {order_id} has no item {order_item_id}",
    )
