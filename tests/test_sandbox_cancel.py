"""The cancellation state machine: validate, create, packages, reasons, stock, ROC errors."""

from __future__ import annotations

from lazada_sandbox import SandboxServer
from tests.sandbox_fixtures import Caller


def _order_with(sb: SandboxServer, statuses: list[str], min_items: int = 1) -> str:
    return next(
        o.order_id
        for o in sb.scenario.orders
        if o.statuses == statuses and len(o.items) >= min_items
    )


async def test_validate_then_create_cancels_item(sandbox: SandboxServer, caller: Caller) -> None:
    order_id = _order_with(sandbox, ["pending"])
    item_id = sandbox.state.orders[("default", order_id)].items[0].order_item_id
    params = {"order_id": order_id, "order_item_id_list": f'["{item_id}"]'}

    checked = await caller("/order/reverse/cancel/validate", params)
    assert checked["data"]["tip_type"] == "warning"
    names = {r["reason_name"]: r["reason_id"] for r in checked["data"]["reason_options"]}
    assert names["Out of Stock"] == "10000021"

    done = await caller("/order/reverse/cancel/create", {**params, "reason_id": "10000021"})
    assert done["data"]["tip_type"] == "success"
    assert sandbox.item(item_id).status == "canceled"
    assert sandbox.item(item_id)["cancel_return_initiator"] == "cancellation-seller"
    assert sandbox.creates_for(item_id) == 1
    assert sandbox.state.stock["default"][sandbox.item(item_id).sku] == 0
