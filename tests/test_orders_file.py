"""The order file reader: encodings, separators, headers, id checks, streaming, fuzzing."""

from __future__ import annotations

import codecs
import importlib.util
import io
import re
import sys
import tracemalloc
from pathlib import Path
from types import ModuleType, SimpleNamespace

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazcancel.errors import InputError
from lazcancel.orders_file import (
    MAX_LINE_CHARS,
    OrderRow,
    OrdersFileError,
    RejectedRow,
    read_orders,
)

ORDER = "1381129206325020"
ORDER2 = "711433089564242"
ITEM = "1381129206425020"


def read(data: bytes, name: str = "orders.csv") -> list[OrderRow | RejectedRow]:
    return list(read_orders(io.BytesIO(data), name=name))


def ids(rows: list[OrderRow | RejectedRow]) -> list[str]:
    assert all(isinstance(row, OrderRow) for row in rows), rows
    return [row.order_id for row in rows if isinstance(row, OrderRow)]


def rejected(rows: list[OrderRow | RejectedRow]) -> list[RejectedRow]:
    return [row for row in rows if isinstance(row, RejectedRow)]


# Header variants


@pytest.mark.parametrize(
    "name",
    ["order_id", "Order Number", "orderNumber", "order id", "ORDER_NO", "Order-Id", " OrderID "],
)
def test_order_id_header_variants_are_recognised(name: str) -> None:
    rows = read(f"{name},Status\n{ORDER},pending\n".encode())

    assert rows == [OrderRow(2, ORDER)]


@pytest.mark.parametrize("name", ["order_item_id", "Order Item Id", "orderItemId"])
def test_item_column_limits_a_row_to_one_item(name: str) -> None:
    rows = read(f"order_id,{name}\n{ORDER},{ITEM}\n{ORDER2},\n".encode())

    assert rows == [OrderRow(2, ORDER, ITEM), OrderRow(3, ORDER2, None)]


@pytest.mark.parametrize("name", ["sku", "Seller SKU", "sellerSku", "seller_sku"])
def test_sku_column_is_stripped_free_text_and_empty_means_none(name: str) -> None:
    rows = read(f"Order Number;{name}\n{ORDER};  Tee-Red M \n{ORDER2};\n".encode())

    assert rows == [OrderRow(2, ORDER, None, "Tee-Red M"), OrderRow(3, ORDER2, None, None)]


def test_seller_center_export_with_unrelated_columns_and_any_column_order() -> None:
    data = (
        "Status,Seller SKU,Lazada SKU,Order Item Id,Order Number,Created at\n"
        f"pending,SKU-1,123_SG-456,{ITEM},{ORDER},2024-05-01 10:00\n"
        f"pending,,123_SG-457,,{ORDER2},2024-05-01 10:01\n"
    ).encode()

    assert read(data) == [OrderRow(2, ORDER, ITEM, "SKU-1"), OrderRow(3, ORDER2)]


def test_without_header_the_first_column_is_the_order_id() -> None:
    rows = read(f"{ORDER},{ITEM},whatever\n{ORDER2}\n".encode())

    assert rows == [OrderRow(1, ORDER), OrderRow(2, ORDER2)]


def test_header_without_order_id_column_is_a_file_error_naming_the_columns() -> None:
    with pytest.raises(OrdersFileError) as caught:
        read(f"Seller SKU,Status,Created at\nA,pending,{ORDER}\n".encode(), name="mine.csv")

    assert str(caught.value) == (
        "mine.csv: no order id column; found columns: 'Seller SKU', 'Status', 'Created at'"
    )
    assert isinstance(caught.value, InputError)


def test_two_order_id_columns_are_ambiguous() -> None:
    with pytest.raises(OrdersFileError, match=r"several order columns \('order_id', 'Order Nu"):
        read(f"order_id,Order Number\n{ORDER},{ORDER}\n".encode())


def test_unrecognised_first_row_is_rejected_as_line_1_and_the_rest_is_read() -> None:
    rows = read(f"Status,Created\n{ORDER},x\n".encode())

    assert rows[1] == OrderRow(2, ORDER)
    (bad,) = rejected(rows)
    assert bad.line == 1
    assert bad.raw == "Status,Created"
    assert "nor a header naming an order id column" in bad.reason


def test_a_repeated_header_row_is_skipped() -> None:
    data = f"order_id,sku\n{ORDER},A\nOrder_ID,SKU\n{ORDER2},B\n".encode()

    assert read(data) == [OrderRow(2, ORDER, None, "A"), OrderRow(4, ORDER2, None, "B")]


# Encodings


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-16-le", b""),
        ("utf-16-be", b""),
    ],
)
def test_encodings_with_and_without_bom(encoding: str, bom: bytes) -> None:
    text = f"Order Number\tSeller SKU\r\n{ORDER}\tร้านค้า-1\r\n{ORDER2}\t\r\n"

    rows = read(bom + text.encode(encoding))

    assert rows == [OrderRow(2, ORDER, None, "ร้านค้า-1"), OrderRow(3, ORDER2)]


def test_utf16_le_with_bom_as_spreadsheets_write_unicode_text() -> None:
    data = b"\xff\xfe" + f"orderNumber\n{ORDER}\n".encode("utf-16-le")

    assert read(data) == [OrderRow(2, ORDER)]


def test_undecodable_bytes_reject_only_their_line() -> None:
    data = b"order_id,sku\n" + ORDER.encode() + b",caf\xe9\n" + ORDER2.encode() + b",ok\n"

    rows = read(data)

    assert rows[1] == OrderRow(3, ORDER2, None, "ok")
    (bad,) = rejected(rows)
    assert (bad.line, bad.reason) == (2, "undecodable bytes (save the file as UTF-8)")
    assert bad.raw == f"{ORDER},caf\ufffd"


def test_truncated_utf16_gives_a_line_error_not_a_crash() -> None:
    data = b"\xff\xfe" + f"{ORDER}\n{ORDER2}\n".encode("utf-16-le") + b"7"

    rows = read(data)

    assert rows[:2] == [OrderRow(1, ORDER), OrderRow(2, ORDER2)]
    assert [(row.line, row.reason) for row in rejected(rows)] == [
        (3, "undecodable bytes (save the file as UTF-8)")
    ]


# Separators, line endings, blank rows


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_separator_is_sniffed(sep: str) -> None:
    data = f"order_id{sep}sku\n{ORDER}{sep}X\n{ORDER2}{sep}Y\n"

    assert read(data.encode()) == [OrderRow(2, ORDER, None, "X"), OrderRow(3, ORDER2, None, "Y")]


def test_semicolon_file_with_commas_inside_cells() -> None:
    data = f"Order Number;Seller SKU\n{ORDER};Tee, red\n{ORDER2};Cap, blue\n".encode()

    assert read(data) == [
        OrderRow(2, ORDER, None, "Tee, red"),
        OrderRow(3, ORDER2, None, "Cap, blue"),
    ]


def test_excel_sep_line_declares_the_separator() -> None:
    data = f"sep=|\norder_id|sku\n{ORDER}|A;B,C\n".encode()

    assert read(data) == [OrderRow(3, ORDER, None, "A;B,C")]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings(newline: str) -> None:
    data = newline.join(["order_id", ORDER, ORDER2, "", ""]).encode()

    assert read(data) == [OrderRow(2, ORDER), OrderRow(3, ORDER2)]


def test_mixed_line_endings_and_no_final_newline() -> None:
    data = f"{ORDER}\r\n{ORDER2}\r123\n456".encode()

    assert ids(read(data)) == [ORDER, ORDER2, "123", "456"]


def test_blank_and_trailing_empty_rows_are_skipped_and_lines_keep_counting() -> None:
    data = f"\n  \norder_id,sku\n\n{ORDER},A\n,,\n \t \n{ORDER2},\n,\n, ,\n\n".encode()

    assert read(data) == [OrderRow(5, ORDER, None, "A"), OrderRow(8, ORDER2)]


def test_trailing_separator_rows_as_spreadsheets_write_them() -> None:
    data = f"Order Number,Seller SKU,Status\n{ORDER},,pending\n,,\n,,\n".encode()

    assert read(data) == [OrderRow(2, ORDER)]


# Cleaning of cells


@pytest.mark.parametrize(
    "cell",
    [
        ORDER,
        f"'{ORDER}",
        f"  {ORDER}  ",
        f"\t'{ORDER} ",
        f'"{ORDER}"',
        f'" {ORDER} "',
        f'"\'{ORDER}"',
        f"'{ORDER}'",
        f'="{ORDER}"',
        f"\u00a0{ORDER}\u00a0",
    ],
)
def test_apostrophes_spaces_and_quotes_are_stripped(cell: str) -> None:
    assert read(f"order_id,x\n{cell},y\n".encode()) == [OrderRow(2, ORDER)]


def test_quoted_cells_with_separators_and_doubled_quotes() -> None:
    data = f'order_id,sku\n"{ORDER}","Tee ""Max"", red"\n'.encode()

    assert read(data) == [OrderRow(2, ORDER, None, 'Tee "Max", red')]


def test_quoted_cell_spanning_lines_under_a_header_is_one_row() -> None:
    data = f'order_id,name,sku\n{ORDER},"Tee\nred",A\n{ORDER2},x,B\n'.encode()

    assert read(data) == [OrderRow(2, ORDER, None, "A"), OrderRow(4, ORDER2, None, "B")]


def test_unterminated_quote_rejects_its_line_and_the_next_lines_are_read_again() -> None:
    data = f'order_id,name,sku\n{ORDER},"Tee,A\n{ORDER2},x,B\n123,y,C\n'.encode()

    rows = read(data)

    assert rows[1:] == [OrderRow(3, ORDER2, None, "B"), OrderRow(4, "123", None, "C")]
    assert rows[0] == RejectedRow(2, f'{ORDER},"Tee,A', "unterminated quoted cell", "orders.csv")


def test_unterminated_quote_without_header_never_swallows_lines() -> None:
    rows = read(f'"{ORDER}\n{ORDER2}\n'.encode())

    assert [(row.line, type(row).__name__) for row in rows] == [(1, "RejectedRow"), (2, "OrderRow")]


# Rejections: never altered into another id


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("2.82346E+14", "order id in scientific notation (digits lost; format the column as text)"),
        ("1.38113E15", "order id in scientific notation (digits lost; format the column as text)"),
        ("282346141643186.0", "order id is a decimal number (format the column as text)"),
        ("abc123", "order id is not a digit string (0-9)"),
        ("-282346141643186", "order id is not a digit string (0-9)"),
        ("\uff11\uff13\uff18\uff11\uff11\uff12", "order id is not a digit string (0-9)"),
        ("١٢٣", "order id is not a digit string (0-9)"),
        ("28234614 1643186", "order id is not a digit string (0-9)"),
        ("1" * 21, "order id longer than 20 digits"),
        ('"123', "unterminated quoted cell"),
        ("", "missing order id"),
    ],
)
def test_bad_order_ids_are_rejected_with_line_and_raw_text(cell: str, reason: str) -> None:
    data = f"Order Number;Seller SKU\n{ORDER};A\n{cell};B\n".encode()

    rows = read(data, name="shop.csv")

    assert rows[0] == OrderRow(2, ORDER, None, "A")
    assert rows[1] == RejectedRow(3, f"{cell};B", reason, "shop.csv")
    assert str(rows[1]) == f"shop.csv:3: {reason}: {cell + ';B'!r}"


def test_first_row_with_a_bad_id_and_no_header_names_line_1() -> None:
    rows = read(f"2.82346E+14\n{ORDER}\n".encode(), name="ids.txt")

    assert str(rows[0]) == (
        "ids.txt:1: order id in scientific notation (digits lost; format the column as text): "
        "'2.82346E+14'"
    )
    assert rows[1] == OrderRow(2, ORDER)


@pytest.mark.parametrize("cell", ["1.38113E15", "1381129206425020.0", "x1", "-1"])
def test_bad_item_ids_are_rejected(cell: str) -> None:
    rows = read(f"order_id,order_item_id\n{ORDER},{cell}\n".encode())

    (bad,) = rejected(rows)
    assert bad.line == 2
    assert bad.reason.startswith("order item id ")


def test_thousands_separators_without_header_do_not_become_a_short_id() -> None:
    rows = read(f"1,381,129,206,325,020\n{ORDER}\n".encode())

    assert rows[0] == RejectedRow(
        1, "1,381,129,206,325,020", "order id split by thousands separators", "orders.csv"
    )
    assert rows[1] == OrderRow(2, ORDER)


def test_row_wider_than_the_header_is_rejected() -> None:
    data = f"order_id,sku\n{ORDER},Tee,red\n{ORDER2},Cap,,\n".encode()

    rows = read(data)

    assert rows[0] == RejectedRow(
        2, f"{ORDER},Tee,red", "3 cells but the header has 2 columns", "orders.csv"
    )
    assert rows[1] == OrderRow(3, ORDER2, None, "Cap")


def test_overlong_line_is_rejected_and_reading_goes_on() -> None:
    data = b"order_id,note\n" + ORDER.encode() + b"," + b"x" * MAX_LINE_CHARS * 2 + b"\n2\n"

    rows = read(data)

    assert rows[0].line == 2
    assert isinstance(rows[0], RejectedRow)
    assert len(rows[0].raw) == 200
    assert rows[1] == OrderRow(3, "2")


def test_rows_are_not_deduplicated() -> None:
    assert ids(read(f"{ORDER}\n{ORDER}\n'{ORDER}\n".encode())) == [ORDER] * 3


# Whole-file problems


def test_missing_file_raises_at_the_call(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"

    with pytest.raises(OrdersFileError, match=r"nope\.csv: no such file"):
        read_orders(missing)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OrdersFileError, match="is a directory"):
        read_orders(str(tmp_path))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "f.csv: empty file (no rows)"),
        (b"\r\n  \n\t\n", "f.csv: empty file (no rows)"),
        (b",,,\n,,\n", "f.csv: empty file (no rows)"),
        (b"\xef\xbb\xbf", "f.csv: empty file (no rows)"),
        (b"Order Number,Status\n\n", "f.csv: no order rows below the header"),
        (b"PK\x03\x04\x14\x00\x06\x00", "f.csv: an Excel .xlsx (zip) file; save the sheet as CSV"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1", "f.csv: an Excel .xls file; save the sheet as CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "f.csv: binary content (NUL bytes), not a CSV"),
    ],
)
def test_whole_file_problems(data: bytes, message: str) -> None:
    with pytest.raises(OrdersFileError) as caught:
        read(data, name="f.csv")

    assert str(caught.value).startswith(message)


# Sources: paths, stdin, streams


def test_path_and_str_sources_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(f"order_id\n{ORDER}\nnope\n".encode())

    for source in (path, str(path)):
        rows = list(read_orders(source))
        assert rows[0] == OrderRow(2, ORDER)
        assert str(rows[1]).startswith(f"{path}:3: ")


def test_dash_reads_binary_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.BytesIO(b"\xff\xfe" + f"orderNumber\n{ORDER}\nx\n".encode("utf-16-le"))
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=stdin))

    rows = list(read_orders("-"))

    assert rows[0] == OrderRow(2, ORDER)
    assert str(rows[1]).startswith("<stdin>:3: ")


def test_binary_stream_is_read_in_small_pieces_and_left_open() -> None:
    class Trickle(io.RawIOBase):
        """A pipe-like stream that hands out at most 3 bytes per read."""

        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            chunk = self._data.read(min(3, len(buffer)))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    stream = Trickle(f"\ufefforder_id;sku\r\n{ORDER};A\r\n{ORDER2};B\r\n".encode())

    rows = list(read_orders(stream))  # type: ignore[arg-type]

    assert rows == [OrderRow(2, ORDER, None, "A"), OrderRow(3, ORDER2, None, "B")]
    assert not stream.closed


# Streaming


def _write_rows(path: Path, count: int) -> None:
    base = int(ORDER)
    with path.open("w") as out:
        out.write("Order Number,Order Item Id,Seller SKU\n")
        for start in range(0, count, 100_000):
            stop = min(count, start + 100_000)
            out.write("".join(f"{base + n},,SKU-{n % 7}\n" for n in range(start, stop)))


def test_million_rows_stream_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    _write_rows(path, 1_000_000)
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline

    count = 0
    last = ""
    for row in read_orders(path):
        assert isinstance(row, OrderRow)
        count += 1
        last = row.order_id
        if count % 50_000 == 0:
            peak = max(peak, process.memory_info().rss)

    assert count == 1_000_000
    assert last == str(int(ORDER) + 999_999)
    # Holding a million rows would take well over 100 MB.
    assert peak - baseline < 20 * 2**20


def test_reader_allocations_do_not_grow_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mid.csv"
    _write_rows(path, 50_000)
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_orders(path))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == 50_000
    assert peak < 512 * 2**10


# The example file


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _make_examples(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module runs.
    monkeypatch.setitem(sys.modules, "make_examples", module)
    spec.loader.exec_module(module)
    return module


def test_example_file_is_what_its_generator_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    committed = (EXAMPLES / "orders.csv").read_text(encoding="utf-8")

    assert _make_examples(monkeypatch).render() == committed


def test_example_file_reads_as_valid_seller_center_rows() -> None:
    rows = list(read_orders(EXAMPLES / "orders.csv"))

    orders = [row for row in rows if isinstance(row, OrderRow)]
    assert len(orders) == len(rows) > 2000
    assert len({row.order_id for row in orders}) == 2000
    assert {len(row.order_id) for row in orders} == {15, 16}
    named = [row for row in orders if row.order_item_id]
    assert 100 < len(named) < 500
    assert all(row.order_item_id[-5:] == row.order_id[-5:] for row in named)  # type: ignore[index]
    assert 50 < sum(row.sku is not None for row in orders) < 300
    assert len({(row.order_id, row.order_item_id, row.sku) for row in orders}) < len(orders)


# Properties


_DIGITS = re.compile(r"[0-9]{1,20}")
_TOKENS = st.sampled_from(
    [
        ORDER,
        "123",
        "0",
        "1e5",
        "2.5",
        ",",
        ";",
        "\t",
        "\n",
        "\r",
        "\r\n",
        '"',
        "'",
        " ",
        "=",
        "order_id",
        "Order Item Id",
        "sku",
        "sep=",
        "\x00",
        "\xff",
        "\ufeff",
        "é",
        "\uff11",
        "-",
    ]
)


def _encoded(tokens: list[str], encoding: str) -> bytes:
    return "".join(tokens).encode(encoding, errors="replace")


_TOKEN_FILES = st.builds(
    _encoded,
    st.lists(_TOKENS, max_size=40),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "latin-1"]),
)


def _check_any_input(data: bytes) -> None:
    try:
        rows = list(read_orders(io.BytesIO(data), name="fuzz"))
    except OrdersFileError as error:
        assert str(error).startswith("fuzz: ")
        return
    for row in rows:
        if isinstance(row, RejectedRow):
            assert row.line >= 1 and row.reason and len(row.raw) <= 200
            continue
        for value in (row.order_id, row.order_item_id):
            if value is None:
                continue
            assert _DIGITS.fullmatch(value)
            assert any(value.encode(enc) in data for enc in ("ascii", "utf-16-le", "utf-16-be"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | _TOKEN_FILES)
def test_any_bytes_yield_only_verbatim_digit_ids_or_rejections(data: bytes) -> None:
    _check_any_input(data)


@settings(max_examples=150, deadline=None)
@given(
    order_ids=st.lists(st.from_regex(r"[1-9][0-9]{0,15}", fullmatch=True), min_size=1, max_size=20),
    sep=st.sampled_from([",", ";", "\t"]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"]),
    header=st.booleans(),
)
def test_valid_files_round_trip_exactly(
    order_ids: list[str], sep: str, newline: str, encoding: str, header: bool
) -> None:
    lines = [f"Order Number{sep}Seller SKU"] if header else []
    lines += [f"'{order_id}{sep}S{n}" for n, order_id in enumerate(order_ids)]
    data = (newline.join(lines) + newline).encode(encoding)

    rows = read(data)

    first = 2 if header else 1
    expected_sku = (lambda n: f"S{n}") if header else (lambda n: None)
    assert rows == [
        OrderRow(first + n, order_id, None, expected_sku(n)) for n, order_id in enumerate(order_ids)
    ]


def test_ids_starting_with_zero_are_rejected_not_trimmed() -> None:
    out = read(b"order_id,order_item_id\n0355963963445135,\n355963963445135,0123\n0,\n")
    assert all(isinstance(r, RejectedRow) for r in out)
    assert [r.line for r in out] == [2, 3, 4]  # type: ignore[union-attr]
    assert "order id starts with 0" in out[0].reason  # type: ignore[union-attr]
    assert "starts with 0" in out[1].reason  # type: ignore[union-attr]
