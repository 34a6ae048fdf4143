"""The daily cancellation budget: atomic grants in Redis, the seller's local day, and the flow
holding back what the budget does not allow."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

from structlog.testing import capture_logs

from lazcancel.budget import RedisBudget, budget_key
from lazcancel.models import Outcome
from lazcancel.settings import SellerSettings
from tests.flow_helpers import creates, item, order, rows, run_batch, scenario, settings_for
from worker.runtime import connect_redis


def seller(name: str = "s1", *, budget: int | None = 5, offset: int = 8) -> SellerSettings:
    return SellerSettings(
        name=name,
        app_key="k",
        app_secret="s",
        access_token="t",
        api_url="http://127.0.0.1:1/rest",
        daily_budget=budget,
        utc_offset_hours=offset,
    )


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


async def test_concurrent_reservations_never_overdraw(redis_url: str) -> None:
    first, second = connect_redis(redis_url), connect_redis(redis_url)
    sellers = {"s1": seller(budget=7)}
    budgets = [RedisBudget(first, sellers=sellers), RedisBudget(second, sellers=sellers)]

    grants = await asyncio.gather(*(budgets[n % 2].reserve("s1", 2) for n in range(10)))

    assert sum(grants) == 7
    assert sorted(grants)[-1] == 2 and 1 in grants
    assert await budgets[0].used("s1") == 7
    assert await budgets[1].reserve("s1", 1) == 0
    await first.aclose()
    await second.aclose()


async def test_the_day_is_the_sellers_local_day_and_expires(redis_url: str) -> None:
    redis = connect_redis(redis_url)
    clock = at("2026-12-04T17:30:00")  # 01:30 on the 5th in Singapore, 00:30 in Bangkok
    sellers = {"sg": seller("sg", offset=8), "th": seller("th", offset=7), "x": seller("x")}
    budget = RedisBudget(redis, sellers=sellers, clock=lambda: clock)

    assert budget.day("sg") == budget.day("th") == "2026-12-05"
    clock = at("2026-12-04T16:30:00")
    assert (budget.day("sg"), budget.day("th")) == ("2026-12-05", "2026-12-04")

    assert await budget.reserve("th", 3) == 3
    ttl = await redis.ttl(budget_key("th", "2026-12-04"))
    assert 2 * 86400 - 5 <= ttl <= 2 * 86400
    assert await redis.get(budget_key("th", "2026-12-05")) is None
    await redis.aclose()


async def test_release_gives_back_to_the_day_it_was_taken_from(redis_url: str) -> None:
    redis = connect_redis(redis_url)
    clock = at("2026-12-04T15:59:00")  # 23:59 in Singapore
    budget = RedisBudget(redis, sellers={"s1": seller(budget=5)}, clock=lambda: clock)
    assert await budget.reserve("s1", 4) == 4

    clock = at("2026-12-04T16:01:00")  # the next local day has begun
    assert await budget.reserve("s1", 2) == 2
    await budget.release("s1", 3)

    assert await redis.get(budget_key("s1", "2026-12-05")) == "0"
    assert await redis.get(budget_key("s1", "2026-12-04")) == "3"
    await budget.release("s1", 50)
    assert await redis.get(budget_key("s1", "2026-12-04")) == "0"
    assert await budget.reserve("s1", 9) == 5
    await redis.aclose()


async def test_no_budget_means_unlimited_but_counted(redis_url: str) -> None:
    redis = connect_redis(redis_url)
    budget = RedisBudget(redis, sellers={"s1": seller(budget=None)})

    assert await budget.reserve("s1", 1000) == 1000
    assert await budget.reserve("unknown-seller", 3) == 3
    assert await budget.used("s1") == 1000
    assert await budget.reserve("s1", 0) == 0
    await redis.aclose()


async def test_flow_holds_back_items_beyond_the_budget(make_sandbox: Any, redis_url: str) -> None:
    ids = [(f"66283400529{n:04d}", f"66283400539{n:04d}") for n in range(5)]
    sb = await make_sandbox(scenario(*(order(o, item(i)) for o, i in ids)))
    base = settings_for(sb)
    limited = dataclasses.replace(base.sellers["default"], daily_budget=3)
    settings = dataclasses.replace(base, sellers={"default": limited})

    with capture_logs() as logs:
        first = await run_batch(settings, redis_url, rows(*(o for o, _ in ids)))
    second = await run_batch(settings, redis_url, rows(*(o for o, _ in ids)))

    assert first.status.counts["cancelled"] == 3
    held = [r for r in first.results.values() if r.code == "budget_exhausted"]
    assert len(held) == 2 and all(r.outcome is Outcome.SKIPPED for r in held)
    assert len(creates(sb)) == 3
    warnings = [e for e in logs if e["event"] == "budget_exhausted"]
    assert warnings and sum(e["held_back"] for e in warnings) == 2
    assert all(e["log_level"] == "warning" for e in warnings)
    # The next batch the same day finds the budget used up: no further create is sent.
    assert second.status.counts["skipped"] == 5
    assert {r.code for r in second.results.values()} == {"already_canceled", "budget_exhausted"}
    assert len(creates(sb)) == 3


async def test_budget_never_splits_a_packed_package(make_sandbox: Any, redis_url: str) -> None:
    packed = order(
        "662834005291234",
        item("662834005391234", "packed", package="PKG1"),
        item("662834005491234", "packed", package="PKG1"),
    )
    single = order("662834005291235", item("662834005391235"))
    sb = await make_sandbox(scenario(packed, single))
    base = settings_for(sb)
    limited = dataclasses.replace(base.sellers["default"], daily_budget=1)
    settings = dataclasses.replace(base, sellers={"default": limited})

    run = await run_batch(settings, redis_url, rows("662834005291234", "662834005291235"))

    # One create would cancel both packed items: over a budget of one, so neither is sent, and
    # the grant goes back to the budget for the single item.
    assert run.of("662834005291234", "662834005391234").code == "budget_exhausted"
    assert run.of("662834005291234", "662834005491234").code == "budget_exhausted"
    assert run.of("662834005291235", "662834005391235").outcome is Outcome.CANCELLED
    assert sb.item("662834005391234")["status"] == "packed"
    redis = connect_redis(redis_url)
    budget = RedisBudget(redis, sellers={"default": limited})
    assert await budget.used("default") == 1
    await redis.aclose()


async def test_reserve_rides_out_a_redis_restart(redis_server: Any, redis_url: str) -> None:
    redis = connect_redis(redis_url)
    budget = RedisBudget(redis, sellers={"s1": seller(budget=5)})
    redis_server.stop()

    async def back_soon() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(redis_server.start)

    restart = asyncio.create_task(back_soon())
    assert await budget.reserve("s1", 2) == 2
    await restart
    await budget.release("s1", 1)
    assert await budget.used("s1") == 1
    await redis.aclose()
