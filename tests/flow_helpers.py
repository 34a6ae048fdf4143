"""Building scenarios and running whole batches against the sandbox, for the flow tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobs.enqueue import new_batch_id
from lazada_sandbox import SandboxServer, Scenario
from lazcancel.models import ItemResult
from lazcancel.orders_file import OrderRow
from lazcancel.settings import SellerSettings, Settings
from lazcancel.store import BatchSpec, BatchStatus, BatchStore
from worker.runner import process_batch, submit_batch
from worker.runtime import connect_redis

APP_KEY = "100001"
APP_SECRET = "flow-test-secret-0123456789"
TOKEN = "flow-test-token-default"


def item(
    item_id: str, status: str = "pending", sku: str = "SKU-A", package: str = ""
) -> dict[str, Any]:
    return {"order_item_id": item_id, "status": status, "sku": sku, "package_id": package}


def order(
    order_id: str, *items: dict[str, Any], country: str = "SG", **extra: Any
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "country": country,
        "created_at": "2026-12-01T10:00:00+08:00",
        "items": list(items),
        **extra,
    }


def scenario(*orders: dict[str, Any], **knobs: Any) -> Scenario:
    return Scenario.from_dict(
        {
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "sellers": {"default": {"access_token": TOKEN, "country": "SG"}},
            "orders": list(orders),
            **knobs,
        }
    )


def settings_for(sb: SandboxServer, **overrides: Any) -> Settings:
    seller = SellerSettings(
        name="default",
        app_key=sb_scenario(sb).app_key,
        app_secret=sb_scenario(sb).app_secret,
        access_token=sb_scenario(sb).sellers["default"].access_token,
        api_url=sb.url,
    )
    base = Settings(
        sellers={"default": seller},
        rate_limit=500.0,
        retry_backoff_base=0.01,
        retry_backoff_cap=0.05,
        confirm_delay=0.02,
    )
    return dataclasses.replace(base, **overrides)


def sb_scenario(sb: SandboxServer) -> Scenario:
    return sb.scenario


def rows(*order_ids: str, item: str | None = None, sku: str | None = None) -> list[OrderRow]:
    return [
        OrderRow(line=n, order_id=o, order_item_id=item, sku=sku)
        for n, o in enumerate(order_ids, start=1)
    ]


@dataclass
class BatchRun:
    batch_id: str
    status: BatchStatus
    results: dict[str, ItemResult]

    def of(self, order_id: str, order_item_id: str | None = None) -> ItemResult:
        return self.results[f"{order_id}:{order_item_id or ''}"]


async def run_batch(
    settings: Settings,
    redis_url: str,
    order_rows: Sequence[OrderRow],
    *,
    process: bool = True,
    **spec: Any,
) -> BatchRun:
    batch_id = new_batch_id()
    batch = BatchSpec(batch_id=batch_id, seller="default", **spec)
    await submit_batch(settings=settings, redis_url=redis_url, spec=batch, rows=order_rows)
    if process:
        await process_batch(settings=settings, redis_url=redis_url, batch_id=batch_id)
    return await read_batch(redis_url, batch_id)


async def read_batch(redis_url: str, batch_id: str) -> BatchRun:
    redis = connect_redis(redis_url)
    store = BatchStore(redis)
    status = await store.status(batch_id)
    assert status is not None
    results = {r.key: r async for r in store.iter_results(batch_id)}
    await redis.aclose()
    return BatchRun(batch_id, status, results)


def creates(sb: SandboxServer) -> list[Any]:
    return [e for e in sb.ledger if e.route.endswith("/order/reverse/cancel/create")]
