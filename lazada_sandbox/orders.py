"""The read APIs: GetOrders, GetOrder, GetOrderItems and GetMultipleOrderItems (§11-§14)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from lazada_sandbox.call import Call, parse_id_array
from lazada_sandbox.envelope import business, missing_parameter
from lazada_sandbox.model import Order
from lazada_sandbox.payload import ident, item_payload, order_payload

MAX_LIMIT = 100
MAX_OFFSET = 5000
MAX_BATCH = 50

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[+-]\d{2}:?\d{2}|Z)")

# GetOrders status filters and the item statuses each one matches; "all" matches everything.
# The filter groupings (topack, toship) and "shipped" are not item statuses themselves.
_FILTERS: dict[str, frozenset[str]] = {
    "unpaid": frozenset({"unpaid"}),
    "pending": frozenset({"pending"}),
    "canceled": frozenset({"canceled"}),
    "ready_to_ship": frozenset({"ready_to_ship"}),
    "delivered": frozenset({"delivered"}),
    "returned": frozenset({"returned"}),
    "shipped": frozenset({"shipping", "shipped"}),
    "failed": frozenset({"failed"}),
    "topack": frozenset({"pending", "repacked"}),
    "toship": frozenset({"packed", "ready_to_ship", "ready_to_ship_pending"}),
    "shipping": frozenset({"shipping"}),
    "lost": frozenset({"lost"}),
    **{
        s: frozenset({s})
        for s in (
            "packed",
            "lost_by_3pl",
            "damaged_by_3pl",
            "failed_delivery",
            "shipped_back",
            "shipped_back_success",
            "shipped_back_failed",
            "package_scrapped",
        )
    },
}


def _date_param(call: Call, name: str) -> float | None:
    raw = call.param(name)
    if not raw:
        return None
    if not _DATE.fullmatch(raw):
        raise business("17")
    return datetime.fromisoformat(raw).timestamp()


def _int_param(call: Call, name: str, default: int, *, low: int, high: int, code: str) -> int:
    raw = call.param(name)
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise business(code)
    return int(raw)


def _matches(order: Order, bounds: dict[str, float | None], wanted: frozenset[str] | None) -> bool:
    checks = (
        ("created_after", order.created_at, True),
        ("created_before", order.created_at, False),
        ("update_after", order.updated_at, True),
        ("update_before", order.updated_at, False),
    )
    for name, value, lower in checks:
        bound = bounds[name]
        if bound is not None and (value < bound if lower else value > bound):
            return False
    return wanted is None or any(item.status.lower() in wanted for item in order.items)


def _status_filter(call: Call) -> frozenset[str] | None:
    raw = call.param("status").lower()
    if not raw or raw == "all":
        return None
    if raw not in _FILTERS:
        raise business("36")
    return _FILTERS[raw]


def _sorting(call: Call) -> tuple[str, bool]:
    sort_by = call.param("sort_by") or "created_at"
    if sort_by not in ("created_at", "updated_at"):
        raise business("75")
    direction = (call.param("sort_direction") or "DESC").upper()
    if direction not in ("ASC", "DESC"):
        raise business("74")
    return sort_by, direction == "DESC"


def get_orders(call: Call) -> dict[str, Any]:
    """GetOrders: filter by dates and status, sort, page; created_after or update_after needed."""
    names = ("created_after", "created_before", "update_after", "update_before")
    bounds = {name: _date_param(call, name) for name in names}
    if bounds["created_after"] is None and bounds["update_after"] is None:
        raise missing_parameter("created_after")
    limit = _int_param(call, "limit", MAX_LIMIT, low=1, high=MAX_LIMIT, code="19")
    offset = _int_param(call, "offset", 0, low=0, high=MAX_OFFSET, code="14")
    wanted = _status_filter(call)
    sort_by, descending = _sorting(call)

    found = [o for o in call.state.orders_of(call.seller) if _matches(o, bounds, wanted)]
    found.sort(key=lambda o: (getattr(o, sort_by), o.order_id), reverse=descending)
    page = found[offset : offset + limit]
    return {
        "count": len(page),
        "countTotal": len(found),
        "orders": [order_payload(o, ids_as_strings=call.ids_as_strings) for o in page],
    }


def _own_order(call: Call) -> Order:
    raw = call.param("order_id")
    if not raw:
        raise missing_parameter("order_id")
    order = call.state.order(call.seller, raw) if raw.isdigit() else None
    if order is None:
        raise business("16", raw)
    return order


def get_order(call: Call) -> dict[str, Any]:
    return order_payload(_own_order(call), ids_as_strings=call.ids_as_strings)


def get_order_items(call: Call) -> list[dict[str, Any]]:
    order = _own_order(call)
    return [item_payload(i, order, ids_as_strings=call.ids_as_strings) for i in order.items]


def get_multiple_order_items(call: Call) -> list[dict[str, Any]]:
    """GetMultipleOrderItems: up to 50 ids; one bad or unknown id fails the whole call."""
    raw = call.param("order_ids")
    ids = parse_id_array(raw, lambda: business("56")) if raw else None
    if not ids:
        raise business("56")
    if len(ids) > MAX_BATCH:
        raise business("38")
    if None in ids:
        raise business("37")
    wanted = [oid for oid in dict.fromkeys(ids) if oid is not None]
    orders = [call.state.order(call.seller, oid) for oid in wanted]
    found = [o for o in orders if o is not None]
    if not found:
        raise business("39")
    if len(found) < len(orders):
        raise business("37")
    return [_order_with_items(call, o) for o in found]


def _order_with_items(call: Call, order: Order) -> dict[str, Any]:
    as_str = call.ids_as_strings
    return {
        "order_id": ident(order.order_id, as_str),
        "order_number": ident(order.order_number, as_str),
        "order_items": [item_payload(i, order, ids_as_strings=as_str) for i in order.items],
    }
