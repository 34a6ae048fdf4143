"""Tokens per seller: unknown or expired access tokens, and refresh rotating both tokens."""

from __future__ import annotations

from typing import Any

import aiohttp

from lazada_sandbox import SandboxServer, Scenario
from tests.sandbox_fixtures import Caller, MakeSandbox

REFRESH = "/auth/token/refresh"


def _order_id(sb: SandboxServer) -> str:
    return sb.scenario.orders[0].order_id


async def test_unknown_token_is_illegal(caller: Caller, sandbox: SandboxServer) -> None:
    body = await caller("/order/get", {"order_id": _order_id(sandbox)}, token="no-such-token")
    assert body["type"] == "ISV"
    assert body["code"] == "IllegalAccessToken"
    assert body["message"] == "The specified access token is invalid or expired"
    assert sandbox.ledger[-1].seller is None


async def test_expired_token_via_control_endpoint(
    caller: Caller, sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    assert (await caller("/order/get", {"order_id": _order_id(sandbox)}))["code"] == "0"
    control = sandbox.url.replace("/rest", "/_sandbox/expire-token")
    async with http.post(control, json={"seller": "default", "which": "access"}) as resp:
        assert resp.status == 200
    body = await caller("/order/get", {"order_id": _order_id(sandbox)})
    assert body["code"] == "IllegalAccessToken"


async def test_refresh_rotates_both_tokens(caller: Caller, sandbox: SandboxServer) -> None:
    seller = sandbox.state.sellers["default"]
    old_access, old_refresh = seller.access_token, seller.refresh_token

    body = await caller(REFRESH, {"refresh_token": old_refresh})

    assert body["code"] == "0" and "data" not in body
    assert body["access_token"] not in (old_access, "")
    assert body["refresh_token"] not in (old_refresh, "")
    assert body["expires_in"] == 7 * 86400
    assert 0 < body["refresh_expires_in"] <= 30 * 86400
    assert body["country_user_info_list"][0]["seller_id"] == seller.seller_id
    assert body["country"] == "sg"
    assert "refresh_token" not in sandbox.ledger[-1].params
    assert sandbox.ledger[-1].seller == "default"

    fresh = await caller("/order/get", {"order_id": _order_id(sandbox)}, token=body["access_token"])
    assert fresh["code"] == "0"
    stale = await caller("/order/get", {"order_id": _order_id(sandbox)}, token=old_access)
    assert stale["code"] == "IllegalAccessToken"
    again = await caller(REFRESH, {"refresh_token": old_refresh})
    assert again["code"] == "IllegalRefreshToken"
    assert again["message"] == "The specified refresh token is invalid or expired"


async def test_expired_refresh_token(caller: Caller, sandbox: SandboxServer) -> None:
    token = sandbox.state.sellers["default"].refresh_token
    sandbox.expire_token("default", "refresh")
    assert (await caller(REFRESH, {"refresh_token": token}))["code"] == "IllegalRefreshToken"
    assert (await caller(REFRESH, {}))["code"] == "MissingParameter"


async def test_token_lifetime_follows_the_sandbox_clock(
    make_sandbox: MakeSandbox, http: Any
) -> None:
    scenario = Scenario.generate(n_orders=2, seed=2)
    scenario.sellers["default"].access_expires_in = 60
    scenario.timestamp_window_s = 10**9  # let the skewed clock pass the timestamp check
    sb = await make_sandbox(scenario)
    caller = Caller(sb, http)
    assert (await caller("/order/get", {"order_id": _order_id(sb)}))["code"] == "0"
    sb.clock.set(offset_s=61)
    assert (await caller("/order/get", {"order_id": _order_id(sb)}))["code"] == "IllegalAccessToken"


async def test_one_token_one_seller(make_sandbox: MakeSandbox, http: Any) -> None:
    scenario = Scenario.generate(n_orders=6, seed=4, sellers={"east": "MY", "west": "PH"})
    sb = await make_sandbox(scenario)
    await Caller(sb, http, seller="west")("/orders/get", {"created_after": "2000-01-01T00:00:00Z"})
    assert sb.ledger[-1].seller == "west"
    assert scenario.sellers["east"].access_token != scenario.sellers["west"].access_token
