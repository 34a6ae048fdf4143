"""Seller cancellation: ReverseOrderCancelValidate and InitReverseOrderCancel (§15-§17).

Decides whether items may be cancelled, which package mates go along, and which reasons an
order offers; ``state`` records the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lazada_sandbox.call import Call, parse_id_array
from lazada_sandbox.envelope import business
from lazada_sandbox.model import Item, Order, ReasonOption

_STOCK_TIP = (
    "SKU stock may be set to 0* after cancellation due to reasons: 'out of stock' or "
    "'incorrect pricing'. *Only applicable to sellers not using multi-warehouse."
)


@dataclass
class Target:
    order: Order
    items: list[Item]


def _target(call: Call) -> Target:
    """The order and the named items, or the ROC error that the gateway would give."""
    order_id = call.param("order_id")
    if not order_id:
        raise business("115")
    raw_list = call.param("order_item_id_list")
    ids = parse_id_array(raw_list, lambda: business("102")) if raw_list else []
    if not ids or None in ids:
        raise business("102")
    order = call.state.order(call.seller, order_id) if order_id.isdigit() else None
    if order is None:
        raise business("122")
    wanted = [i for i in dict.fromkeys(ids) if i is not None]
    own = {item.order_item_id: item for item in order.items}
    strangers = [i for i in wanted if i not in own]
    foreign = [i for i in strangers if _owner(call, i) not in (None, call.seller)]
    if foreign:
        raise business("124", ",".join(foreign))
    if strangers:
        raise business("123", ",".join(strangers))
    return Target(order, [own[i] for i in wanted])


def _owner(call: Call, item_id: str) -> str | None:
    order = call.state.item_orders.get(item_id)
    return None if order is None else order.seller


def _refusal(call: Call, items: list[Item]) -> str | None:
    """Why these items cannot be cancelled, or None when they all can."""
    for item in items:
        if item.status.lower() == "canceled":
            return f"Order item {item.order_item_id} has already been canceled."
        if not call.state.is_cancellable(item):
            return (
                f"Order item {item.order_item_id} is in status {item.status} and can no "
                "longer be cancelled by the seller."
            )
    return None


def package_mates(order: Order, items: list[Item]) -> list[Item]:
    """The items plus every other item sharing a package with one of them (§17)."""
    packages = {item.package_id for item in items if item.package_id}
    chosen = {item.order_item_id for item in items}
    mates = [
        item
        for item in order.items
        if item.package_id in packages
        and item.order_item_id not in chosen
        and item.status.lower() != "canceled"
    ]
    return items + mates


def _reason_options(call: Call, order: Order) -> list[dict[str, str]]:
    return [
        {"reason_id": r.reason_id, "reason_name": r.reason_name}
        for r in call.state.scenario.reasons_for(order)
    ]


def validate(call: Call) -> dict[str, Any]:
    """Refusals come back as tip_type "error" with the reason, inside a success envelope."""
    target = _target(call)
    why = _refusal(call, target.items)
    if why is not None:
        return {"tip_type": "error", "tip_content": why, "reason_options": []}
    tip = _STOCK_TIP
    extra = len(package_mates(target.order, target.items)) - len(target.items)
    if extra:
        tip = f"All items in the same package will be cancelled ({extra} more). " + tip
    return {
        "tip_type": call.state.scenario.validate_tip_type,
        "tip_content": tip,
        "reason_options": _reason_options(call, target.order),
    }


def _chosen_reason(call: Call, order: Order) -> ReasonOption:
    reason_id = call.param("reason_id")
    for option in call.state.scenario.reasons_for(order):
        if option.reason_id == reason_id:
            return option
    raise business("104")


def create(call: Call) -> dict[str, Any]:
    """Cancel the items (and their package mates) with one of the order's reasons."""
    if not call.param("reason_id"):
        raise business("104")
    target = _target(call)
    reason = _chosen_reason(call, target.order)
    why = _refusal(call, target.items)
    if why is not None:
        return {"tip_type": "error", "tip_content": why}
    items = [i for i in package_mates(target.order, target.items) if call.state.is_cancellable(i)]
    call.state.accept_cancel(target.order, items, reason)
    tip = "The order has been cancelled."
    if reason.sets_stock_zero():
        tip = "The order has been cancelled and SKU stock may have been set to 0."
    return {"tip_type": "success", "tip_content": tip}
