"""The official SDK (lazop-sdk, sync and requests-based, run in a thread) against the sandbox."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import lazop_sdk
import pytest

from lazada_sandbox import SandboxServer

CREATE = "/order/reverse/cancel/create"
VALIDATE = "/order/reverse/cancel/validate"


async def sdk_call(
    sb: SandboxServer,
    api: str,
    params: dict[str, str],
    *,
    method: str = "POST",
    secret: str | None = None,
) -> Any:
    client = lazop_sdk.LazopClient(sb.url, sb.scenario.app_key, secret or sb.scenario.app_secret)
    request = lazop_sdk.LazopRequest(api, method)
    for key, value in params.items():
        request.add_api_param(key, value)
    token = sb.state.sellers["default"].access_token
    response = await asyncio.to_thread(client.execute, request, token)
    return response.body


def _pending(sb: SandboxServer) -> tuple[str, list[str]]:
    order = next(o for o in sb.scenario.orders if o.statuses == ["pending"])
    return order.order_id, [i.order_item_id for i in order.items]


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_sdk_get_order_items(sandbox: SandboxServer, method: str) -> None:
    order_id, item_ids = _pending(sandbox)
    body = await sdk_call(sandbox, "/order/items/get", {"order_id": order_id}, method=method)
    assert body["code"] == "0"
    assert [str(i["order_item_id"]) for i in body["data"]] == item_ids
    entry = sandbox.ledger[-1]
    assert entry.signature_ok is True and entry.method == method
    assert entry.params["partner_id"] == "lazop-sdk-python-20181207"


async def test_sdk_get_multiple_order_items(sandbox: SandboxServer) -> None:
    wanted = [o.order_id for o in sandbox.scenario.orders[:4]]
    body = await sdk_call(
        sandbox, "/orders/items/get", {"order_ids": json.dumps([int(i) for i in wanted])}
    )
    assert body["code"] == "0"
    assert [str(o["order_id"]) for o in body["data"]] == wanted
    assert all(o["order_items"] for o in body["data"])


async def test_sdk_validate_and_create(sandbox: SandboxServer) -> None:
    order_id, item_ids = _pending(sandbox)
    params = {"order_id": order_id, "order_item_id_list": json.dumps(item_ids[:1])}
    checked = await sdk_call(sandbox, VALIDATE, params)
    assert checked["data"]["tip_type"] == "warning"
    reason = next(
        r["reason_id"]
        for r in checked["data"]["reason_options"]
        if r["reason_name"] == "Out of Stock"
    )

    done = await sdk_call(sandbox, CREATE, {**params, "reason_id": reason})
    assert done["code"] == "0" and done["data"]["tip_type"] == "success"
    assert sandbox.item(item_ids[0]).status == "canceled"


async def test_sdk_with_wrong_secret(sandbox: SandboxServer) -> None:
    order_id, _ = _pending(sandbox)
    body = await sdk_call(sandbox, "/order/items/get", {"order_id": order_id}, secret="wrong")
    assert body["code"] == "IncompleteSignature"
    assert body["type"] == "ISV"
    assert sandbox.ledger[-1].signature_ok is False
