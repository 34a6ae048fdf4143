"""Plain data of the imitated store: sellers, orders, items and cancel reasons.

Ids are digit strings everywhere in here; turning them into JSON numbers is the job of the
payload builders. Times are seconds since the epoch, shown in the country's offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

COUNTRY_UTC_OFFSET_H = {"SG": 8, "MY": 8, "PH": 8, "TH": 7, "VN": 7, "ID": 7}
CURRENCY = {"SG": "SGD", "MY": "MYR", "PH": "PHP", "TH": "THB", "VN": "VND", "ID": "IDR"}

# Reasons whose use sets the SKU's stock to 0 (§18), matched on the lower-cased name.
_STOCK_ZERO_WORDS = ("out of stock", "wrong price", "pricing error")


def country_tz(country: str) -> timezone:
    return timezone(timedelta(hours=COUNTRY_UTC_OFFSET_H.get(country.upper(), 8)))


def format_time(epoch_s: float, country: str) -> str:
    """``2018-02-09T22:44:30+08:00``: the form order payloads use."""
    return datetime.fromtimestamp(int(epoch_s), country_tz(country)).isoformat()


def parse_time(value: str | float | int) -> float:
    """Epoch seconds from a number, ISO text or the ``2014-10-15 18:36:05 +0800`` form."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = datetime.strptime(text.replace(" +", "+").replace(" -", "-"), "%Y-%m-%d %H:%M:%S%z")
    if when.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return when.timestamp()


@dataclass
class ReasonOption:
    """One cancel reason offered by validate; ``stock_zero`` says whether it empties the SKU."""

    reason_id: str
    reason_name: str
    stock_zero: bool | None = None

    def sets_stock_zero(self) -> bool:
        if self.stock_zero is not None:
            return self.stock_zero
        name = self.reason_name.lower()
        return any(word in name for word in _STOCK_ZERO_WORDS)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason_id": self.reason_id, "reason_name": self.reason_name}
        if self.stock_zero is not None:
            out["stock_zero"] = self.stock_zero
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReasonOption:
        stock_zero = d.get("stock_zero")
        return cls(
            reason_id=str(d["reason_id"]),
            reason_name=str(d["reason_name"]),
            stock_zero=None if stock_zero is None else bool(stock_zero),
        )


@dataclass
class Seller:
    """A store authorised for the app; one access token and one refresh token at a time."""

    name: str
    access_token: str
    refresh_token: str
    country: str = "SG"
    seller_id: str = "1000000001"
    user_id: str = "2000000001"
    short_code: str = "SG1ABCDE"
    account: str = "seller@example.com"
    access_expires_in: int = 7 * 86400
    refresh_expires_in: int = 30 * 86400

    def to_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "country": self.country,
            "seller_id": self.seller_id,
            "user_id": self.user_id,
            "short_code": self.short_code,
            "account": self.account,
            "access_expires_in": self.access_expires_in,
            "refresh_expires_in": self.refresh_expires_in,
        }

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> Seller:
        return cls(
            name=name,
            access_token=str(d["access_token"]),
            refresh_token=str(d.get("refresh_token", f"refresh-{name}")),
            country=str(d.get("country", "SG")).upper(),
            seller_id=str(d.get("seller_id", "1000000001")),
            user_id=str(d.get("user_id", "2000000001")),
            short_code=str(d.get("short_code", "SG1ABCDE")),
            account=str(d.get("account", f"{name}@example.com")),
            access_expires_in=int(d.get("access_expires_in", 7 * 86400)),
            refresh_expires_in=int(d.get("refresh_expires_in", 30 * 86400)),
        )


@dataclass
class Item:
    """One unit of an order. Also readable as a mapping (``item["status"]``)."""

    order_item_id: str
    order_id: str
    status: str
    sku: str
    shop_sku: str
    name: str
    paid_price: float
    item_price: float
    product_id: str
    sku_id: str
    package_id: str = ""
    variation: str = ""
    shipping_type: str = "Dropshipping"
    shipment_provider: str = ""
    tracking_code: str = ""
    cancel_return_initiator: str = ""
    reason: str = ""
    reason_detail: str = ""
    return_status: str = ""
    reverse_order_id: str = ""
    biz_group: int = 70100
    is_fbl: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key in self.extra:
            return self.extra[key]
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def clone(self) -> Item:
        return replace(self, extra=dict(self.extra))

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k not in ("extra", "order_id")}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, order_id: str, d: dict[str, Any]) -> Item:
        known = set(cls.__dataclass_fields__) - {"extra", "order_id"}
        values: dict[str, Any] = {k: d[k] for k in known if k in d}
        values["order_item_id"] = d["order_item_id"]
        for key in ("order_item_id", "product_id", "sku_id", "package_id", "reverse_order_id"):
            if key in values:
                values[key] = str(values[key])
        for key in ("created_at", "updated_at"):
            if key in values:
                values[key] = parse_time(values[key])
        values.setdefault("sku", "SKU-1")
        values.setdefault("shop_sku", f"{values['sku']}-SHOP")
        values.setdefault("name", f"Product {values['sku']}")
        values.setdefault("paid_price", 10.0)
        values.setdefault("item_price", values["paid_price"])
        values.setdefault("product_id", "1000000000")
        values.setdefault("sku_id", "2000000000")
        values.setdefault("status", "pending")
        extra = {k: v for k, v in d.items() if k not in known and k != "order_id"}
        return cls(order_id=order_id, extra=extra, **values)


@dataclass
class Order:
    """An order of one seller; its only status is the set of its items' statuses."""

    seller: str
    order_id: str
    order_number: str
    country: str
    created_at: float
    updated_at: float
    items: list[Item]
    reason_options: list[ReasonOption] | None = None
    payment_method: str = "COD"
    customer_first_name: str = "Buyer"
    customer_last_name: str = ""
    shipping_fee: float = 0.0
    voucher: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def clone(self) -> Order:
        """A copy whose items can change without touching this order."""
        return replace(
            self,
            items=[item.clone() for item in self.items],
            extra=dict(self.extra),
        )

    @property
    def statuses(self) -> list[str]:
        return sorted({item.status for item in self.items})

    @property
    def price(self) -> float:
        return round(sum(item.item_price for item in self.items), 2)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seller": self.seller,
            "order_id": self.order_id,
            "order_number": self.order_number,
            "country": self.country,
            "created_at": format_time(self.created_at, self.country),
            "updated_at": format_time(self.updated_at, self.country),
            "payment_method": self.payment_method,
            "customer_first_name": self.customer_first_name,
            "customer_last_name": self.customer_last_name,
            "shipping_fee": self.shipping_fee,
            "voucher": self.voucher,
            "items": [self._item_dict(item) for item in self.items],
        }
        if self.reason_options is not None:
            out["reason_options"] = [r.to_dict() for r in self.reason_options]
        out.update(self.extra)
        return out

    def _item_dict(self, item: Item) -> dict[str, Any]:
        out = item.to_dict()
        out["created_at"] = format_time(item.created_at, self.country)
        out["updated_at"] = format_time(item.updated_at, self.country)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, default_seller: str, default_country: str) -> Order:
        order_id = str(d["order_id"])
        created = parse_time(d.get("created_at", 0))
        items = [Item.from_dict(order_id, raw) for raw in d.get("items", [])]
        for item in items:
            item.created_at = item.created_at or created
            item.updated_at = item.updated_at or parse_time(d.get("updated_at", created))
        reasons = d.get("reason_options")
        known = set(cls.__dataclass_fields__) | {"items", "reason_options"}
        return cls(
            seller=str(d.get("seller", default_seller)),
            order_id=order_id,
            order_number=str(d.get("order_number", order_id)),
            country=str(d.get("country", default_country)).upper(),
            created_at=created,
            updated_at=parse_time(d.get("updated_at", created)),
            items=items,
            reason_options=None
            if reasons is None
            else [ReasonOption.from_dict(r) for r in reasons],
            payment_method=str(d.get("payment_method", "COD")),
            customer_first_name=str(d.get("customer_first_name", "Buyer")),
            customer_last_name=str(d.get("customer_last_name", "")),
            shipping_fee=float(d.get("shipping_fee", 0.0)),
            voucher=float(d.get("voucher", 0.0)),
            extra={k: v for k, v in d.items() if k not in known},
        )
