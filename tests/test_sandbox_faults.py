"""Fault injection: error envelopes, HTML 502, slow answers, dropped connections, and faults
that strike after a create has already been applied."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from lazada_sandbox import SandboxServer, Scenario
from tests.sandbox_fixtures import Caller, MakeSandbox

CREATE = "/order/reverse/cancel/create"


def _pending(sb: SandboxServer) -> tuple[str, str]:
    order = next(o for o in sb.scenario.orders if o.statuses == ["pending"])
    return order.order_id, order.items[0].order_item_id


def _create_params(order_id: str, item_id: str) -> dict[str, str]:
    return {"order_id": order_id, "order_item_id_list": f'["{item_id}"]', "reason_id": "10000021"}


@pytest.mark.parametrize(
    ("kind", "kind_type", "message"),
    [
        ("ServiceTimeout", "ISP", "The request has failed due to service timeout"),
        ("106", "ISP", "E0106: ROC internal error"),
        ("6", "ISP", "E006: System Error"),
    ],
)
async def test_error_faults(
    sandbox: SandboxServer, caller: Caller, kind: str, kind_type: str, message: str
) -> None:
    order_id, item_id = _pending(sandbox)
    sandbox.faults.set({"script": {CREATE: [kind]}})
    body = await caller(CREATE, _create_params(order_id, item_id))
    assert body["code"] == kind and body["type"] == kind_type and body["message"] == message
    assert sandbox.item(item_id).status == "pending"
    entry = sandbox.ledger[-1]
    assert (entry.fault, entry.applied, entry.code) == (kind, False, kind)


async def test_html_502(sandbox: SandboxServer, caller: Caller) -> None:
    sandbox.faults.set({"script": {"/order/get": ["html502"]}})
    query = urlencode(caller.signed("/order/get", {"order_id": _pending(sandbox)[0]}))
    status, body = await caller.raw("/order/get", query)
    assert status == 502
    assert isinstance(body, str) and "502 Bad Gateway" in body
    assert (sandbox.ledger[-1].http_status, sandbox.ledger[-1].code) == (502, None)


async def test_drop_before_apply(sandbox: SandboxServer, caller: Caller) -> None:
    order_id, item_id = _pending(sandbox)
    sandbox.faults.set({"script": {CREATE: ["drop"]}})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await caller(CREATE, _create_params(order_id, item_id), method="POST")
    assert sandbox.item(item_id).status == "pending"
    assert sandbox.ledger[-1].http_status is None and not sandbox.ledger[-1].applied


async def test_drop_after_apply_then_ok(sandbox: SandboxServer, caller: Caller) -> None:
    order_id, item_id = _pending(sandbox)
    sandbox.faults.set({"script": {CREATE: ["drop_after_apply", "ok"]}})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await caller(CREATE, _create_params(order_id, item_id), method="POST")
    assert sandbox.item(item_id).status == "canceled"
    dropped = sandbox.ledger[-1]
    assert (dropped.applied, dropped.result_code, dropped.code) == (True, "0", None)

    retry = await caller(CREATE, _create_params(order_id, item_id))
    assert retry["data"]["tip_type"] == "error"
    assert sandbox.creates_for(item_id) == 1


async def test_aiohttp_resends_a_dropped_get_once(sandbox: SandboxServer, caller: Caller) -> None:
    """aiohttp retries an idempotent method once after a disconnect; the ledger shows it."""
    order_id, item_id = _pending(sandbox)
    sandbox.faults.set({"script": {CREATE: ["drop_after_apply"]}})
    body = await caller(CREATE, _create_params(order_id, item_id), method="GET")
    assert body["data"]["tip_type"] == "error"  # the resend found the item already canceled
    creates = [e for e in sandbox.ledger if e.route == CREATE]
    assert [(e.fault, e.code) for e in creates] == [("drop_after_apply", None), (None, "0")]


async def test_late_after_apply_outlives_client_timeout(
    sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    order_id, item_id = _pending(sandbox)
    sandbox.faults.set({"script": {CREATE: ["late_after_apply"]}, "slow_seconds": 0.5})
    caller = Caller(sandbox, http)
    query = urlencode(caller.signed(CREATE, _create_params(order_id, item_id)))
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(
            f"{sandbox.url}{CREATE}?{query}", timeout=aiohttp.ClientTimeout(total=0.2)
        ) as resp:
            await resp.read()
    assert sandbox.item(item_id).status == "canceled"


async def test_slow_answer(sandbox: SandboxServer, caller: Caller) -> None:
    sandbox.faults.set({"script": {"/order/get": ["slow"]}, "slow_seconds": 0.3})
    started = time.monotonic()
    body = await caller("/order/get", {"order_id": _pending(sandbox)[0]})
    assert body["code"] == "0"
    assert time.monotonic() - started >= 0.3
    assert sandbox.ledger[-1].fault == "slow"


async def test_rate_faults_are_seeded(make_sandbox: MakeSandbox, http: Any) -> None:
    plan = {"rate": 0.5, "kinds": ["ServiceTimeout", "6"], "seed": 7}
    runs = []
    for _ in range(2):
        scenario = Scenario.generate(n_orders=3, seed=1)
        scenario.faults = plan
        sb = await make_sandbox(scenario)
        caller = Caller(sb, http)
        order_id = sb.scenario.orders[0].order_id
        runs.append(
            [(await caller("/order/get", {"order_id": order_id}))["code"] for _ in range(20)]
        )
    assert runs[0] == runs[1]
    assert {"0", "ServiceTimeout", "6"} == set(runs[0])


async def test_faults_via_control_endpoint(
    sandbox: SandboxServer, caller: Caller, http: Any
) -> None:
    control = sandbox.url.replace("/rest", "/_sandbox/faults")
    plan = {"rate": 1.0, "kinds": ["106"], "routes": ["/order/reverse/cancel/validate"]}
    async with http.post(control, json=plan) as resp:
        assert resp.status == 200
        assert (await resp.json())["faults"]["rate"] == 1.0
    order_id, item_id = _pending(sandbox)
    params = {"order_id": order_id, "order_item_id_list": f'["{item_id}"]'}
    assert (await caller("/order/reverse/cancel/validate", params))["code"] == "106"
    assert (await caller("/order/get", {"order_id": order_id}))["code"] == "0"

    async with http.post(control, json={"script": {CREATE: ["meteor"]}}) as resp:
        assert resp.status == 400
        assert "meteor" in (await resp.json())["error"]


async def test_faulted_calls_count_toward_the_rate_limit(
    make_sandbox: MakeSandbox, http: Any
) -> None:
    scenario = Scenario.generate(n_orders=3, seed=1)
    scenario.rate_limit = 1
    scenario.faults = {"script": {"/order/get": ["ServiceTimeout"]}}
    sb = await make_sandbox(scenario)
    caller = Caller(sb, http)
    order_id = sb.scenario.orders[0].order_id
    assert (await caller("/order/get", {"order_id": order_id}))["code"] == "ServiceTimeout"
    assert (await caller("/order/get", {"order_id": order_id}))["code"] == "ApiCallLimit"
