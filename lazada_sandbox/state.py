"""The live, mutable store the server works on: orders, items, tokens, stock and cancels.

Built from a deep copy of the scenario, so a reset can always go back to the start. The rules
deciding *whether* a cancel is allowed live in ``cancel``; this module only records outcomes.
"""

from __future__ import annotations

import asyncio
import copy
import random
import string
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

from lazada_sandbox.clock import Clock
from lazada_sandbox.model import Item, Order, ReasonOption, Seller
from lazada_sandbox.scenario import Scenario


@dataclass
class TokenRecord:
    seller: str
    expires_at: float


@dataclass
class StockEvent:
    """A SKU's stock set to 0 by a seller cancellation with a stock-zeroing reason."""

    time: float
    seller: str
    sku: str
    reason_id: str
    reason_name: str
    order_id: str
    order_item_id: str


class SandboxState:
    """Orders and items by id, tokens by value, stock per seller and SKU, cancel counters."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        # Only orders, sellers and stock change while serving; copy those, share the rest.
        self.scenario = copy.copy(scenario)
        self.scenario.orders = [order.clone() for order in scenario.orders]
        self.scenario.sellers = {name: replace(s) for name, s in scenario.sellers.items()}
        self.clock = clock
        self.sellers: dict[str, Seller] = self.scenario.sellers
        self.orders: dict[tuple[str, str], Order] = {
            (o.seller, o.order_id): o for o in self.scenario.orders
        }
        self.items: dict[str, Item] = {}
        self.item_orders: dict[str, Order] = {}
        for order in self.scenario.orders:
            for item in order.items:
                self.items[item.order_item_id] = item
                self.item_orders[item.order_item_id] = order
        self.stock = copy.deepcopy(self.scenario.stock)
        self.stock_events: list[StockEvent] = []
        self.creates: Counter[str] = Counter()
        self.access_tokens: dict[str, TokenRecord] = {}
        self.refresh_tokens: dict[str, TokenRecord] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self._rng = random.Random()
        for seller in self.sellers.values():
            self._issue_tokens(seller, seller.access_token, seller.refresh_token)

    # Tokens

    def _issue_tokens(self, seller: Seller, access: str, refresh: str) -> None:
        now = self.clock.now()
        self.access_tokens[access] = TokenRecord(seller.name, now + seller.access_expires_in)
        self.refresh_tokens[refresh] = TokenRecord(seller.name, now + seller.refresh_expires_in)
        seller.access_token, seller.refresh_token = access, refresh

    def seller_for_access(self, token: str) -> str | None:
        record = self.access_tokens.get(token)
        if record is None or record.expires_at <= self.clock.now():
            return None
        return record.seller

    def seller_for_refresh(self, token: str) -> str | None:
        record = self.refresh_tokens.get(token)
        if record is None or record.expires_at <= self.clock.now():
            return None
        return record.seller

    def rotate_tokens(self, seller_name: str) -> tuple[Seller, float]:
        """New access and refresh tokens; the old pair stops working at once.

        The refresh lifetime carries over (a refresh renews only the access lifetime); the
        remaining refresh lifetime in seconds is returned with the seller.
        """
        seller = self.sellers[seller_name]
        old = self.refresh_tokens.pop(seller.refresh_token)
        self.access_tokens.pop(seller.access_token, None)
        alphabet = string.ascii_letters + string.digits
        access = "".join(self._rng.choices(alphabet, k=60))
        refresh = "".join(self._rng.choices(alphabet, k=60))
        self._issue_tokens(seller, access, refresh)
        self.refresh_tokens[refresh].expires_at = old.expires_at
        return seller, max(0.0, old.expires_at - self.clock.now())

    def expire_tokens(self, seller_name: str, which: str = "access") -> None:
        """Make the seller's current access and/or refresh token expired (``which``)."""
        seller = self.sellers[seller_name]
        past = self.clock.now() - 1
        if which in ("access", "both"):
            self.access_tokens[seller.access_token].expires_at = past
        if which in ("refresh", "both"):
            self.refresh_tokens[seller.refresh_token].expires_at = past

    # Orders and items

    def order(self, seller: str, order_id: str) -> Order | None:
        return self.orders.get((seller, order_id))

    def orders_of(self, seller: str) -> list[Order]:
        return [o for o in self.scenario.orders if o.seller == seller]

    def is_cancellable(self, item: Item) -> bool:
        allowed = {s.lower() for s in self.scenario.cancellable_statuses}
        return item.status.lower() in allowed

    # Cancellation outcomes

    def accept_cancel(self, order: Order, items: list[Item], reason: ReasonOption) -> None:
        """Count the create call against each item and apply it now or after the delay."""
        for item in items:
            self.creates[item.order_item_id] += 1
        delay = self.scenario.cancel_delay_s
        if delay <= 0:
            self._apply_cancel(order, items, reason)
            return
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(delay, self._apply_cancel, order, items, reason))

    def _apply_cancel(self, order: Order, items: list[Item], reason: ReasonOption) -> None:
        now = self.clock.now()
        for item in items:
            item.status = "canceled"
            item.cancel_return_initiator = "cancellation-seller"
            item.reason = reason.reason_name
            item.updated_at = now
            item.reverse_order_id = item.reverse_order_id or self._reverse_id(item)
            if reason.sets_stock_zero():
                self._zero_stock(order, item, reason, now)
        order.updated_at = now

    def _reverse_id(self, item: Item) -> str:
        return str(self._rng.randint(10**9, 10**10 - 1)) + item.order_item_id[-5:]

    def _zero_stock(self, order: Order, item: Item, reason: ReasonOption, now: float) -> None:
        self.stock.setdefault(order.seller, {})[item.sku] = 0
        self.stock_events.append(
            StockEvent(
                time=now,
                seller=order.seller,
                sku=item.sku,
                reason_id=reason.reason_id,
                reason_name=reason.reason_name,
                order_id=order.order_id,
                order_item_id=item.order_item_id,
            )
        )

    def cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # Views

    def snapshot(self) -> dict[str, Any]:
        """Everything a test or an operator may want to see, as JSON-ready data."""
        return {
            "items": {
                iid: {
                    "order_id": self.item_orders[iid].order_id,
                    "seller": self.item_orders[iid].seller,
                    **item.to_dict(),
                    "creates": self.creates[iid],
                }
                for iid, item in self.items.items()
            },
            "orders": [o.to_dict() for o in self.scenario.orders],
            "stock": copy.deepcopy(self.stock),
            "stock_events": [asdict(e) for e in self.stock_events],
            "sellers": {name: {**s.to_dict(), "name": name} for name, s in self.sellers.items()},
            "clock": self.clock.to_dict(),
        }
