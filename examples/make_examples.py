"""Write examples/orders.csv: a Seller Center style order export for demos and the sandbox.

The generator is seeded, so every run writes the same bytes; it writes no sandbox scenario.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20240501
ORDERS = 2000
DUPLICATES = 12
OUTPUT = Path(__file__).with_name("orders.csv")
HEADER = ("Order Number", "Order Item Id", "Seller SKU", "Status", "Created at")
START = datetime(2024, 5, 1, 8, 0, 0)

SKUS = (
    "TEE-WHT-M",
    "TEE-WHT-L",
    "TEE-BLK-M",
    "CAP-NAVY",
    "MUG-350ML",
    "CASE-IP15-CLR",
    "CABLE-USBC-1M",
    "BOTTLE-750-GRN",
)
STATUSES = ("pending",) * 16 + ("packed",) * 2 + ("ready_to_ship", "shipped")


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    item_ids: tuple[str, ...]
    status: str
    created_at: datetime


def make_orders(rng: random.Random) -> list[Order]:
    """Orders in creation order, their ids growing like real ones (15 and 16 digits)."""
    next_ids = [1381129206325020, 711433089564242]
    created = START
    orders: list[Order] = []
    for _ in range(ORDERS):
        series = 0 if rng.random() < 0.8 else 1
        # Steps above 4 items x 3 x 100000 keep every item id below the next order id.
        next_ids[series] += rng.randint(2_000_000, 90_000_000)
        created += timedelta(seconds=rng.randint(5, 600))
        order_id = str(next_ids[series])
        items = item_ids(rng, order_id, rng.choice((1, 1, 1, 2, 2, 3, 4)))
        orders.append(Order(order_id, items, rng.choice(STATUSES), created))
    return orders


def item_ids(rng: random.Random, order_id: str, count: int) -> tuple[str, ...]:
    """Item ids keep the order's last 5 digits; the digits before them grow with gaps."""
    prefix, suffix = int(order_id[:-5]), order_id[-5:]
    out: list[str] = []
    for _ in range(count):
        prefix += rng.randint(1, 3)
        out.append(f"{prefix}{suffix}")
    return tuple(out)


def rows_for(rng: random.Random, order: Order) -> list[list[str]]:
    """Mostly a whole-order row; some rows name items, some restrict to a SKU."""
    created = order.created_at.strftime("%Y-%m-%d %H:%M:%S")
    roll = rng.random()
    if roll < 0.80:
        return [[order.order_id, "", "", order.status, created]]
    if roll < 0.93:
        named = rng.sample(order.item_ids, k=min(len(order.item_ids), 1 if roll < 0.9 else 2))
        return [[order.order_id, item, "", order.status, created] for item in named]
    return [[order.order_id, "", rng.choice(SKUS), order.status, created]]


def make_rows(rng: random.Random) -> list[list[str]]:
    rows = [row for order in make_orders(rng) for row in rows_for(rng, order)]
    # A few repeated rows, as when two exports are pasted together.
    for _ in range(DUPLICATES):
        source = rng.randrange(len(rows) - 1)
        rows.insert(rng.randrange(source + 1, len(rows)), list(rows[source]))
    return rows


def render() -> str:
    """The whole CSV text; the same on every run."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(make_rows(random.Random(SEED)))
    return out.getvalue()


def main() -> None:
    text = render()
    OUTPUT.write_text(text, encoding="utf-8", newline="")
    rows = text.count("\n") - 1
    print(f"wrote {rows} rows to {OUTPUT}")


if __name__ == "__main__":
    main()
