"""Signature and timestamp checks: the §5 vectors, both through the sandbox's signing module and
over HTTP with the sandbox clock fixed, plus the ``+``/``%2B`` rule and the 7200 s window."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest

from lazada_sandbox import SandboxServer, Scenario
from lazada_sandbox.signing import compute_sign, parse_timestamp, string_to_sign
from tests.sandbox_fixtures import Caller, MakeSandbox

SECRET = "4Ln7zVbLmZ3pQ8rT2xY6wK9sD1fH5jA0"
TOKEN = "50000601c30atpedfgu3LVvik87Ixlsvle3mSoB7701ceb156fPunYZ43GBg"
COMMON = {"access_token": TOKEN, "app_key": "123456", "timestamp": "1700000000000"}
COMMON["sign_method"] = "sha256"
PAIR = "[662834005391234,662834005491234]"
STRINGS = '["662834005391234","662834005491234"]'
V3_NOTE = "Hết hàng \u2013 สินค้าหมด ✓"  # the en dash is part of the vector

VECTORS: list[tuple[str, str, dict[str, str], str]] = [
    (
        "helloworld",
        "/order/get",
        {
            "app_key": "123456",
            "access_token": "test",
            "timestamp": "1517820392000",
            "sign_method": "sha256",
            "order_id": "1234",
        },
        "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A",
    ),
    (
        SECRET,
        "/orders/get",
        {
            **COMMON,
            "created_after": "2023-11-01T00:00:00+08:00",
            "status": "pending",
            "offset": "0",
            "limit": "100",
            "sort_by": "created_at",
            "sort_direction": "DESC",
        },
        "AD6B7D11EE94C4922D36B442E50B35EE6957A65E08C42D0BD17344C1E972B074",
    ),
    (
        SECRET,
        "/order/reverse/cancel/validate",
        {**COMMON, "order_id": "662834005291234", "order_item_id_list": PAIR},
        "127EB585BB977B090554CA491829408245B8414BA01CF5559B125D7145A6C74D",
    ),
    (
        SECRET,
        "/order/reverse/cancel/validate",
        {
            **COMMON,
            "order_id": "662834005291234",
            "order_item_id_list": "[662834005391234, 662834005491234]",
        },
        "F5A5E5D69B77B177E29FC960AB523B1559B6AA79B29380F8D088A9CFFB24E207",
    ),
    (
        SECRET,
        "/order/reverse/cancel/validate",
        {
            **COMMON,
            "order_id": "662834005291234",
            "order_item_id_list": PAIR,
            "partner_id": "lazop-sdk-python-20181207",
        },
        "D61DD547E8E59347BB71E4182F7A38A4342ACD17FE0E40654B260EBBAF3FA3CB",
    ),
    (
        SECRET,
        "/order/reverse/cancel/validate",
        {**COMMON, "order_id": "662834005291234", "order_item_id_list": STRINGS},
        "952F94E477627BBE15E356D2A6962F7B10CDB13D216C1B87E3104BBD36D3B28D",
    ),
    (
        SECRET,
        "/order/reverse/cancel/create",
        {
            **COMMON,
            "order_id": "662834005291234",
            "order_item_id_list": '["662834005391234"]',
            "reason_id": "10000021",
            "note": V3_NOTE,
        },
        "ADFB1D2E3D95819DDB1DD45CFDA7E07740F620A0CD79DC3B22FE6C7AB6348196",
    ),
    (
        SECRET,
        "/orders/items/get",
        {
            "app_key": "12345678",
            "timestamp": "1764727835197",
            "sign_method": "sha256",
            "access_token": "37c66819338b4562e17675b8c5c4dbd0",
            "order_ids": "[42922, 32793]",
        },
        "A196D4D1B23750F8D0BFF8F239F6C243A2062F7A2C76FDE7498D15465516E118",
    ),
]
VECTOR_IDS = ["V0", "V1", "V2", "V2-list", "V2-partner", "V2-strings", "V3", "E2"]


def _scenario(app_key: str, secret: str, token: str) -> Scenario:
    """A one-seller store holding every order the vectors name."""
    items = [
        {"order_item_id": "662834005391234", "status": "pending", "sku": "SKU-A"},
        {"order_item_id": "662834005491234", "status": "pending", "sku": "SKU-B"},
    ]
    orders: list[dict[str, Any]] = [
        {"order_id": "662834005291234", "created_at": "2023-11-02T10:00:00+08:00", "items": items},
        {"order_id": "1234", "created_at": "2018-02-01T10:00:00+08:00", "items": []},
    ]
    for oid, iid in (("42922", "52922"), ("32793", "42793")):
        orders.append(
            {
                "order_id": oid,
                "created_at": "2025-12-01T10:00:00+08:00",
                "items": [{"order_item_id": iid}],
            }
        )
    return Scenario.from_dict(
        {
            "app_key": app_key,
            "app_secret": secret,
            "sellers": {"default": {"access_token": token, "country": "SG"}},
            "orders": orders,
        }
    )


@pytest.mark.parametrize(("secret", "api", "params", "expected"), VECTORS, ids=VECTOR_IDS)
def test_vectors_with_sandbox_signing(
    secret: str, api: str, params: dict[str, str], expected: str
) -> None:
    assert compute_sign(secret, api, params) == expected


def test_string_to_sign_of_v0_and_v3() -> None:
    _, api, params, _ = VECTORS[0]
    assert string_to_sign(api, params) == (
        "/order/getaccess_tokentestapp_key123456order_id1234sign_methodsha256timestamp1517820392000"
    )
    _, api, params, _ = VECTORS[6]
    assert f"note{V3_NOTE}order_id662834005291234" in string_to_sign(api, params)


def test_empty_value_rules_e1() -> None:
    params = {
        "app_key": "123456",
        "timestamp": "1700000000000",
        "sign_method": "sha256",
        "access_token": "tok",
        "order_id": "662834005291234",
        "reason_detail": "",
    }
    sdk = "F5F414D5D5227A25506BD108B9EF2370C7BBD4124D6A85951780E232D1E3BB48"
    java = "8E78B3D10F28DFD7C65FD2212414306709753CC0AD7D6535EB2E670D195A7B88"
    assert compute_sign(SECRET, "/order/cancel", params) == sdk
    assert compute_sign(SECRET, "/order/cancel", params, keep_empty=False) == java


@pytest.mark.parametrize(("secret", "api", "params", "expected"), VECTORS, ids=VECTOR_IDS)
async def test_vectors_accepted_over_http_with_clock_fixed(
    make_sandbox: MakeSandbox,
    http: aiohttp.ClientSession,
    secret: str,
    api: str,
    params: dict[str, str],
    expected: str,
) -> None:
    sb = await make_sandbox(_scenario(params["app_key"], secret, params["access_token"]))
    sb.clock.set(frozen_at=int(params["timestamp"]) / 1000)
    status, body = await Caller(sb, http).raw(api, urlencode({**params, "sign": expected}))
    assert status == 200
    assert sb.ledger[-1].signature_ok is True
    assert body["code"] != "IncompleteSignature"
    assert "sign" not in sb.ledger[-1].params and "access_token" not in sb.ledger[-1].params


async def test_e2_wire_form_plus_is_a_space(make_sandbox: MakeSandbox, http: Any) -> None:
    _, api, params, expected = VECTORS[7]
    sb = await make_sandbox(_scenario("12345678", SECRET, params["access_token"]))
    sb.clock.set(frozen_at=1764727835.197)
    query = urlencode({**params, "sign": expected})
    assert "order_ids=%5B42922%2C+32793%5D" in query
    status, body = await Caller(sb, http).raw(api, query)
    assert status == 200 and body["code"] == "0"
    assert [o["order_id"] for o in body["data"]] == [42922, 32793]


def _v1_query(plus: str) -> str:
    _, _, params, expected = VECTORS[1]
    encoded = {k: v for k, v in params.items() if k != "created_after"}
    query = urlencode({**encoded, "sign": expected})
    return query + "&created_after=" + quote("2023-11-01T00:00:00", safe="") + plus + "08:00"


async def test_plus_must_be_sent_as_percent_2b(make_sandbox: MakeSandbox, http: Any) -> None:
    sb = await make_sandbox(_scenario("123456", SECRET, TOKEN))
    sb.clock.set(frozen_at=1700000000)
    caller = Caller(sb, http)

    _, good = await caller.raw("/orders/get", _v1_query("%2B"))
    _, bad = await caller.raw("/orders/get", _v1_query("+"))

    assert good["code"] == "0" and good["data"]["countTotal"] == 3
    assert bad["code"] == "IncompleteSignature"
    assert sb.ledger[-1].params["created_after"] == "2023-11-01T00:00:00 08:00"


async def test_v3_non_ascii_over_post(make_sandbox: MakeSandbox, http: Any) -> None:
    _, api, params, expected = VECTORS[6]
    sb = await make_sandbox(_scenario("123456", SECRET, TOKEN))
    sb.clock.set(frozen_at=1700000000)
    status, body = await Caller(sb, http).raw(
        api, urlencode({**params, "sign": expected}), method="POST"
    )
    assert status == 200
    assert body["data"]["tip_type"] == "success"
    assert sb.ledger[-1].params["note"] == V3_NOTE
    assert sb.item("662834005391234").status == "canceled"


async def test_wrong_secret_is_incomplete_signature(caller: Caller, sandbox: SandboxServer) -> None:
    order_id = sandbox.scenario.orders[0].order_id
    body = await caller("/order/get", {"order_id": order_id}, secret="not-the-secret")
    assert body["type"] == "ISV"
    assert body["code"] == "IncompleteSignature"
    assert body["message"] == "The request signature does not conform to lazop standards"
    assert sandbox.ledger[-1].signature_ok is False


async def test_missing_sign_is_missing_parameter(caller: Caller, sandbox: SandboxServer) -> None:
    params = caller.signed("/order/get", {"order_id": sandbox.scenario.orders[0].order_id})
    del params["sign"]
    _, body = await caller.raw("/order/get", urlencode(params))
    assert body["code"] == "MissingParameter"
    assert '"sign"' in body["message"]
    assert sandbox.ledger[-1].signature_ok is None


@pytest.mark.parametrize(("skew_s", "accepted"), [(7100, True), (-7100, True), (7300, False)])
async def test_timestamp_window(
    caller: Caller, sandbox: SandboxServer, skew_s: int, accepted: bool
) -> None:
    sandbox.clock.set(offset_s=skew_s)
    body = await caller("/order/get", {"order_id": sandbox.scenario.orders[0].order_id})
    if accepted:
        assert body["code"] == "0"
    else:
        assert body["code"] == "IncompleteSignature"
        assert "7200 s window" in body["message"]
        assert sandbox.ledger[-1].signature_ok is True


async def test_utc_text_timestamp_accepted(sandbox: SandboxServer, http: Any) -> None:
    sandbox.clock.set(frozen_at=parse_timestamp("2017-11-11T12:00:00Z"))
    caller = Caller(sandbox, http)
    order_id = sandbox.scenario.orders[0].order_id
    params = caller.signed("/order/get", {"order_id": order_id})
    params["timestamp"] = "2017-11-11T12:30:00Z"
    params["sign"] = caller.signed("/order/get", params)["sign"]
    assert params["timestamp"] == "2017-11-11T12:30:00Z"
    _, body = await caller.raw("/order/get", urlencode(params))
    assert body["code"] == "0"


@pytest.mark.parametrize(
    ("rule", "sdk_ok", "java_ok"),
    [("sdk", True, False), ("skip", False, True), ("either", True, True)],
)
async def test_empty_value_rule_is_configurable(
    make_sandbox: MakeSandbox, http: Any, rule: str, sdk_ok: bool, java_ok: bool
) -> None:
    scenario = _scenario("123456", SECRET, TOKEN)
    scenario.empty_value_rule = rule  # type: ignore[assignment]
    sb = await make_sandbox(scenario)
    caller = Caller(sb, http)
    params = caller.signed("/order/get", {"order_id": "662834005291234", "debug": ""})
    java = compute_sign(SECRET, "/order/get", params, keep_empty=False)
    _, as_sdk = await caller.raw("/order/get", urlencode(params))
    _, as_java = await caller.raw("/order/get", urlencode({**params, "sign": java}))
    assert (as_sdk["code"] == "0") is sdk_ok
    assert (as_java["code"] == "0") is java_ok
