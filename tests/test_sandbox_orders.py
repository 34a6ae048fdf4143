"""GetOrders filters and paging, GetMultipleOrderItems batches, and their error codes."""

from __future__ import annotations

from datetime import datetime

import aiohttp
import pytest

from lazada_sandbox import SandboxServer, Scenario
from tests.sandbox_fixtures import Caller, MakeSandbox

SINCE = "2000-01-01T00:00:00+08:00"


async def test_get_orders_pages_and_counts(caller: Caller, sandbox: SandboxServer) -> None:
    first = await caller("/orders/get", {"created_after": SINCE, "limit": "10", "offset": "0"})
    second = await caller("/orders/get", {"created_after": SINCE, "limit": "10", "offset": "10"})
    data = first["data"]
    assert data["count"] == 10 and data["countTotal"] == 30
    seen = [o["order_id"] for o in data["orders"] + second["data"]["orders"]]
    assert len(set(seen)) == 20
    created = [datetime.fromisoformat(o["created_at"]) for o in data["orders"]]
    assert created == sorted(created, reverse=True)
    order = data["orders"][0]
    assert isinstance(order["order_id"], int) and isinstance(order["statuses"], list)
    assert order["items_count"] >= 1 and "addressDsitrict" in order["address_shipping"]


async def test_get_orders_sort_ascending_by_update(caller: Caller) -> None:
    body = await caller(
        "/orders/get",
        {"update_after": SINCE, "sort_by": "updated_at", "sort_direction": "ASC"},
    )
    updated = [datetime.fromisoformat(o["updated_at"]) for o in body["data"]["orders"]]
    assert updated == sorted(updated) and len(updated) == 30


async def test_get_orders_status_filter(caller: Caller, sandbox: SandboxServer) -> None:
    body = await caller("/orders/get", {"created_after": SINCE, "status": "pending"})
    expected = sum(1 for o in sandbox.scenario.orders if "pending" in o.statuses)
    assert body["data"]["countTotal"] == expected > 0
    assert all("pending" in o["statuses"] for o in body["data"]["orders"])
    toship = await caller("/orders/get", {"created_after": SINCE, "status": "toship"})
    assert all({"packed", "ready_to_ship"} & set(o["statuses"]) for o in toship["data"]["orders"])


async def test_get_orders_date_bounds(caller: Caller, sandbox: SandboxServer) -> None:
    orders = sorted(sandbox.scenario.orders, key=lambda o: o.created_at)
    middle = datetime.fromtimestamp(int(orders[15].created_at)).astimezone().isoformat()
    body = await caller("/orders/get", {"created_after": middle})
    assert body["data"]["countTotal"] == 15
    before = await caller("/orders/get", {"created_after": SINCE, "created_before": middle})
    assert before["data"]["countTotal"] == 16  # both bounds are inclusive


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "101"}, "19"),
        ({"limit": "0"}, "19"),
        ({"limit": "ten"}, "19"),
        ({"offset": "5001"}, "14"),
        ({"status": "bogus"}, "36"),
        ({"sort_direction": "UP"}, "74"),
        ({"sort_by": "price"}, "75"),
        ({"created_after": "2023-11-01 00:00:00"}, "17"),
        ({"created_after": "2023-11-01T00:00:00 08:00"}, "17"),
        ({"created_after": ""}, "MissingParameter"),
    ],
)
async def test_get_orders_errors(caller: Caller, params: dict[str, str], code: str) -> None:
    body = await caller("/orders/get", {"created_after": SINCE, **params})
    assert body["code"] == code
    assert body["type"] == "ISV"


async def test_get_orders_limits_accepted_at_bounds(caller: Caller) -> None:
    body = await caller("/orders/get", {"created_after": SINCE, "limit": "100", "offset": "5000"})
    assert body["code"] == "0" and body["data"]["count"] == 0


async def test_multiple_order_items(caller: Caller, sandbox: SandboxServer) -> None:
    wanted = [o.order_id for o in sandbox.scenario.orders[:3]]
    for spacing in (",", ", "):
        body = await caller("/orders/items/get", {"order_ids": "[" + spacing.join(wanted) + "]"})
        assert [o["order_id"] for o in body["data"]] == [int(i) for i in wanted]
        first = body["data"][0]
        assert len(first["order_items"]) == len(sandbox.scenario.orders[0].items)
        assert first["order_items"][0]["order_id"] == int(wanted[0])
    quoted = await caller("/orders/items/get", {"order_ids": '["' + wanted[0] + '"]'})
    assert quoted["code"] == "0"


@pytest.mark.parametrize(
    ("order_ids", "code"),
    [
        ("{first}", "56"),
        ("{first},{second}", "56"),
        ("[]", "56"),
        ("", "56"),
        ("[{first},abc]", "56"),
        ('[{first},"abc"]', "37"),
        ("[{first},1.5]", "37"),
        ("[{first},123456789012345]", "37"),
        ("[123456789012345]", "39"),
    ],
)
async def test_multiple_order_items_errors(
    caller: Caller, sandbox: SandboxServer, order_ids: str, code: str
) -> None:
    first, second = (o.order_id for o in sandbox.scenario.orders[:2])
    body = await caller(
        "/orders/items/get", {"order_ids": order_ids.format(first=first, second=second)}
    )
    assert body["code"] == code
    assert body["message"].startswith(f"E0{code}:")


async def test_multiple_order_items_at_most_50(caller: Caller, sandbox: SandboxServer) -> None:
    ids = [sandbox.scenario.orders[i % 30].order_id for i in range(51)]
    over = await caller("/orders/items/get", {"order_ids": "[" + ",".join(ids) + "]"})
    assert over["code"] == "38"
    at = await caller("/orders/items/get", {"order_ids": "[" + ",".join(ids[:50]) + "]"})
    assert at["code"] == "0" and len(at["data"]) == 30


async def test_other_sellers_orders_are_invisible(
    make_sandbox: MakeSandbox, http: aiohttp.ClientSession
) -> None:
    scenario = Scenario.generate(n_orders=20, seed=5, sellers={"a": "SG", "b": "VN"})
    sb = await make_sandbox(scenario)
    b_order = next(o for o in scenario.orders if o.seller == "b")
    a = Caller(sb, http, seller="a")
    assert (await a("/order/get", {"order_id": b_order.order_id}))["code"] == "16"
    listing = await a("/orders/get", {"created_after": SINCE})
    assert listing["data"]["countTotal"] == sum(1 for o in scenario.orders if o.seller == "a")
    b = Caller(sb, http, seller="b")
    mine = await b("/order/get", {"order_id": b_order.order_id})
    assert mine["data"]["created_at"].endswith("+07:00")
