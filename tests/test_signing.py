"""Request signing against the documented vectors (lazada-api.md §5) and the official SDK."""

from __future__ import annotations

import json

import lazop_sdk.base
from hypothesis import given, settings
from hypothesis import strategies as st

from lazcancel.client import sign

SECRET = "4Ln7zVbLmZ3pQ8rT2xY6wK9sD1fH5jA0"
COMMON = {
    "access_token": "50000601c30atpedfgu3LVvik87Ixlsvle3mSoB7701ceb156fPunYZ43GBg",
    "app_key": "123456",
    "timestamp": "1700000000000",
    "sign_method": "sha256",
}
V2_PARAMS = {**COMMON, "order_id": "662834005291234"}


def test_v0_documentation_sample() -> None:
    params = {
        "app_key": "123456",
        "access_token": "test",
        "timestamp": "1517820392000",
        "sign_method": "sha256",
        "order_id": "1234",
    }
    expected = "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A"
    assert sign("helloworld", "/order/get", params) == expected


def test_v1_ascii_with_plus_in_a_date() -> None:
    params = {
        **COMMON,
        "created_after": "2023-11-01T00:00:00+08:00",
        "status": "pending",
        "offset": "0",
        "limit": "100",
        "sort_by": "created_at",
        "sort_direction": "DESC",
    }
    expected = "AD6B7D11EE94C4922D36B442E50B35EE6957A65E08C42D0BD17344C1E972B074"
    assert sign(SECRET, "/orders/get", params) == expected


def test_v2_compact_json_array_of_numbers() -> None:
    params = {**V2_PARAMS, "order_item_id_list": "[662834005391234,662834005491234]"}
    expected = "127EB585BB977B090554CA491829408245B8414BA01CF5559B125D7145A6C74D"
    assert sign(SECRET, "/order/reverse/cancel/validate", params) == expected


def test_v2_list_python_repr_with_space() -> None:
    params = {**V2_PARAMS, "order_item_id_list": "[662834005391234, 662834005491234]"}
    expected = "F5A5E5D69B77B177E29FC960AB523B1559B6AA79B29380F8D088A9CFFB24E207"
    assert sign(SECRET, "/order/reverse/cancel/validate", params) == expected


def test_v2_partner_id_as_the_sdk_sends_it() -> None:
    params = {
        **V2_PARAMS,
        "order_item_id_list": "[662834005391234,662834005491234]",
        "partner_id": "lazop-sdk-python-20181207",
    }
    expected = "D61DD547E8E59347BB71E4182F7A38A4342ACD17FE0E40654B260EBBAF3FA3CB"
    assert sign(SECRET, "/order/reverse/cancel/validate", params) == expected


def test_v2_strings_is_what_lazcancel_sends() -> None:
    ids = json.dumps(["662834005391234", "662834005491234"], separators=(",", ":"))
    assert ids == '["662834005391234","662834005491234"]'
    params = {**V2_PARAMS, "order_item_id_list": ids}
    expected = "952F94E477627BBE15E356D2A6962F7B10CDB13D216C1B87E3104BBD36D3B28D"
    assert sign(SECRET, "/order/reverse/cancel/validate", params) == expected


def test_v3_non_ascii_values_are_signed_as_utf8() -> None:
    params = {
        **V2_PARAMS,
        "order_item_id_list": '["662834005391234"]',
        "reason_id": "10000021",
        "note": "Hết hàng \u2013 สินค้าหมด ✓",
    }
    expected = "ADFB1D2E3D95819DDB1DD45CFDA7E07740F620A0CD79DC3B22FE6C7AB6348196"
    assert sign(SECRET, "/order/reverse/cancel/create", params) == expected


E1_PARAMS = {
    "app_key": "123456",
    "timestamp": "1700000000000",
    "sign_method": "sha256",
    "access_token": "tok",
    "order_id": "662834005291234",
}


def test_e1_empty_value_sdk_rule_keeps_the_key() -> None:
    params = {**E1_PARAMS, "reason_detail": ""}
    expected = "F5F414D5D5227A25506BD108B9EF2370C7BBD4124D6A85951780E232D1E3BB48"
    assert sign(SECRET, "/order/cancel", params) == expected


def test_e1_empty_value_java_rule_drops_the_key() -> None:
    expected = "8E78B3D10F28DFD7C65FD2212414306709753CC0AD7D6535EB2E670D195A7B88"
    assert sign(SECRET, "/order/cancel", E1_PARAMS) == expected


def test_e2_multiple_order_items_doc_spacing() -> None:
    params = {
        "app_key": "12345678",
        "timestamp": "1764727835197",
        "sign_method": "sha256",
        "access_token": "37c66819338b4562e17675b8c5c4dbd0",
        "order_ids": "[42922, 32793]",
    }
    expected = "A196D4D1B23750F8D0BFF8F239F6C243A2062F7A2C76FDE7498D15465516E118"
    assert sign(SECRET, "/orders/items/get", params) == expected


def test_signature_is_uppercase_hex_of_sha256() -> None:
    signature = sign("s", "/order/get", {"a": "b"})
    assert len(signature) == 64
    assert signature == signature.upper()
    int(signature, 16)


KEYS = st.text(alphabet=st.characters(codec="utf-8"), min_size=1)
ID_ARRAYS = st.lists(st.integers(min_value=0, max_value=2**53), max_size=5).map(
    lambda ids: json.dumps([str(i) for i in ids], separators=(",", ":"))
)
VALUES = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8")),
    ID_ARRAYS,
    st.sampled_from(["2023-11-01T00:00:00+08:00", "Hết hàng \u2013 สินค้าหมด ✓", "a b+c&d=e"]),
)


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(min_size=1, max_size=40),
    api=st.sampled_from(["/orders/get", "/order/reverse/cancel/create", "/ứng/dụng"]),
    params=st.dictionaries(KEYS, VALUES, max_size=8),
)
def test_matches_the_official_sdk(secret: str, api: str, params: dict[str, str]) -> None:
    assert sign(secret, api, params) == lazop_sdk.base.sign(secret, api, params)
