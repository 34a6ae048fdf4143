"""Typed values that cross module boundaries: what Lazada told us, and what we record.

Ids are digit strings everywhere, whatever JSON type Lazada used for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderItem:
    """One unit of an order, as GetOrderItems / GetMultipleOrderItems describe it."""

    order_id: str
    order_item_id: str
    status: str
    package_id: str = ""
    sku: str | None = None
    shop_sku: str | None = None
    name: str | None = None
    cancel_return_initiator: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSummary:
    """One order as GetOrders lists it (no buyer data is kept)."""

    order_id: str
    created_at: datetime
    updated_at: datetime | None
    statuses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReasonOption:
    reason_id: str
    reason_name: str


class Verdict(StrEnum):
    """How lazcancel reads a ``tip_type`` (lazada-api.md §15)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTip:
    """The answer of ReverseOrderCancelValidate or InitReverseOrderCancel."""

    tip_type: str | None
    tip_content: str
    reason_options: tuple[ReasonOption, ...] = ()
    request_id: str | None = None
    attempts: int = 1

    @property
    def verdict(self) -> Verdict:
        kind = (self.tip_type or "").strip().lower()
        if kind in {"success", "warning", "warn"}:
            return Verdict.ACCEPTED
        if kind == "error":
            return Verdict.REJECTED
        return Verdict.UNKNOWN


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSet:
    """The answer of /auth/token/refresh: both tokens rotate together."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    refresh_expires_in: int


class Outcome(StrEnum):
    CANCELLED = "cancelled"
    WOULD_CANCEL = "would_cancel"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemResult:
    """The recorded outcome of one order item (or of an order whose items were never known)."""

    order_id: str
    order_item_id: str | None
    outcome: Outcome
    code: str | None = None
    message: str | None = None
    sku: str | None = None
    status: str | None = None
    request_id: str | None = None
    attempts: int = 0
    updated_at: str = ""

    @property
    def key(self) -> str:
        return f"{self.order_id}:{self.order_item_id or ''}"
