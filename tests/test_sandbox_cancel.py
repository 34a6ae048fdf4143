"""The cancellation state machine: validate, create, packages, reasons, stock, ROC errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from lazada_sandbox import SandboxServer, Scenario
from tests.sandbox_fixtures import Caller, MakeSandbox

VALIDATE = "/order/reverse/cancel/validate"
CREATE = "/order/reverse/cancel/create"

PENDING = "700000000110001"  # items ...210001, ...410001, ...510001
PACKED = "700000000110002"  # ...210002 + ...310002 in FP1, ...510002 in FP2
MIXED = "700000000110003"  # ...210003 + ...310003 in FP3 (packed), ...410003 pending
SHIPPED = "700000000110004"
CANCELED = "700000000110005"
UPPER = "700000000110006"
OVERRIDE = "700000000110007"
THAI = "700000000110008"  # seller "other"
OVERRIDE_REASONS = [
    {"reason_id": "55501", "reason_name": "Out of Stock"},
    {"reason_id": "55502", "reason_name": "Sourcing Delay"},
]


def item_id(order_id: str, n: int) -> str:
    return f"{int(order_id[:-5]) + n}{order_id[-5:]}"


def _order(order_id: str, items: list[tuple[int, str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "created_at": "2026-01-05T10:00:00+08:00",
        "items": [
            {"order_item_id": item_id(order_id, n), "status": s, "package_id": p, "sku": f"SKU-{n}"}
            for n, s, p in items
        ],
        **extra,
    }


def store(**knobs: Any) -> Scenario:
    return Scenario.from_dict(
        {
            "app_key": "100200",
            "app_secret": "sandbox-secret",
            "sellers": {
                "default": {"access_token": "tok-default", "country": "SG"},
                "other": {"access_token": "tok-other", "country": "TH"},
            },
            "orders": [
                _order(PENDING, [(1, "pending", ""), (3, "pending", ""), (4, "pending", "")]),
                _order(PACKED, [(1, "packed", "FP1"), (2, "packed", "FP1"), (4, "packed", "FP2")]),
                _order(MIXED, [(1, "packed", "FP3"), (2, "packed", "FP3"), (3, "pending", "")]),
                _order(SHIPPED, [(1, "shipping", "FP4")]),
                _order(CANCELED, [(1, "canceled", "")]),
                _order(UPPER, [(1, "Pending", "")]),
                _order(OVERRIDE, [(1, "pending", "")], reason_options=OVERRIDE_REASONS),
                _order(THAI, [(1, "pending", "")], seller="other", country="TH"),
            ],
            "stock": {"default": {"SKU-1": 7, "SKU-3": 9}},
            **knobs,
        }
    )


@pytest.fixture
async def sb(make_sandbox: MakeSandbox) -> SandboxServer:
    return await make_sandbox(store())


@pytest.fixture
def call(sb: SandboxServer, http: aiohttp.ClientSession) -> Caller:
    return Caller(sb, http)


def ids(*items: str) -> str:
    return json.dumps(list(items), separators=(",", ":"))


async def cancel(call: Caller, order_id: str, *items: str, reason: str = "10000021") -> Any:
    params = {"order_id": order_id, "order_item_id_list": ids(*items), "reason_id": reason}
    return await call(CREATE, params)


async def test_validate_offers_country_reasons(call: Caller) -> None:
    body = await call(
        VALIDATE, {"order_id": PENDING, "order_item_id_list": ids(item_id(PENDING, 1))}
    )
    data = body["data"]
    assert body["code"] == "0"
    assert data["tip_type"] == "warning"
    assert data["reason_options"] == [
        {"reason_id": "10000019", "reason_name": "Sourcing Delay"},
        {"reason_id": "10000021", "reason_name": "Out of Stock"},
        {"reason_id": "10000023", "reason_name": "Wrong Price or Pricing Error"},
    ]


async def test_reasons_differ_by_country(sb: SandboxServer, http: aiohttp.ClientSession) -> None:
    thai = Caller(sb, http, seller="other")
    item = item_id(THAI, 1)
    body = await thai(VALIDATE, {"order_id": THAI, "order_item_id_list": ids(item)})
    by_name = {r["reason_name"]: r["reason_id"] for r in body["data"]["reason_options"]}
    assert by_name["Out of Stock"] == "10000121"

    refused = await cancel(thai, THAI, item, reason="10000021")
    assert refused["code"] == "104"
    done = await cancel(thai, THAI, item, reason="10000121")
    assert done["data"]["tip_type"] == "success"


async def test_order_can_override_reasons(call: Caller, sb: SandboxServer) -> None:
    item = item_id(OVERRIDE, 1)
    body = await call(VALIDATE, {"order_id": OVERRIDE, "order_item_id_list": ids(item)})
    assert body["data"]["reason_options"] == OVERRIDE_REASONS
    assert (await cancel(call, OVERRIDE, item, reason="10000021"))["code"] == "104"
    assert (await cancel(call, OVERRIDE, item, reason="55501"))["data"]["tip_type"] == "success"
    assert sb.state.stock["default"]["SKU-1"] == 0


async def test_partial_cancel_in_pending_order(call: Caller, sb: SandboxServer) -> None:
    first, second = item_id(PENDING, 1), item_id(PENDING, 3)
    body = await cancel(call, PENDING, first)
    assert body["data"]["tip_type"] == "success"
    assert sb.item(first).status == "canceled"
    assert sb.item(first).cancel_return_initiator == "cancellation-seller"
    assert sb.item(first).reason == "Out of Stock"
    assert sb.item(second).status == "pending"
    assert sb.creates_for(second) == 0


async def test_one_packed_item_cancels_its_package(call: Caller, sb: SandboxServer) -> None:
    a, b, other = item_id(PACKED, 1), item_id(PACKED, 2), item_id(PACKED, 4)
    checked = await call(VALIDATE, {"order_id": PACKED, "order_item_id_list": ids(a)})
    assert "same package" in checked["data"]["tip_content"]

    body = await cancel(call, PACKED, a, reason="10000019")
    assert body["data"]["tip_type"] == "success"
    assert [sb.item(i).status for i in (a, b, other)] == ["canceled", "canceled", "packed"]
    assert sb.creates_for(b) == 1
    assert sb.state.stock_events == []


async def test_package_rule_leaves_pending_items_alone(call: Caller, sb: SandboxServer) -> None:
    pending = item_id(MIXED, 3)
    await cancel(call, MIXED, item_id(MIXED, 2))
    assert sb.item(item_id(MIXED, 1)).status == "canceled"
    assert sb.item(pending).status == "pending"


async def test_second_cancel_is_refused(call: Caller, sb: SandboxServer) -> None:
    item = item_id(PENDING, 4)
    await cancel(call, PENDING, item)
    again = await cancel(call, PENDING, item)
    assert again["code"] == "0"
    assert again["data"]["tip_type"] == "error"
    assert "already been canceled" in again["data"]["tip_content"]
    assert sb.creates_for(item) == 1
    checked = await call(VALIDATE, {"order_id": PENDING, "order_item_id_list": ids(item)})
    assert checked["data"]["reason_options"] == []


@pytest.mark.parametrize(("order_id", "word"), [(SHIPPED, "shipping"), (CANCELED, "canceled")])
async def test_not_cancellable_is_tip_error(
    call: Caller, sb: SandboxServer, order_id: str, word: str
) -> None:
    item = item_id(order_id, 1)
    body = await call(VALIDATE, {"order_id": order_id, "order_item_id_list": ids(item)})
    assert body["data"] == {
        "tip_type": "error",
        "tip_content": body["data"]["tip_content"],
        "reason_options": [],
    }
    assert word in body["data"]["tip_content"] and item in body["data"]["tip_content"]
    refused = await cancel(call, order_id, item)
    assert refused["data"]["tip_type"] == "error"
    assert sb.creates_for(item) == 0


async def test_status_compared_case_insensitively(call: Caller, sb: SandboxServer) -> None:
    assert (await cancel(call, UPPER, item_id(UPPER, 1)))["data"]["tip_type"] == "success"


async def test_allow_list_is_configurable(make_sandbox: MakeSandbox, http: Any) -> None:
    sb = await make_sandbox(store(cancellable_statuses=["PENDING"]))
    body = await cancel(Caller(sb, http), PACKED, item_id(PACKED, 1))
    assert body["data"]["tip_type"] == "error"
    assert sb.item(item_id(PACKED, 1)).status == "packed"


async def test_stock_set_to_zero_and_recorded(call: Caller, sb: SandboxServer, http: Any) -> None:
    await cancel(call, PENDING, item_id(PENDING, 3), reason="10000023")
    assert sb.state.stock["default"] == {"SKU-1": 7, "SKU-3": 0}
    async with http.get(sb.url.replace("/rest", "/_sandbox/state")) as resp:
        state = await resp.json()
    assert state["stock"]["default"]["SKU-3"] == 0
    event = state["stock_events"][0]
    assert (event["sku"], event["reason_id"], event["order_item_id"]) == (
        "SKU-3",
        "10000023",
        item_id(PENDING, 3),
    )
    assert state["items"][item_id(PENDING, 3)]["status"] == "canceled"


async def test_numbers_and_strings_accepted_in_item_list(call: Caller, sb: SandboxServer) -> None:
    first, second = item_id(PENDING, 1), item_id(PENDING, 3)
    params = {
        "order_id": PENDING,
        "order_item_id_list": f"[{first}, {second}]",
        "reason_id": "10000019",
    }
    assert (await call(CREATE, params))["data"]["tip_type"] == "success"
    assert sb.item(second).status == "canceled"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"order_item_id_list": '["1"]'}, "115"),
        ({"order_id": PENDING}, "102"),
        ({"order_id": PENDING, "order_item_id_list": "[]"}, "102"),
        ({"order_id": PENDING, "order_item_id_list": "not json"}, "102"),
        ({"order_id": PENDING, "order_item_id_list": '["abc"]'}, "102"),
        ({"order_id": "999999999999999", "order_item_id_list": ids(item_id(PENDING, 1))}, "122"),
        ({"order_id": THAI, "order_item_id_list": ids(item_id(THAI, 1))}, "122"),
    ],
)
async def test_roc_errors(call: Caller, params: dict[str, str], code: str) -> None:
    for api in (VALIDATE, CREATE):
        body = await call(api, {**params, "reason_id": "10000021"})
        assert body["code"] == code, api
        assert body["message"].startswith(f"E0{code}:")


async def test_123_lists_items_not_in_order(call: Caller) -> None:
    strangers = [item_id(PACKED, 1), "123451234512345"]
    body = await call(
        VALIDATE, {"order_id": PENDING, "order_item_id_list": ids(item_id(PENDING, 1), *strangers)}
    )
    assert body["code"] == "123"
    assert body["message"] == f"E0123: invalid trade order lines {','.join(strangers)}"


async def test_124_for_another_sellers_items(call: Caller, sb: SandboxServer) -> None:
    foreign = item_id(THAI, 1)
    body = await cancel(call, PENDING, foreign)
    assert body["code"] == "124"
    assert foreign in body["message"]
    assert sb.item(foreign).status == "pending"


@pytest.mark.parametrize("reason", ["", "12345"])
async def test_104_for_missing_or_unoffered_reason(
    call: Caller, sb: SandboxServer, reason: str
) -> None:
    body = await cancel(call, PENDING, item_id(PENDING, 1), reason=reason)
    assert body["code"] == "104"
    assert body["message"] == "E0104: reason is empty or invalid"
    assert sb.item(item_id(PENDING, 1)).status == "pending"


async def test_cancel_delay(make_sandbox: MakeSandbox, http: Any) -> None:
    sb = await make_sandbox(store(cancel_delay_s=0.2))
    call = Caller(sb, http)
    item = item_id(PENDING, 1)
    first = await cancel(call, PENDING, item)
    assert first["data"]["tip_type"] == "success"
    assert sb.item(item).status == "pending"
    # A blind retry inside the delay is accepted again: exactly what creates_for exposes.
    await cancel(call, PENDING, item)
    assert sb.creates_for(item) == 2
    await asyncio.sleep(0.3)
    assert sb.item(item).status == "canceled"
