"""Read an order file (CSV or plain text) as a stream of order rows and rejected rows.

It guesses encoding, separator and header, and checks every id; it neither de-duplicates rows
nor talks to Lazada or Redis.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple, TextIO

import structlog

from lazcancel.errors import InputError

MAX_ID_DIGITS = 20
MAX_LINE_CHARS = 65_536
MAX_RECORD_LINES = 32
RAW_LIMIT = 200
HEAD_BYTES = 4096
SNIFF_LINES = 10

_SPACES = " \t\r\n\f\v\u00a0\u3000\ufeff"
_CLEAN_FIRST = frozenset(_SPACES + "'\"=")
_CLEAN_LAST = frozenset(_SPACES + "'\"")
_DELIMITERS = ("\t", ";", ",")
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_ID_DIGITS}}}")
_SCIENTIFIC = re.compile(r"[+-]?[0-9]*\.?[0-9]+[eE][+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?[0-9]+[.,][0-9]*")
_EXCEL_SEP = re.compile(r"sep=(.)", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"]*"')

_ORDER_NAMES = frozenset({"orderid", "ordernumber", "orderno"})
_ITEM_NAMES = frozenset({"orderitemid"})
_SKU_NAMES = frozenset({"sku", "sellersku"})
_NOT_DIGITS = " is not a digit string (0-9)"
_ORDER_HINT = "order_id, order number, orderNumber, order id or order_no"

# Decoding errors become this lone surrogate: neither UTF-8 nor UTF-16 decoding can produce
# one from valid input, so its presence marks a line that held undecodable bytes.
_UNDECODABLE = "\udfff"
_ERRORS = "lazcancel-orders-undecodable"

log = structlog.get_logger(__name__)


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return _UNDECODABLE, error.end


codecs.register_error(_ERRORS, _mark_undecodable)


class OrdersFileError(InputError):
    """The order file as a whole cannot be read; the message names the file."""


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One valid row: an order, optionally narrowed to one item and/or one seller SKU."""

    line: int
    order_id: str
    order_item_id: str | None = None
    sku: str | None = None


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that is not a valid order; ``raw`` is its text as read, cut to 200 characters."""

    line: int
    raw: str
    reason: str
    source: str = "<input>"

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}: {self.raw!r}"


def read_orders(
    source: str | Path | BinaryIO, *, name: str | None = None
) -> Iterator[OrderRow | RejectedRow]:
    """Yield one OrderRow or RejectedRow per non-blank row of ``source``, in file order.

    ``source`` is a path, ``"-"`` for standard input, or a binary stream (left open).
    A missing path raises OrdersFileError here; other whole-file problems (binary content,
    no order id column, no rows) raise it while iterating.
    """
    if source == "-":
        return _read(lambda: nullcontext(sys.stdin.buffer), name or "<stdin>")
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        label = name or str(path)
        _check_path(path, label)
        return _read(lambda: _open_path(path, label), label)
    stream = source
    return _read(lambda: nullcontext(stream), name or _stream_label(stream))


def _check_path(path: Path, label: str) -> None:
    if not path.exists():
        raise OrdersFileError(f"{label}: no such file")
    if path.is_dir():
        raise OrdersFileError(f"{label}: is a directory, not an order file")


def _open_path(path: Path, label: str) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as error:
        raise OrdersFileError(f"{label}: cannot open: {error.strerror or error}") from error


def _stream_label(stream: BinaryIO) -> str:
    stream_name = getattr(stream, "name", None)
    return stream_name if isinstance(stream_name, str) else "<stream>"


def _read(
    open_binary: Callable[[], AbstractContextManager[BinaryIO]], label: str
) -> Iterator[OrderRow | RejectedRow]:
    try:
        with open_binary() as binary:
            yield from _read_stream(binary, label)
    except OSError as error:
        raise OrdersFileError(f"{label}: read failed: {error.strerror or error}") from error


def _read_stream(binary: BinaryIO, label: str) -> Iterator[OrderRow | RejectedRow]:
    head = _read_head(binary)
    encoding, bom_length = _detect_encoding(head, label)
    raw = io.BufferedReader(_PrefixedReader(head[bom_length:], binary))
    with io.TextIOWrapper(raw, encoding=encoding, errors=_ERRORS, newline=None) as text:
        lines = _Lines(text)
        delimiter = _choose_delimiter(lines)
        log.debug("orders_file_format", source=label, encoding=encoding, delimiter=delimiter)
        yield from _rows(_Records(lines, delimiter), label)


def _read_head(binary: BinaryIO) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < HEAD_BYTES:
        part = binary.read(HEAD_BYTES - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _detect_encoding(head: bytes, label: str) -> tuple[str, int]:
    """Return the codec name and BOM length; raise OrdersFileError for non-text content."""
    _refuse_known_binary(head, label)
    if head.startswith(codecs.BOM_UTF8):
        encoding, bom_length = "utf-8", len(codecs.BOM_UTF8)
    elif head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", len(codecs.BOM_UTF16_LE)
    elif head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", len(codecs.BOM_UTF16_BE)
    else:
        encoding, bom_length = _utf16_by_nuls(head) or "utf-8", 0
    if encoding == "utf-8" and b"\x00" in head:
        raise OrdersFileError(f"{label}: binary content (NUL bytes), not a CSV or text file")
    return encoding, bom_length


def _refuse_known_binary(head: bytes, label: str) -> None:
    if head.startswith(b"PK\x03\x04"):
        raise OrdersFileError(f"{label}: an Excel .xlsx (zip) file; save the sheet as CSV")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise OrdersFileError(f"{label}: an Excel .xls file; save the sheet as CSV")


def _utf16_by_nuls(head: bytes) -> str | None:
    """Spot BOM-less UTF-16: ASCII text in it has a NUL in every other byte."""
    pairs = len(head) // 2
    if pairs == 0:
        return None
    nuls_even = head[0 : pairs * 2 : 2].count(0)
    nuls_odd = head[1 : pairs * 2 : 2].count(0)
    if nuls_odd * 4 >= pairs and nuls_even * 8 <= nuls_odd:
        return "utf-16-le"
    if nuls_even * 4 >= pairs and nuls_odd * 8 <= nuls_even:
        return "utf-16-be"
    return None


class _PrefixedReader(io.RawIOBase):
    """A raw stream that replays the already-read head, then reads on from ``rest``."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Line(NamedTuple):
    number: int
    text: str
    too_long: bool = False


class _Lines:
    """Numbered physical lines, each at most MAX_LINE_CHARS long, with push-back."""

    def __init__(self, text: TextIO) -> None:
        self._text = text
        self._number = 0
        self._pending: deque[_Line] = deque()

    def next(self) -> _Line | None:
        if self._pending:
            return self._pending.popleft()
        chunk = self._text.readline(MAX_LINE_CHARS)
        if not chunk:
            return None
        self._number += 1
        if chunk.endswith("\n"):
            return _Line(self._number, chunk[:-1])
        return _Line(self._number, chunk, too_long=self._skip_rest_of_line())

    def push_back(self, lines: Sequence[_Line]) -> None:
        self._pending.extendleft(reversed(lines))

    def _skip_rest_of_line(self) -> bool:
        """Drop the rest of an over-long line; False if the line just ended there."""
        dropped = False
        while chunk := self._text.readline(MAX_LINE_CHARS):
            dropped = dropped or chunk != "\n"
            if chunk.endswith("\n"):
                break
        return dropped


def _choose_delimiter(lines: _Lines) -> str:
    """Honour Excel's ``sep=`` first line, else sniff the first non-blank lines."""
    read: list[_Line] = []
    texts: list[str] = []
    while len(texts) < SNIFF_LINES and (line := lines.next()) is not None:
        read.append(line)
        text = line.text.strip(_SPACES)
        if not text:
            continue
        declared = _EXCEL_SEP.fullmatch(text)
        if not texts and declared and declared.group(1) not in "\"'":
            lines.push_back(read[:-1])
            return declared.group(1)
        texts.append(line.text)
    lines.push_back(read)
    return _sniff(texts)


def _sniff(texts: list[str]) -> str:
    """Pick the separator found in the first line that splits the most lines alike."""
    if not texts:
        return ","
    unquoted = [_QUOTED.sub("", text) for text in texts]
    best, best_score = ",", (0, 0)
    for delimiter in _DELIMITERS:
        counts = [text.count(delimiter) for text in unquoted]
        if counts[0] == 0:
            continue
        score = (sum(count == counts[0] for count in counts), counts[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


class _Record(NamedTuple):
    line: int
    raw: str
    cells: list[str]
    problem: str | None = None


class _Records:
    """CSV records over physical lines; a quoted cell may span lines only under a header."""

    def __init__(self, lines: _Lines, delimiter: str) -> None:
        self._lines = lines
        self.delimiter = delimiter

    def next(self, width: int | None) -> _Record | None:
        """The next non-blank record; ``width`` is the header's column count, if any."""
        line = self._lines.next()
        while line is not None and not line.text.strip(_SPACES):
            line = self._lines.next()
        if line is None:
            return None
        if line.too_long:
            return _Record(line.number, line.text, [], f"line over {MAX_LINE_CHARS} characters")
        if '"' not in line.text:
            return _Record(line.number, line.text, line.text.split(self.delimiter))
        return self._quoted(line, width)

    def _quoted(self, first: _Line, width: int | None) -> _Record:
        try:
            cells, complete = self._parse(first.text)
        except csv.Error as error:
            return _Record(first.number, first.text, [], f"malformed CSV: {error}")
        if complete:
            return _Record(first.number, first.text, cells)
        if width is not None and (record := self._spanning(first, width)) is not None:
            return record
        return _Record(first.number, first.text, [], "unterminated quoted cell")

    def _spanning(self, first: _Line, width: int) -> _Record | None:
        """Join the lines of a quoted cell with line breaks; None (lines put back) if broken."""
        taken = [first]
        while len(taken) < MAX_RECORD_LINES:
            line = self._lines.next()
            if line is None or line.too_long:
                self._lines.push_back([line] if line else [])
                break
            taken.append(line)
            text = "\n".join(part.text for part in taken)
            try:
                cells, complete = self._parse(text)
            except csv.Error:
                break
            if complete and len(cells) == width:
                return _Record(first.number, text, cells)
            if complete:
                break
        self._lines.push_back(taken[1:])
        return None

    def _parse(self, text: str) -> tuple[list[str], bool]:
        """Cells of ``text``, and whether its quotes closed within it."""
        # The empty second line is a probe: csv reads it only if a quoted cell is still open.
        reader = csv.reader(iter((text, "")), delimiter=self.delimiter)
        cells = next(reader, [])
        return cells, reader.line_num == 1


@dataclass(frozen=True, slots=True)
class _Columns:
    order: int = 0
    item: int | None = None
    sku: int | None = None
    header: tuple[str, ...] = ()


def _rows(records: _Records, label: str) -> Iterator[OrderRow | RejectedRow]:
    first = _first_record(records)
    if first is None:
        raise OrdersFileError(f"{label}: empty file (no rows)")
    columns = _header_columns(first, label)
    count = 0
    if columns is None:
        columns = _Columns()
        count += 1
        yield _first_row(first, label)
    width = len(columns.header) or None
    while (record := records.next(width)) is not None:
        row = _row(record, columns, label)
        if row is not None:
            count += 1
            yield row
    if count == 0:
        raise OrdersFileError(f"{label}: no order rows below the header")


def _first_record(records: _Records) -> _Record | None:
    """The first record that is not made of empty cells only."""
    while (record := records.next(None)) is not None:
        if record.problem or _UNDECODABLE in record.raw or any(map(_clean, record.cells)):
            return record
    return None


def _header_columns(record: _Record, label: str) -> _Columns | None:
    """Columns named by ``record`` if it is a header row, else None."""
    if record.problem or not record.cells or _DIGITS.fullmatch(_clean(record.cells[0])):
        return None
    names = [_normalise_name(cell) for cell in record.cells]
    roles = {role: _find(names, role_names) for role, role_names in _ROLES.items()}
    if all(not found for found in roles.values()):
        return None
    if not roles["order"]:
        seen = ", ".join(repr(_clean(cell)) for cell in record.cells)
        raise OrdersFileError(f"{label}: no order id column; found columns: {seen}")
    for role, found in roles.items():
        if len(found) > 1:
            duplicates = ", ".join(repr(_clean(record.cells[index])) for index in found)
            raise OrdersFileError(f"{label}: several {role} columns ({duplicates}); keep one")
    return _Columns(
        order=roles["order"][0],
        item=roles["item"][0] if roles["item"] else None,
        sku=roles["sku"][0] if roles["sku"] else None,
        header=tuple(names),
    )


_ROLES = {"order": _ORDER_NAMES, "item": _ITEM_NAMES, "sku": _SKU_NAMES}


def _find(names: list[str], wanted: frozenset[str]) -> list[int]:
    return [index for index, name in enumerate(names) if name in wanted]


def _normalise_name(cell: str) -> str:
    return re.sub(r"[\s_\-]+", "", _clean(cell)).lower()


def _first_row(record: _Record, label: str) -> OrderRow | RejectedRow:
    """The first row of a file without a header: an order, or a rejected row."""
    row = _row(record, _Columns(), label)
    if isinstance(row, RejectedRow) and row.reason.endswith(_NOT_DIGITS):
        reason = f"{row.reason}, nor a header naming an order id column ({_ORDER_HINT})"
        return _reject(record, reason, label)
    if row is None:
        return _reject(record, "not an order row", label)
    return row


def _row(record: _Record, columns: _Columns, label: str) -> OrderRow | RejectedRow | None:
    """Check one record against the columns; None for a row to skip silently."""
    if record.problem:
        return _reject(record, record.problem, label)
    if _UNDECODABLE in record.raw:
        return _reject(record, "undecodable bytes (save the file as UTF-8)", label)
    cells = record.cells
    width = len(columns.header)
    if width and len(cells) > width and any(map(_clean, cells[width:])):
        extra = f"{len(cells)} cells but the header has {width} columns"
        return _reject(record, extra, label)
    order_id = _clean(_cell(cells, columns.order))
    if not _DIGITS.fullmatch(order_id):
        return _unusable_row(record, order_id, columns, label)
    if problem := _id_problem(order_id, "order id"):
        return _reject(record, problem, label)
    if not width and len(cells) > 1 and (problem := _thousands_problem(cells)):
        return _reject(record, problem, label)
    item_id = _clean(_cell(cells, columns.item))
    if item_id and (problem := _id_problem(item_id, "order item id")):
        return _reject(record, problem, label)
    sku = _cell(cells, columns.sku).strip(_SPACES)
    return OrderRow(record.line, order_id, item_id or None, sku or None)


def _unusable_row(
    record: _Record, order_id: str, columns: _Columns, label: str
) -> RejectedRow | None:
    """A row without a valid order id: skipped if blank or a repeated header, else rejected."""
    cells = [_clean(cell) for cell in record.cells]
    if not any(cells):
        return None
    if columns.header and tuple(map(_normalise_name, cells)) == columns.header:
        return None  # the header repeated, as in exports pasted one below the other
    return _reject(record, _id_problem(order_id, "order id") or "", label)


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


def _clean(cell: str) -> str:
    """Strip spaces, a leading apostrophe, surrounding quotes and an ``="..."`` text formula."""
    if cell and cell[0] not in _CLEAN_FIRST and cell[-1] not in _CLEAN_LAST:
        return cell
    value = cell.strip(_SPACES)
    while True:
        if value.startswith('="') and value.endswith('"') and len(value) >= 3:
            stripped = value[2:-1]
        elif len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            stripped = value[1:-1]
        elif value.startswith("'"):
            stripped = value[1:]
        else:
            return value
        value = stripped.strip(_SPACES)


def _id_problem(value: str, what: str) -> str | None:
    """Why ``value`` is not a valid id, or None; the value itself is never changed."""
    if _DIGITS.fullmatch(value):
        # Lazada ids never start with 0; such a cell is a typo or a reformatted id, and
        # dropping the zero would be changing the id.
        return f"{what} starts with 0, which no Lazada id does" if value[0] == "0" else None
    if not value:
        return f"missing {what}"
    if _SCIENTIFIC.fullmatch(value):
        return f"{what} in scientific notation (digits lost; format the column as text)"
    if _DECIMAL.fullmatch(value):
        return f"{what} is a decimal number (format the column as text)"
    if value.isascii() and value.isdigit():
        return f"{what} longer than {MAX_ID_DIGITS} digits"
    return f"{what}{_NOT_DIGITS}"


def _thousands_problem(cells: list[str]) -> str | None:
    """Without a header, ``1,381,129`` would otherwise read as order 1."""
    if len(cells[0].strip(_SPACES)) > 3:
        return None
    rest = [cell.strip(_SPACES) for cell in cells[1:]]
    if all(len(cell) == 3 and cell.isascii() and cell.isdigit() for cell in rest):
        return "order id split by thousands separators"
    return None


def _reject(record: _Record, reason: str, label: str) -> RejectedRow:
    raw = record.raw.replace(_UNDECODABLE, "\ufffd")[:RAW_LIMIT]
    return RejectedRow(record.line, raw, reason, label)
