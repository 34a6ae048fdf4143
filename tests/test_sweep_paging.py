"""A sweep over more orders than GetOrders can page through with offsets (5000)."""

from __future__ import annotations

import json
import time
from typing import Any

from lazada_sandbox import Scenario
from lazcancel.settings import SweepRule
from tests.flow_helpers import APP_KEY, APP_SECRET, TOKEN, creates, settings_for
from worker.settings import run_sweeps_once

N_FILLER = 5100


def store(now: float) -> Scenario:
    """5100 pending orders of SKU FILL, one second apart, then the three newest of SKU GONE."""
    start = now - 5 * 86400
    orders = [
        {
            "order_id": f"7000000{n:08d}",
            "created_at": start + n,
            "items": [{"order_item_id": f"8000000{n:08d}", "status": "pending", "sku": "FILL"}],
        }
        for n in range(N_FILLER)
    ]
    orders += [
        {
            "order_id": f"7100000{n:08d}",
            "created_at": start + N_FILLER + 60 + n,
            "items": [{"order_item_id": f"8100000{n:08d}", "status": "pending", "sku": "GONE"}],
        }
        for n in range(3)
    ]
    return Scenario.from_dict(
        {
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "sellers": {"default": {"access_token": TOKEN, "country": "SG"}},
            "orders": orders,
        }
    )


async def test_sweep_finds_orders_past_the_offset_cap(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(store(time.time()))
    rule = SweepRule(name="deep", skus=("GONE",), min_age_hours=1, lookback_days=6, max_items=10)

    [report] = await run_sweeps_once(settings_for(sb, sweeps=(rule,)), redis_url=redis_url)

    assert report.orders_listed == N_FILLER + 3
    assert report.items_selected == 3
    assert sorted(json.loads(e.params["order_item_id_list"])[0] for e in creates(sb)) == [
        f"8100000{n:08d}" for n in range(3)
    ]
    pages = [e for e in sb.ledger if e.route.endswith("/orders/get")]
    assert max(int(e.params["offset"]) for e in pages) == 5000
    windows = {e.params["created_after"] for e in pages}
    assert len(windows) == 2  # the window moved once, past the first 5000 orders
    assert all(e.code == "0" for e in pages)
