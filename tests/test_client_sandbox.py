"""The client against the sandbox gateway over loopback HTTP: signing, errors, retries, paging.

The sandbox's ledger shows what actually reached the gateway, so these tests assert on the
calls made as well as on what the client returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from lazada_sandbox import SandboxServer, Scenario
from lazcancel.client import LazadaClient, RetryPolicy, StaticToken, session_for
from lazcancel.errors import (
    AuthError,
    BusinessError,
    ConfigurationError,
    OutcomeUnknownError,
    TransientError,
)
from lazcancel.models import Verdict
from lazcancel.ratelimit import LocalLimiter

VALIDATE = "/order/reverse/cancel/validate"
CREATE = "/order/reverse/cancel/create"
SG = timezone(timedelta(hours=8))
FAST = RetryPolicy(attempts=6, backoff_base=0.01, backoff_cap=0.05)


@dataclass
class Timeouts:
    connect_timeout: float = 1.0
    read_timeout: float = 0.4
    connection_limit: int = 8


class SandboxTokens:
    """A TokenSource that refreshes through the client, as the runtime's would."""

    def __init__(self, access: str, refresh: str) -> None:
        self.access, self.refresh_value = access, refresh
        self.client: LazadaClient | None = None
        self.refreshes = 0

    async def access_token(self) -> str:
        return self.access

    async def refresh(self, stale_token: str) -> str:
        assert self.client is not None
        pair = await self.client.refresh_token(self.refresh_value)
        self.access, self.refresh_value = pair.access_token, pair.refresh_token
        self.refreshes += 1
        return self.access


MakeClient = Callable[..., LazadaClient]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    session = session_for(Timeouts())
    yield session
    await session.close()


@pytest.fixture
def make_client(session: aiohttp.ClientSession) -> MakeClient:
    def factory(sb: SandboxServer, **overrides: Any) -> LazadaClient:
        seller = sb.state.sellers["default"]
        options: dict[str, Any] = dict(
            session=session,
            api_url=sb.url,
            app_key=sb.scenario.app_key,
            app_secret=sb.scenario.app_secret,
            tokens=StaticToken(seller.access_token),
            limiter=LocalLimiter(rate_for=lambda api: 200.0),
            retry=FAST,
        )
        options.update(overrides)
        return LazadaClient(**options)

    return factory


def _orders_with(sb: SandboxServer, status: str, *, min_items: int = 1) -> list[str]:
    return [
        o.order_id
        for o in sb.scenario.orders
        if o.statuses == [status] and len(o.items) >= min_items and not _packaged(sb, o.order_id)
    ]


def _packaged(sb: SandboxServer, order_id: str) -> bool:
    order = sb.state.order("default", order_id)
    return order is None or any(item.package_id for item in order.items)


def _item_ids(sb: SandboxServer, order_id: str) -> list[str]:
    order = sb.state.order("default", order_id)
    assert order is not None
    return [item.order_item_id for item in order.items]


def _calls(sb: SandboxServer, route: str) -> list[Any]:
    return [entry for entry in sb.ledger if entry.route == route]


# --- reads, ids and encoding ------------------------------------------------------------------


async def test_order_items_ids_are_digit_strings(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    order_id = _orders_with(sandbox, "pending")[0]
    items = await make_client(sandbox).get_order_items(order_id)

    assert [i.order_item_id for i in items] == _item_ids(sandbox, order_id)
    assert all(i.order_id == order_id and i.status == "pending" for i in items)
    assert all(i.sku for i in items)
    (entry,) = sandbox.ledger
    assert entry.signature_ok is True
    assert "access_token" not in entry.params
    assert abs(int(entry.params["timestamp"]) / 1000 - time.time()) < 5


async def test_ids_sent_as_strings_read_the_same(
    make_sandbox: Callable[..., Awaitable[SandboxServer]], make_client: MakeClient
) -> None:
    scenario = Scenario.generate(n_orders=10, seed=4)
    scenario.ids_as_strings = True
    sb = await make_sandbox(scenario)
    order_ids = [o.order_id for o in scenario.orders[:3]]
    found = await make_client(sb).get_multiple_order_items(order_ids)

    assert list(found) == order_ids
    for order_id in order_ids:
        assert [i.order_item_id for i in found[order_id]] == _item_ids(sb, order_id)


async def test_plus_in_dates_survives_and_is_signed(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    earliest = min(o.created_at for o in sandbox.scenario.orders)
    after = datetime.fromtimestamp(earliest - 60, tz=SG)
    client = make_client(sandbox)
    orders = [o async for o in client.get_orders(created_after=after, status="pending")]

    (entry,) = sandbox.ledger
    assert entry.signature_ok is True
    assert entry.code == "0"
    assert entry.params["created_after"].endswith("+08:00")
    assert entry.params["status"] == "pending"
    expected = {o.order_id for o in sandbox.scenario.orders if "pending" in o.statuses}
    assert {o.order_id for o in orders} == expected
    assert all(o.created_at.utcoffset() == timedelta(hours=8) for o in orders)


async def test_get_orders_pages_past_offset_5000(
    make_sandbox: Callable[..., Awaitable[SandboxServer]], make_client: MakeClient
) -> None:
    scenario = Scenario.generate(n_orders=5250, seed=3)
    sb = await make_sandbox(scenario)
    earliest = min(o.created_at for o in scenario.orders)
    after = datetime.fromtimestamp(int(earliest) - 1, tz=SG)
    orders = [o async for o in make_client(sb).get_orders(created_after=after)]

    ids = [o.order_id for o in orders]
    assert len(ids) == len(set(ids)) == 5250
    assert set(ids) == {o.order_id for o in scenario.orders}
    assert [o.created_at for o in orders] == sorted(o.created_at for o in orders)
    pages = _calls(sb, "/orders/get")
    assert all(entry.code == "0" for entry in pages)
    assert max(int(entry.params["offset"]) for entry in pages) == 5000
    assert len({entry.params["created_after"] for entry in pages}) == 2


async def test_multiple_order_items_chunks_and_isolates_unknown_orders(
    make_sandbox: Callable[..., Awaitable[SandboxServer]], make_client: MakeClient
) -> None:
    scenario = Scenario.generate(n_orders=110, seed=5)
    sb = await make_sandbox(scenario)
    known = [o.order_id for o in scenario.orders]
    unknown = "99999999912345"
    wanted = [*known[:60], unknown, *known[60:]]
    found = await make_client(sb).get_multiple_order_items(wanted)

    assert set(found) == set(known)
    assert found[known[0]][0].order_item_id == _item_ids(sb, known[0])[0]
    multi = _calls(sb, "/orders/items/get")
    assert [len(entry.params["order_ids"].split(",")) for entry in multi] == [50, 50, 11]
    assert multi[0].params["order_ids"].startswith(f"[{known[0]},")
    assert [entry.code for entry in multi] == ["0", "37", "0"]
    single = _calls(sb, "/order/items/get")
    assert len(single) == 50
    assert [entry.code for entry in single].count("16") == 1


# --- error classes ----------------------------------------------------------------------------


async def test_transient_faults_are_retried_until_success(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    order_id = _orders_with(sandbox, "pending")[0]
    faults = ["ServiceTimeout", "6", "html502", "drop", "UnknownRuntimeException", "ok"]
    sandbox.faults.set({"script": {"/order/items/get": faults}})
    items = await make_client(sandbox).get_order_items(order_id)

    assert [i.order_item_id for i in items] == _item_ids(sandbox, order_id)
    assert [e.fault for e in sandbox.ledger] == [*faults[:-1], None]


async def test_transient_faults_exhaust_attempts(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    sandbox.faults.set({"script": {"/order/items/get": ["html502"] * 3}})
    client = make_client(sandbox, retry=RetryPolicy(attempts=3, backoff_base=0.01))
    with pytest.raises(TransientError) as info:
        await client.get_order_items(_orders_with(sandbox, "pending")[0])
    assert (info.value.code, info.value.attempts) == ("upstream_error", 3)
    assert "502" in info.value.message
    assert len(sandbox.ledger) == 3


async def test_slow_answer_is_a_read_timeout_and_retried(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    sandbox.faults.set({"script": {"/order/items/get": ["slow"]}, "slow_seconds": 1.0})
    items = await make_client(sandbox).get_order_items(_orders_with(sandbox, "pending")[0])
    assert items
    assert [e.fault for e in sandbox.ledger] == ["slow", None]


async def test_rate_limit_ban_is_waited_out(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    sandbox.faults.set({"script": {"/order/items/get": ["ApiCallLimit"]}})
    limiter = LocalLimiter(rate_for=lambda api: 200.0)
    client = make_client(sandbox, limiter=limiter, retry=RetryPolicy(jitter=0.0))
    order_id = _orders_with(sandbox, "pending")[0]
    await client.get_order_items(order_id)

    first, second = sandbox.ledger
    assert first.code == "ApiCallLimit"
    assert second.code == "0"
    assert second.monotonic - first.monotonic >= 1.0


async def test_gateway_rate_limit_per_api(
    make_sandbox: Callable[..., Awaitable[SandboxServer]], make_client: MakeClient
) -> None:
    scenario = Scenario.generate(n_orders=6, seed=6)
    scenario.rate_limit_per_api = {"/order/items/get": 3}
    sb = await make_sandbox(scenario)
    client = make_client(sb, limiter=LocalLimiter(rate_for=lambda api: 100.0))
    for order in scenario.orders[:5]:
        assert await client.get_order_items(order.order_id)

    codes = [entry.code for entry in sb.ledger]
    assert codes.count("ApiCallLimit") >= 1
    assert codes.count("0") == 5


async def test_expired_token_is_refreshed_once(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    seller = sandbox.state.sellers["default"]
    tokens = SandboxTokens(seller.access_token, seller.refresh_token)
    client = make_client(sandbox, tokens=tokens)
    tokens.client = client
    sandbox.expire_token("default")
    order_id = _orders_with(sandbox, "pending")[0]
    items = await client.get_order_items(order_id)

    assert items
    assert tokens.refreshes == 1
    assert [(e.route, e.code) for e in sandbox.ledger] == [
        ("/order/items/get", "IllegalAccessToken"),
        ("/auth/token/refresh", "0"),
        ("/order/items/get", "0"),
    ]
    assert tokens.access == sandbox.state.sellers["default"].access_token


async def test_token_rejected_twice_propagates(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    seller = sandbox.state.sellers["default"]
    tokens = SandboxTokens(seller.access_token, seller.refresh_token)
    client = make_client(sandbox, tokens=tokens)
    tokens.client = client
    rejected = ["IllegalAccessToken", "IllegalAccessToken"]
    sandbox.faults.set({"script": {"/order/items/get": rejected}})
    with pytest.raises(AuthError) as info:
        await client.get_order_items(_orders_with(sandbox, "pending")[0])
    assert info.value.attempts == 2
    assert tokens.refreshes == 1
    assert [e.route for e in sandbox.ledger].count("/order/items/get") == 2


async def test_expired_refresh_token_is_a_configuration_error(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    seller = sandbox.state.sellers["default"]
    tokens = SandboxTokens(seller.access_token, seller.refresh_token)
    client = make_client(sandbox, tokens=tokens)
    tokens.client = client
    sandbox.expire_token("default", "both")
    with pytest.raises(ConfigurationError) as info:
        await client.get_order_items(_orders_with(sandbox, "pending")[0])
    assert info.value.code == "IllegalRefreshToken"
    assert len(sandbox.ledger) == 2


async def test_wrong_secret_is_a_configuration_error(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    client = make_client(sandbox, app_secret="not-the-secret")
    with pytest.raises(ConfigurationError) as info:
        await client.get_order_items(_orders_with(sandbox, "pending")[0])
    assert (info.value.code, info.value.attempts) == ("IncompleteSignature", 1)
    (entry,) = sandbox.ledger
    assert entry.signature_ok is False
    assert "not-the-secret" not in str(info.value)


async def test_clock_skew_is_a_configuration_error(
    sandbox: SandboxServer, make_client: MakeClient, session: aiohttp.ClientSession
) -> None:
    order_id = _orders_with(sandbox, "pending")[0]
    skewed = make_client(sandbox, clock=lambda: time.time() - 7300)
    with pytest.raises(ConfigurationError) as info:
        await skewed.get_order_items(order_id)
    assert info.value.code == "IncompleteSignature"
    assert "7200" in info.value.message

    control = sandbox.url.removesuffix("/rest") + "/_sandbox/clock"
    async with session.post(control, json={"offset_s": -7300}) as response:
        assert response.status == 200
    with pytest.raises(ConfigurationError):
        await make_client(sandbox).get_order_items(order_id)
    assert len(sandbox.ledger) == 2


async def test_wrong_app_key_is_a_configuration_error(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    with pytest.raises(ConfigurationError) as info:
        await make_client(sandbox, app_key="000").get_order_items("1")
    assert info.value.code == "InvalidParameter"


async def test_unknown_order_is_business_16(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    with pytest.raises(BusinessError) as info:
        await make_client(sandbox).get_order_items("99999999912345")
    assert info.value.code == "16"
    assert info.value.request_id == sandbox.ledger[0].request_id


async def test_bad_status_filter_is_a_configuration_error(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    after = datetime(2020, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigurationError) as info:
        [o async for o in make_client(sandbox).get_orders(created_after=after, status="nope")]
    assert info.value.code == "36"


# --- the cancel APIs --------------------------------------------------------------------------


async def test_validate_then_create_cancels(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    order_id = _orders_with(sandbox, "pending")[0]
    item_id = _item_ids(sandbox, order_id)[0]
    client = make_client(sandbox)
    tip = await client.validate_cancel(order_id, [item_id])
    assert tip.verdict is Verdict.ACCEPTED
    reason = next(o for o in tip.reason_options if o.reason_name == "Out of Stock")

    done = await client.create_cancel(order_id, [item_id], reason.reason_id)
    assert done.verdict is Verdict.ACCEPTED
    assert done.request_id == _calls(sandbox, CREATE)[0].request_id
    (after,) = [i for i in await client.get_order_items(order_id) if i.order_item_id == item_id]
    assert after.status == "canceled"
    assert after.cancel_return_initiator == "cancellation-seller"
    assert _calls(sandbox, CREATE)[0].params["order_item_id_list"] == f'["{item_id}"]'


async def test_business_refusals_name_the_items(
    make_sandbox: Callable[..., Awaitable[SandboxServer]], make_client: MakeClient
) -> None:
    scenario = Scenario.generate(n_orders=20, seed=7, sellers={"default": "SG", "other": "SG"})
    sb = await make_sandbox(scenario)
    mine = [o for o in scenario.orders if o.seller == "default"]
    theirs = next(o for o in scenario.orders if o.seller == "other")
    order_id, item_id = mine[0].order_id, mine[0].items[0].order_item_id
    stranger = mine[1].items[0].order_item_id
    foreign = theirs.items[0].order_item_id
    client = make_client(sb)

    with pytest.raises(BusinessError) as info:
        await client.validate_cancel(order_id, [item_id, stranger])
    assert (info.value.code, info.value.item_ids) == ("123", (stranger,))
    with pytest.raises(BusinessError) as info:
        await client.validate_cancel(order_id, [foreign])
    assert (info.value.code, info.value.item_ids) == ("124", (foreign,))
    with pytest.raises(BusinessError) as info:
        await client.validate_cancel(theirs.order_id, [foreign])
    assert info.value.code == "122"
    with pytest.raises(BusinessError) as info:
        await client.create_cancel(order_id, [item_id], "424242")
    assert info.value.code == "104"
    assert len(sb.ledger) == 4
    assert sb.state.creates[item_id] == 0


async def test_refused_cancel_is_a_rejected_tip(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    order_id = _orders_with(sandbox, "pending")[0]
    item_id = _item_ids(sandbox, order_id)[0]
    sandbox.item(item_id).status = "delivered"
    tip = await make_client(sandbox).validate_cancel(order_id, [item_id])
    assert tip.verdict is Verdict.REJECTED
    assert "delivered" in tip.tip_content
    assert tip.reason_options == ()


@pytest.mark.parametrize("fault", ["drop_after_apply", "ServiceTimeout", "106", "html502", "drop"])
async def test_create_is_never_retried_blindly(
    sandbox: SandboxServer, make_client: MakeClient, fault: str
) -> None:
    order_id = _orders_with(sandbox, "pending")[0]
    item_id = _item_ids(sandbox, order_id)[0]
    sandbox.faults.set({"script": {CREATE: [fault]}})
    with pytest.raises(OutcomeUnknownError) as info:
        await make_client(sandbox).create_cancel(order_id, [item_id], "10000021")

    assert info.value.attempts == 1
    (entry,) = _calls(sandbox, CREATE)
    assert entry.fault == fault
    applied = sandbox.item(item_id).status == "canceled"
    assert applied is (fault == "drop_after_apply")
    assert sandbox.creates_for(item_id) == int(applied)


async def test_create_after_a_slow_answer_is_outcome_unknown_and_may_apply_late(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    order_id = _orders_with(sandbox, "pending")[0]
    item_id = _item_ids(sandbox, order_id)[0]
    sandbox.faults.set({"script": {CREATE: ["slow"]}, "slow_seconds": 0.6})
    client = make_client(sandbox)
    with pytest.raises(OutcomeUnknownError):
        await client.create_cancel(order_id, [item_id], "10000021")
    assert len(_calls(sandbox, CREATE)) == 1

    # The gateway finishes the create after the client stopped waiting: only a re-read tells.
    statuses: set[str] = set()
    for _ in range(40):
        items = await client.get_order_items(order_id)
        statuses = {i.status for i in items if i.order_item_id == item_id}
        if statuses == {"canceled"}:
            break
        await asyncio.sleep(0.05)
    assert statuses == {"canceled"}
    assert sandbox.creates_for(item_id) == 1
    assert len(_calls(sandbox, CREATE)) == 1


async def test_create_is_retried_after_rate_limit(
    sandbox: SandboxServer, make_client: MakeClient
) -> None:
    order_id = _orders_with(sandbox, "pending")[0]
    item_id = _item_ids(sandbox, order_id)[0]
    sandbox.faults.set({"script": {CREATE: ["ApiCallLimit"]}})
    tip = await make_client(sandbox, retry=RetryPolicy(jitter=0.0)).create_cancel(
        order_id, [item_id], "10000021"
    )
    assert (tip.verdict, tip.attempts) == (Verdict.ACCEPTED, 2)
    assert [e.applied for e in _calls(sandbox, CREATE)] == [False, True]
    assert sandbox.creates_for(item_id) == 1
