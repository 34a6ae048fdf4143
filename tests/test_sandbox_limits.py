"""The per-API, per-seller calls-per-second limit, checked on answers and on the ledger."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lazada_sandbox import LedgerEntry, SandboxServer, Scenario
from tests.sandbox_fixtures import Caller, MakeSandbox

LIMIT_MESSAGE = "Api access frequency exceeds the limit. this ban will last 1 seconds."


def max_calls_in_any_second(entries: list[LedgerEntry], seller: str, route: str) -> int:
    """The most admitted calls of one seller on one API inside any one-second window."""
    times = sorted(
        e.monotonic
        for e in entries
        if e.seller == seller and e.route == route and e.code != "ApiCallLimit"
    )
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _limited(make_sandbox: MakeSandbox, **knobs: Any) -> SandboxServer:
    scenario = Scenario.generate(n_orders=5, seed=9, sellers={"default": "SG", "two": "SG"})
    for key, value in knobs.items():
        setattr(scenario, key, value)
    return await make_sandbox(scenario)


def _own_order(sb: SandboxServer) -> str:
    return next(o.order_id for o in sb.scenario.orders if o.seller == "default")


async def test_burst_over_the_limit(make_sandbox: MakeSandbox, http: Any) -> None:
    sb = await _limited(make_sandbox, rate_limit=3)
    caller = Caller(sb, http)
    order_id = _own_order(sb)
    bodies = await asyncio.gather(*(caller("/order/get", {"order_id": order_id}) for _ in range(8)))
    codes = sorted(b["code"] for b in bodies)
    assert codes == ["0"] * 3 + ["ApiCallLimit"] * 5
    refused = next(b for b in bodies if b["code"] == "ApiCallLimit")
    assert refused["message"] == LIMIT_MESSAGE and refused["type"] == "ISV"


async def test_limit_is_per_api_and_per_seller(make_sandbox: MakeSandbox, http: Any) -> None:
    sb = await _limited(make_sandbox, rate_limit=1, rate_limit_per_api={"/orders/get": 2})
    one, two = Caller(sb, http), Caller(sb, http, seller="two")
    since = {"created_after": "2000-01-01T00:00:00+08:00"}
    order_id = _own_order(sb)
    assert (await one("/order/get", {"order_id": order_id}))["code"] == "0"
    assert (await one("/order/get", {"order_id": order_id}))["code"] == "ApiCallLimit"
    assert (await one("/orders/get", since))["code"] == "0"
    assert (await one("/orders/get", since))["code"] == "0"
    assert (await one("/orders/get", since))["code"] == "ApiCallLimit"
    assert (await two("/orders/get", since))["code"] == "0"


async def test_window_slides(make_sandbox: MakeSandbox, http: Any) -> None:
    sb = await _limited(make_sandbox, rate_limit=2)
    caller = Caller(sb, http)
    order_id = _own_order(sb)
    started = time.monotonic()
    codes: list[str] = []
    while time.monotonic() - started < 1.6:
        codes.append((await caller("/order/get", {"order_id": order_id}))["code"])
        await asyncio.sleep(0.05)
    assert 4 <= codes.count("0") <= 4 + 1  # two per second, over a little more than 1.5 s
    assert "ApiCallLimit" in codes
    assert max_calls_in_any_second(sb.ledger, "default", "/order/get") <= 2


async def test_unlimited_by_default(caller: Caller, sandbox: SandboxServer) -> None:
    order_id = sandbox.scenario.orders[0].order_id
    bodies = await asyncio.gather(
        *(caller("/order/get", {"order_id": order_id}) for _ in range(30))
    )
    assert {b["code"] for b in bodies} == {"0"}
    assert max_calls_in_any_second(sandbox.ledger, "default", "/order/get") == 30
