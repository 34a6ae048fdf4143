"""Control endpoints and the ledger: what tests and operators can see and change."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import aiohttp

from lazada_sandbox import SandboxServer, Scenario, serve_forever
from tests.sandbox_fixtures import Caller


def control(sb: SandboxServer, name: str) -> str:
    return sb.url.replace("/rest", f"/_sandbox/{name}")


async def test_ledger_records_calls_without_secrets(
    sandbox: SandboxServer, caller: Caller, http: aiohttp.ClientSession
) -> None:
    order_id = sandbox.scenario.orders[0].order_id
    await caller("/order/get", {"order_id": order_id})
    await caller("/order/get", {"order_id": order_id}, secret="bad")
    async with http.get(control(sandbox, "ledger")) as resp:
        entries = (await resp.json())["entries"]
    assert [(e["route"], e["signature_ok"], e["code"]) for e in entries] == [
        ("/order/get", True, "0"),
        ("/order/get", False, "IncompleteSignature"),
    ]
    first = entries[0]
    assert first["seller"] == "default" and first["method"] == "GET"
    assert first["params"]["order_id"] == order_id
    assert first["request_id"] and first["http_status"] == 200
    token = sandbox.state.sellers["default"].access_token
    text = str(entries)
    assert token not in text and "'sign'" not in text and sandbox.scenario.app_secret not in text


async def test_state_endpoint(sandbox: SandboxServer, http: aiohttp.ClientSession) -> None:
    async with http.get(control(sandbox, "state")) as resp:
        state = await resp.json()
    item_id = sandbox.scenario.orders[0].items[0].order_item_id
    assert state["items"][item_id]["status"] == sandbox.item(item_id).status
    assert state["items"][item_id]["creates"] == 0
    assert set(state["stock"]["default"]) >= {sandbox.item(item_id).sku}
    assert state["sellers"]["default"]["country"] == "SG"
    assert len(state["orders"]) == 30


async def test_reset_restores_the_start(
    sandbox: SandboxServer, caller: Caller, http: aiohttp.ClientSession
) -> None:
    order = next(o for o in sandbox.scenario.orders if o.statuses == ["pending"])
    item_id = order.items[0].order_item_id
    params = {"order_id": order.order_id, "order_item_id_list": f"[{item_id}]"}
    await caller("/order/reverse/cancel/create", {**params, "reason_id": "10000019"})
    assert sandbox.item(item_id).status == "canceled"
    async with http.post(control(sandbox, "reset")) as resp:
        assert resp.status == 200
    assert sandbox.item(item_id).status == "pending"
    assert sandbox.ledger == [] and sandbox.creates_for(item_id) == 0


async def test_reset_with_a_new_scenario(
    sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    fresh = Scenario.generate(n_orders=3, seed=8)
    async with http.post(control(sandbox, "reset"), json={"scenario": fresh.to_dict()}) as resp:
        assert (await resp.json())["orders"] == 3
    body = await Caller(sandbox, http)("/order/get", {"order_id": fresh.orders[0].order_id})
    assert body["code"] == "0"
    async with http.post(control(sandbox, "reset"), json={"scenario": {"app_key": 1}}) as resp:
        assert resp.status == 400


async def test_clock_endpoint_creates_skew(
    sandbox: SandboxServer, caller: Caller, http: aiohttp.ClientSession
) -> None:
    async with http.post(control(sandbox, "clock"), json={"offset_s": -9000}) as resp:
        assert (await resp.json())["clock"]["offset_s"] == -9000
    body = await caller("/order/get", {"order_id": sandbox.scenario.orders[0].order_id})
    assert body["code"] == "IncompleteSignature"
    async with http.post(control(sandbox, "clock"), json={"frozen_ms": 1700000000000}) as resp:
        assert (await resp.json())["clock"]["now"] == 1700000000.0


async def test_unknown_api_and_app_key(sandbox: SandboxServer, caller: Caller) -> None:
    assert (await caller("/order/pack", {"order_id": "1"}))["code"] == "InvalidApiPath"
    sandbox.scenario.app_key = "999"  # the caller signs with it, the live state keeps the old one
    body = await caller("/order/get", {"order_id": "1"})
    assert body["code"] == "InvalidParameter" and '"app_key"' in body["message"]


async def test_serve_forever_runs_until_cancelled(http: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(
        serve_forever(Scenario.generate(n_orders=2, seed=1), "127.0.0.1", port)
    )
    body: Any = None
    for _ in range(50):
        await asyncio.sleep(0.02)
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with http.get(f"http://127.0.0.1:{port}/_sandbox/state") as resp:
                body = await resp.json()
                break
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert body is not None and len(body["orders"]) == 2


async def test_date_header_tells_the_sandbox_clock(
    sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    from email.utils import parsedate_to_datetime

    sandbox.clock.set(offset_s=3 * 3600)
    for url in (sandbox.url + "/order/get", sandbox.url, control(sandbox, "state")):
        async with http.get(url) as resp:
            shown = parsedate_to_datetime(resp.headers["Date"]).timestamp()
        assert abs(shown - sandbox.clock.now()) < 2
