"""The sandbox's starting point: credentials, sellers, orders and the gateway's knobs.

A scenario is plain data that round-trips through JSON (``docs/sandbox.md`` describes the
file); the live, mutable copy the server works on lives in ``state``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lazada_sandbox.generate import generate_store
from lazada_sandbox.model import Order, ReasonOption, Seller
from lazada_sandbox.signing import EmptyValueRule

DEFAULT_CANCELLABLE = ["pending", "repacked", "packed", "ready_to_ship_pending", "ready_to_ship"]

_NAMES = ("Sourcing Delay", "Out of Stock", "Wrong Price or Pricing Error")
# Reason ids per country: the names are the same everywhere, the ids are not (§18).
_REASON_IDS = {
    "SG": ("10000019", "10000021", "10000023"),
    "MY": ("10000019", "10000021", "10000023"),
    "PH": ("10000019", "10000021", "10000023"),
    "TH": ("10000119", "10000121", "10000123"),
    "VN": ("10000219", "10000221", "10000223"),
    "ID": ("10000319", "10000321", "10000323"),
}


def default_reason_options() -> dict[str, list[ReasonOption]]:
    return {
        country: [ReasonOption(rid, name) for rid, name in zip(ids, _NAMES, strict=True)]
        for country, ids in _REASON_IDS.items()
    }


@dataclass
class Scenario:
    """Everything the sandbox starts from; see ``docs/sandbox.md`` for the JSON form."""

    app_key: str
    app_secret: str
    sellers: dict[str, Seller]
    orders: list[Order] = field(default_factory=list)
    reason_options: dict[str, list[ReasonOption]] = field(default_factory=default_reason_options)
    cancellable_statuses: list[str] = field(default_factory=lambda: list(DEFAULT_CANCELLABLE))
    rate_limit: int | None = None
    rate_limit_per_api: dict[str, int] = field(default_factory=dict)
    cancel_delay_s: float = 0.0
    faults: dict[str, Any] | None = None
    ids_as_strings: bool = False
    timestamp_window_s: int = 7200
    validate_tip_type: str = "warning"
    empty_value_rule: EmptyValueRule = "sdk"
    stock: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def generate(
        cls,
        n_orders: int = 200,
        seed: int = 1,
        *,
        order_ids: Sequence[str] | None = None,
        item_ids: Mapping[str, Sequence[str]] | None = None,
        skus: Sequence[str] | None = None,
        sellers: Mapping[str, str] | None = None,
        country: str = "SG",
        now: float | None = None,
    ) -> Scenario:
        """A realistic random store; ``order_ids``/``item_ids`` seed it with known ids.

        ``sellers`` maps seller names to countries (default: one seller "default" in
        ``country``). Without ``order_ids``, ``n_orders`` orders are made up.
        """
        store = generate_store(
            n_orders=n_orders,
            seed=seed,
            order_ids=order_ids,
            item_ids=item_ids,
            skus=skus,
            sellers=sellers or {"default": country},
            now=now,
        )
        scenario = cls(
            app_key=store.app_key,
            app_secret=store.app_secret,
            sellers=store.sellers,
            orders=store.orders,
            stock=store.stock,
        )
        scenario.validate()
        return scenario

    def reasons_for(self, order: Order) -> list[ReasonOption]:
        """The reason options validate offers for ``order``: its own, else its country's."""
        if order.reason_options is not None:
            return order.reason_options
        return self.reason_options.get(order.country.upper(), [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "app_key": self.app_key,
            "app_secret": self.app_secret,
            "sellers": {name: s.to_dict() for name, s in self.sellers.items()},
            "orders": [order.to_dict() for order in self.orders],
            "reason_options": {
                c: [r.to_dict() for r in opts] for c, opts in self.reason_options.items()
            },
            "cancellable_statuses": list(self.cancellable_statuses),
            "rate_limit": self.rate_limit,
            "rate_limit_per_api": dict(self.rate_limit_per_api),
            "cancel_delay_s": self.cancel_delay_s,
            "faults": self.faults,
            "ids_as_strings": self.ids_as_strings,
            "timestamp_window_s": self.timestamp_window_s,
            "validate_tip_type": self.validate_tip_type,
            "empty_value_rule": self.empty_value_rule,
            "stock": {seller: dict(skus) for seller, skus in self.stock.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scenario:
        """Build from the JSON form; missing knobs take their defaults.

        Raises ValueError naming the missing or malformed part.
        """
        try:
            sellers = {name: Seller.from_dict(name, raw) for name, raw in d["sellers"].items()}
            if not sellers:
                raise ValueError("scenario needs at least one seller under 'sellers'")
            orders = [_order_from_dict(raw, sellers) for raw in d.get("orders", [])]
            scenario = cls(
                app_key=str(d["app_key"]),
                app_secret=str(d["app_secret"]),
                sellers=sellers,
                orders=orders,
                **_knobs_from_dict(d),
            )
        except KeyError as exc:
            raise ValueError(f"scenario lacks the key {exc}") from exc
        except (AttributeError, TypeError) as exc:
            raise ValueError(f"scenario has a malformed part: {exc}") from exc
        scenario.validate()
        return scenario

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    def validate(self) -> None:
        """Refuse scenarios the sandbox could not serve unambiguously."""
        seen: dict[str, str] = {}
        for order in self.orders:
            if order.seller not in self.sellers:
                raise ValueError(f"order {order.order_id} names unknown seller {order.seller!r}")
            for item in order.items:
                if not item.order_item_id.isdigit():
                    raise ValueError(f"order_item_id {item.order_item_id!r} is not digits")
                if item.order_item_id in seen:
                    raise ValueError(
                        f"order_item_id {item.order_item_id} appears in orders "
                        f"{seen[item.order_item_id]} and {order.order_id}"
                    )
                seen[item.order_item_id] = order.order_id
        if self.empty_value_rule not in ("sdk", "skip", "either"):
            raise ValueError(f"empty_value_rule {self.empty_value_rule!r}: use sdk, skip or either")


def _order_from_dict(raw: Mapping[str, Any], sellers: dict[str, Seller]) -> Order:
    """An order of its named seller (else the first), in that seller's country by default."""
    owner = sellers.get(str(raw.get("seller", "")), next(iter(sellers.values())))
    return Order.from_dict(dict(raw), default_seller=owner.name, default_country=owner.country)


def _knobs_from_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    knobs: dict[str, Any] = {}
    reasons = default_reason_options()
    for country, options in (d.get("reason_options") or {}).items():
        reasons[str(country).upper()] = [ReasonOption.from_dict(r) for r in options]
    knobs["reason_options"] = reasons
    if "cancellable_statuses" in d:
        knobs["cancellable_statuses"] = [str(s) for s in d["cancellable_statuses"]]
    rate_limit = d.get("rate_limit")
    knobs["rate_limit"] = None if rate_limit is None else int(rate_limit)
    knobs["rate_limit_per_api"] = {
        str(k): int(v) for k, v in (d.get("rate_limit_per_api") or {}).items()
    }
    knobs["cancel_delay_s"] = float(d.get("cancel_delay_s", 0.0))
    knobs["faults"] = d.get("faults")
    knobs["ids_as_strings"] = bool(d.get("ids_as_strings", False))
    knobs["timestamp_window_s"] = int(d.get("timestamp_window_s", 7200))
    knobs["validate_tip_type"] = str(d.get("validate_tip_type", "warning"))
    knobs["empty_value_rule"] = str(d.get("empty_value_rule", "sdk"))
    knobs["stock"] = {
        str(seller): {str(sku): int(n) for sku, n in skus.items()}
        for seller, skus in (d.get("stock") or {}).items()
    }
    return knobs
