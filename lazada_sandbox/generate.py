"""Seeded random stores that look like real Lazada data: id shapes, status mix, packages.

Only makes data; the rules that act on it live in ``state``.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lazada_sandbox.model import CURRENCY, Item, Order, ReasonOption, Seller

_PRODUCTS = (
    "Cotton T-Shirt",
    "Phone Case",
    "Stainless Water Bottle",
    "Wireless Earbuds",
    "Yoga Mat",
    "LED Desk Lamp",
    "Ceramic Mug",
    "Canvas Backpack",
    "USB-C Cable 1m",
    "Face Serum 30ml",
)
_FIRST_NAMES = ("Aisyah", "Wei Ling", "Minh", "Somchai", "Maria", "Budi", "Arjun", "Siti")
_PROVIDERS = ("LEX SG", "Ninja Van", "J&T Express", "Flash Express", "LEX MY")
_DONE_INITIATORS = ("buyer-cancel", "cancellation-customer", "system-cancel")
# The reference example's ids: same names as the country defaults, different ids.
_OVERRIDE_REASONS = (
    ("1000019", "Sourcing Delay"),
    ("1000017", "Out of Stock"),
    ("1000023", "Wrong Price or Pricing Error"),
)
_DAY = 86400.0


@dataclass
class Product:
    sku: str
    shop_sku: str
    name: str
    product_id: str
    sku_id: str
    price: float


@dataclass
class GeneratedStore:
    app_key: str
    app_secret: str
    sellers: dict[str, Seller]
    orders: list[Order]
    stock: dict[str, dict[str, int]]


@dataclass
class _Ids:
    """Every id handed out so far, so generated ids never collide with given ones."""

    used: set[str] = field(default_factory=set)

    def take(self, value: str) -> str:
        self.used.add(value)
        return value


def generate_store(
    *,
    n_orders: int,
    seed: int,
    order_ids: Sequence[str] | None,
    item_ids: Mapping[str, Sequence[str]] | None,
    skus: Sequence[str] | None,
    sellers: Mapping[str, str],
    now: float | None,
) -> GeneratedStore:
    """Build sellers, a product catalogue, orders and stock from one seeded generator."""
    rng = random.Random(seed)
    app_key = str(rng.randint(100000, 999999))
    app_secret = _alnum(rng, 32)
    seller_objs = {name: _seller(rng, name, country) for name, country in sellers.items()}
    catalogue = _catalogue(rng, skus)
    ids = _Ids()
    given = list(dict.fromkeys(order_ids)) if order_ids is not None else None
    for oid in given or ():
        ids.take(oid)
    for named in (item_ids or {}).values():
        for iid in named:
            ids.take(iid)
    orders = _orders(
        rng,
        ids=ids,
        given=given,
        n_orders=n_orders,
        item_ids=item_ids or {},
        catalogue=catalogue,
        sellers=seller_objs,
        now=time.time() if now is None else now,
    )
    stock = {name: {p.sku: rng.randint(5, 300) for p in catalogue} for name in seller_objs}
    return GeneratedStore(app_key, app_secret, seller_objs, orders, stock)


def _alnum(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=n))


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randint(10 ** (n - 1), 10**n - 1))


def _seller(rng: random.Random, name: str, country: str) -> Seller:
    country = country.upper()
    return Seller(
        name=name,
        access_token=_alnum(rng, 60),
        refresh_token=_alnum(rng, 60),
        country=country,
        seller_id=_digits(rng, 10),
        user_id=_digits(rng, 10),
        short_code=f"{country}{_alnum(rng, 6).upper()}",
        account=f"{name}@example.com",
    )


def _catalogue(rng: random.Random, skus: Sequence[str] | None) -> list[Product]:
    names = list(skus) if skus else [f"SKU-{i + 1:03d}" for i in range(8)]
    return [
        Product(
            sku=sku,
            shop_sku=f"{_alnum(rng, 15).upper()}-{_digits(rng, 5)}",
            name=_PRODUCTS[i % len(_PRODUCTS)],
            product_id=_digits(rng, 10),
            sku_id=_digits(rng, 11),
            price=round(rng.uniform(3, 120), 2),
        )
        for i, sku in enumerate(names)
    ]


def _orders(
    rng: random.Random,
    *,
    ids: _Ids,
    given: list[str] | None,
    n_orders: int,
    item_ids: Mapping[str, Sequence[str]],
    catalogue: list[Product],
    sellers: dict[str, Seller],
    now: float,
) -> list[Order]:
    names = list(sellers)
    if given is None:
        given = [_new_order_id(rng, ids) for _ in range(n_orders)]
        owners = [rng.choice(names) for _ in given]
    else:
        # Orders read from a user's file belong to the first (default) seller.
        owners = [names[0]] * len(given)
    named = _claim_items(given, item_ids)
    return [
        _order(
            rng,
            ids=ids,
            order_id=oid,
            named_items=named.get(oid, []),
            catalogue=catalogue,
            seller=sellers[owner],
            now=now,
        )
        for oid, owner in zip(given, owners, strict=True)
    ]


def _claim_items(
    order_ids: list[str], item_ids: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Named item ids per order; an item named under several orders stays with the first."""
    claimed: set[str] = set()
    out: dict[str, list[str]] = {}
    for oid in order_ids:
        mine = [i for i in dict.fromkeys(item_ids.get(oid, ())) if i not in claimed and i != oid]
        claimed.update(mine)
        out[oid] = mine
    return out


def _new_order_id(rng: random.Random, ids: _Ids) -> str:
    while True:
        # 15 or 16 digits; 16-digit ids start with 1 as real ones do, far below 2**53.
        prefix = rng.choice((_digits(rng, 10), _digits(rng, 10), "1" + _digits(rng, 10)))
        candidate = prefix + _digits(rng, 5)
        if candidate not in ids.used:
            return ids.take(candidate)


def _item_ids_for(rng: random.Random, ids: _Ids, order_id: str, count: int) -> list[str]:
    """Item ids that share the order's last 5 digits, with gaps between them (§20)."""
    prefix, suffix = int(order_id[:-5] or "0"), order_id[-5:]
    out: list[str] = []
    while len(out) < count:
        prefix += rng.randint(1, 3)
        candidate = f"{prefix}{suffix}"
        if candidate not in ids.used:
            out.append(ids.take(candidate))
    return out


def _statuses(rng: random.Random) -> tuple[list[str], list[int]]:
    """Item statuses for one order, and package groups (index per item, -1 for none)."""
    roll = rng.random()
    if roll < 0.50:
        n = rng.choice((1, 1, 1, 2, 2, 3, 4))
        return ["pending"] * n, [-1] * n
    if roll < 0.62:
        n = rng.choice((2, 2, 3, 4))
        groups = [0] * n if n < 3 or rng.random() < 0.5 else [0] * (n - 1) + [1]
        return ["packed"] * n, groups
    if roll < 0.70:
        n = rng.choice((1, 2, 3))
        return ["ready_to_ship"] * n, [0] * n
    if roll < 0.88:
        status = rng.choice(("shipping", "delivered", "canceled", "unpaid"))
        n = rng.choice((1, 1, 2))
        return [status] * n, [-1 if status in ("canceled", "unpaid") else 0] * n
    return _mixed(rng)


def _mixed(rng: random.Random) -> tuple[list[str], list[int]]:
    variant = rng.randrange(4)
    if variant == 0:
        return ["pending", "pending", "canceled"], [-1, -1, -1]
    if variant == 1:
        return ["packed", "packed", "pending"], [0, 0, -1]
    if variant == 2:
        return ["delivered", "canceled"], [0, -1]
    return ["ready_to_ship", "shipping"], [0, 1]


def _times(rng: random.Random, now: float) -> tuple[float, float]:
    """Created within the last two weeks, updated up to two days later; whole seconds, as the
    API's date filters and payloads have no finer resolution."""
    created = float(int(now - rng.uniform(0.05, 14) * _DAY))
    return created, float(int(min(now, created + rng.uniform(0, 2) * _DAY)))


def _maybe_own_reasons(rng: random.Random) -> list[ReasonOption] | None:
    """About one order in twenty offers its own reason ids instead of its country's."""
    if rng.random() >= 0.05:
        return None
    return [ReasonOption(rid, name) for rid, name in _OVERRIDE_REASONS]


def _order(
    rng: random.Random,
    *,
    ids: _Ids,
    order_id: str,
    named_items: list[str],
    catalogue: list[Product],
    seller: Seller,
    now: float,
) -> Order:
    statuses, groups = _statuses(rng)
    while len(statuses) < len(named_items):
        statuses.append(statuses[-1])
        groups.append(groups[-1])
    item_ids = named_items + _item_ids_for(rng, ids, order_id, len(statuses) - len(named_items))
    created, updated = _times(rng, now)
    packages = {g: f"FP{_digits(rng, 12)}" for g in set(groups) if g >= 0}
    items = [
        _item(
            rng,
            order_id=order_id,
            item_id=iid,
            status=status,
            package_id=packages.get(group, ""),
            product=rng.choice(catalogue),
            country=seller.country,
            times=(created, updated),
        )
        for iid, status, group in zip(item_ids, statuses, groups, strict=True)
    ]
    return Order(
        seller=seller.name,
        order_id=order_id,
        order_number=order_id,
        country=seller.country,
        created_at=created,
        updated_at=updated,
        items=items,
        reason_options=_maybe_own_reasons(rng),
        payment_method=rng.choice(("COD", "MIXEDCARD", "LAZADA_WALLET")),
        customer_first_name=rng.choice(_FIRST_NAMES),
        shipping_fee=round(rng.choice((0.0, 1.99, 2.49, 3.0)), 2),
    )


def _item(
    rng: random.Random,
    *,
    order_id: str,
    item_id: str,
    status: str,
    package_id: str,
    product: Product,
    country: str,
    times: tuple[float, float],
) -> Item:
    discount = rng.choice((0.0, 0.0, 0.5, 1.0))
    shipped = status in ("shipping", "delivered") or bool(package_id)
    return Item(
        order_item_id=item_id,
        order_id=order_id,
        status=status,
        sku=product.sku,
        shop_sku=product.shop_sku,
        name=product.name,
        paid_price=round(max(product.price - discount, 0.5), 2),
        item_price=product.price,
        product_id=product.product_id,
        sku_id=product.sku_id,
        package_id=package_id,
        shipment_provider=rng.choice(_PROVIDERS) if shipped else "",
        tracking_code=f"{country}{_digits(rng, 12)}" if shipped else "",
        cancel_return_initiator=rng.choice(_DONE_INITIATORS) if status == "canceled" else "",
        reason="Change of mind" if status == "canceled" else "",
        created_at=times[0],
        updated_at=times[1],
        extra={"currency": CURRENCY.get(country, "SGD")},
    )
