"""The sandbox's read APIs and envelope, through raw signed HTTP calls."""

from __future__ import annotations

import re

import aiohttp

from lazada_sandbox import SandboxServer, Scenario
from tests.sandbox_fixtures import Caller, MakeSandbox


def _pending_order(sb: SandboxServer) -> str:
    return next(o.order_id for o in sb.scenario.orders if o.statuses == ["pending"])


async def test_get_order_items_shape(sandbox: SandboxServer, caller: Caller) -> None:
    order_id = _pending_order(sandbox)
    body = await caller("/order/items/get", {"order_id": order_id})
    assert body["code"] == "0"
    assert re.fullmatch(r"[0-9a-f]{8}\d{17}", body["request_id"])
    item = body["data"][0]
    assert item["order_id"] == int(order_id)
    assert isinstance(item["order_item_id"], int)
    assert str(item["order_item_id"])[-5:] == order_id[-5:]
    assert item["status"] == "pending"
    assert isinstance(item["sku"], str) and isinstance(item["product_id"], str)


async def test_request_ids_are_fresh(caller: Caller, sandbox: SandboxServer) -> None:
    order_id = _pending_order(sandbox)
    first = await caller("/order/get", {"order_id": order_id})
    second = await caller("/order/get", {"order_id": order_id})
    assert first["request_id"] != second["request_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", first["data"]["created_at"])


async def test_post_form_body_is_accepted(caller: Caller, sandbox: SandboxServer) -> None:
    order_id = _pending_order(sandbox)
    body = await caller("/order/items/get", {"order_id": order_id}, method="POST")
    assert body["code"] == "0"
    assert sandbox.ledger[-1].method == "POST"


async def test_unknown_order_is_16(caller: Caller) -> None:
    body = await caller("/order/items/get", {"order_id": "123456789012345"})
    assert body == {
        "type": "ISV",
        "code": "16",
        "message": 'E016: "123456789012345" Invalid Order ID',
        "request_id": body["request_id"],
    }


async def test_ids_as_strings_option(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    scenario = Scenario.generate(n_orders=5, seed=3)
    scenario.ids_as_strings = True
    sb = await make_sandbox(scenario)
    body = await Caller(sb, http)("/order/items/get", {"order_id": scenario.orders[0].order_id})
    assert body["data"][0]["order_id"] == scenario.orders[0].order_id
