"""Result exports and the command line's small pure helpers, without a process."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
import redis

from lazcancel.cli import embedded_redis, is_loopback, redact_url, seed_scenario
from lazcancel.embedded_redis import RedisServer
from lazcancel.models import ItemResult, Outcome
from lazcancel.orders_file import OrderRow, read_orders
from lazcancel.report import RESULT_FIELDS, csv_cell, write_results

RESULTS = [
    ItemResult(
        order_id="1381129206325020",
        order_item_id="1381129206425020",
        outcome=Outcome.CANCELLED,
        sku='=HYPERLINK("x")',
        status="pending",
        message="Ðơn hàng đã hủy",
        request_id="2101b8f317",
        attempts=1,
        updated_at="2026-01-02T03:04:05Z",
    ),
    ItemResult(
        order_id="282346141643186",
        order_item_id=None,
        outcome=Outcome.SKIPPED,
        code="order_not_found",
        message="-1 is not an order",
    ),
]


async def stream(results: Iterable[ItemResult]) -> AsyncIterator[ItemResult]:
    for result in results:
        yield result


async def export(fmt: str, results: Iterable[ItemResult] = RESULTS) -> str:
    out = io.StringIO(newline="")
    count = await write_results(stream(results), out, fmt=fmt, batch_id="B1", seller="shop")
    assert count == len(list(results))
    return out.getvalue()


async def test_csv_keeps_ids_as_text_and_parses_back() -> None:
    text = await export("csv")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))

    assert text.startswith(",".join(RESULT_FIELDS) + "\r\n")
    assert [r["order_id"] for r in rows] == ["\t1381129206325020", "\t282346141643186"]
    assert [int(r["order_id"]) for r in rows] == [1381129206325020, 282346141643186]
    assert rows[0]["order_item_id"].strip() == "1381129206425020"
    assert rows[1]["order_item_id"] == ""
    assert rows[0]["message"] == "Ðơn hàng đã hủy"
    assert {(r["batch_id"], r["seller"]) for r in rows} == {("B1", "shop")}


async def test_csv_defuses_cells_a_spreadsheet_would_run_as_formulas() -> None:
    rows = list(csv.DictReader(io.StringIO(await export("csv"), newline="")))

    assert rows[0]["sku"] == '\'=HYPERLINK("x")'
    assert rows[1]["message"] == "'-1 is not an order"
    assert csv_cell("attempts", 3) == "3" and csv_cell("code", None) == ""


async def test_json_is_one_array_with_fields_in_order_and_nulls() -> None:
    records = json.loads(await export("json"))

    assert [list(r) for r in records] == [list(RESULT_FIELDS)] * 2
    assert records[0]["sku"] == '=HYPERLINK("x")'
    assert records[1]["order_item_id"] is None and records[1]["updated_at"] is None
    assert json.loads(await export("json", [])) == []


async def test_jsonl_is_one_object_per_line() -> None:
    lines = (await export("jsonl")).splitlines()

    assert [json.loads(line)["order_id"] for line in lines] == [
        "1381129206325020",
        "282346141643186",
    ]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/0"),
        ("redis://:s3cret@127.0.0.1:6390/0", "redis://:***@127.0.0.1:6390/0"),
        ("rediss://app:s3cret@cache.local/1", "rediss://app:***@cache.local/1"),
        ("unix:///tmp/x/redis.sock", "unix:///tmp/x/redis.sock"),
    ],
)
def test_redis_urls_in_messages_hide_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_sandbox_seeded_from_a_file_holds_its_orders_items_and_skus(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,order_item_id,sku\n"
        "1381129206325020,1381129206425020,\n"
        "1381129206325020,,BLUE-1\n"
        "not-an-id,,\n"
        "282346141643186,,\n",
        encoding="utf-8",
    )
    scenario = seed_scenario(path, "o.csv", skus=["RED-9"])

    orders = {o.order_id: o for o in scenario.orders}
    assert set(orders) == {"1381129206325020", "282346141643186"}
    item_ids = {i.order_item_id for i in orders["1381129206325020"].items}
    assert "1381129206425020" in item_ids
    skus = {i.sku for o in scenario.orders for i in o.items}
    assert skus <= {"RED-9", "BLUE-1"}


def test_embedded_redis_is_shared_and_stopped_by_the_last_user() -> None:
    with tempfile.TemporaryDirectory(prefix="lzc-") as tmp:
        home = Path(tmp)
        probe = RedisServer(data_dir=home / "redis")
        first = embedded_redis(home)
        second = embedded_redis(home)
        url = first.__enter__()
        assert second.__enter__() == url and probe.answering()

        first.__exit__(None, None, None)
        assert probe.answering(), "stopped while another command still used it"
        second.__exit__(None, None, None)
        assert not probe.answering()


def test_embedded_redis_keeps_its_data_between_commands() -> None:
    with tempfile.TemporaryDirectory(prefix="lzc-") as tmp:
        home = Path(tmp)
        with embedded_redis(home) as url:
            client = redis.Redis.from_url(url)
            client.set("kept", "yes")
            client.close()
        with embedded_redis(home) as url:
            client = redis.Redis.from_url(url)
            assert client.get("kept") == b"yes"
            client.close()


async def test_a_results_csv_reads_back_as_an_order_file(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text(await export("csv"), encoding="utf-8-sig", newline="")

    rows = list(read_orders(path))

    assert [(r.order_id, r.order_item_id) for r in rows if isinstance(r, OrderRow)] == [
        ("1381129206325020", "1381129206425020"),
        ("282346141643186", None),
    ]
