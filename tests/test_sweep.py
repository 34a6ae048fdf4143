"""Sweeps end to end: rules against the sandbox, batches through the real flow on a real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings, create_pool
from structlog.testing import capture_logs

from jobs.sweep import sweep_batch_id, sweep_rule, tick_key
from lazada_sandbox import SandboxServer
from lazcancel.models import Outcome
from lazcancel.settings import Settings, SweepRule
from tests.flow_helpers import creates, item, order, read_batch, scenario, settings_for
from worker.runtime import connect_redis, open_runtime
from worker.settings import build_worker, run_sweeps_once

HOUR = 3600.0


def now() -> datetime:
    return datetime.now(UTC)


def aged(order_id: str, hours: float, *items: dict[str, Any]) -> dict[str, Any]:
    return order(order_id, *items, created_at=time.time() - hours * HOUR)


def rule(**kwargs: Any) -> SweepRule:
    values: dict[str, Any] = {
        "name": "oos",
        "statuses": ("pending",),
        "skus": ("GONE",),
        "min_age_hours": 2,
        "lookback_days": 7,
    }
    return SweepRule(**(values | kwargs))


def with_rules(sb: SandboxServer, *rules: SweepRule, budget: int | None = None) -> Settings:
    base = settings_for(sb, sweeps=rules)
    seller = dataclasses.replace(base.sellers["default"], daily_budget=budget)
    return dataclasses.replace(base, sellers={"default": seller})


def calls(sb: SandboxServer, route: str) -> list[Any]:
    return [e for e in sb.ledger if e.route.endswith(route)]


def statuses(sb: SandboxServer, item_ids: Sequence[str]) -> list[str]:
    return [sb.item(i)["status"] for i in item_ids]


async def test_only_matching_orders_are_cancelled(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(
        scenario(
            aged("100000000000001", 3, item("200000000000001", sku="GONE")),
            aged("100000000000002", 3, item("200000000000002", sku="KEEP")),
            aged("100000000000003", 0.5, item("200000000000003", sku="GONE")),
            aged("100000000000004", 240, item("200000000000004", sku="GONE")),
            aged("100000000000005", 3, item("200000000000005", "ready_to_ship", "GONE", "P1")),
            aged(
                "100000000000006",
                5,
                item("200000000000006", sku="GONE"),
                item("200000000000016", sku="KEEP"),
                item("200000000000026", "delivered", sku="GONE"),
            ),
            aged("100000000000007", 3, item("200000000000007", "canceled", sku="GONE")),
        )
    )
    settings = with_rules(sb, rule())

    tick = now()
    [report] = await run_sweeps_once(settings, redis_url=redis_url, now=tick)

    label = tick.strftime("%Y%m%dT%H%M")
    assert (report.batch_id, report.ran, report.error) == (f"sweep-oos-{label}", True, None)
    # Listed: the three pending orders in the age window; selected: their GONE items.
    assert (report.orders_listed, report.items_selected, report.orders_queued) == (3, 2, 2)
    assert statuses(sb, ["200000000000001", "200000000000006"]) == ["canceled", "canceled"]
    untouched = ["200000000000002", "200000000000003", "200000000000004", "200000000000005"]
    assert statuses(sb, untouched) == ["pending", "pending", "pending", "ready_to_ship"]
    assert statuses(sb, ["200000000000016", "200000000000026"]) == ["pending", "delivered"]
    assert sorted(e.params["order_id"] for e in creates(sb)) == [
        "100000000000001",
        "100000000000006",
    ]
    run = await read_batch(redis_url, report.batch_id)
    assert run.status.state == "done"
    assert run.status.counts["cancelled"] == 2 and len(run.results) == 2
    assert run.status.spec.source == f"sweep oos {label}"
    [listing] = calls(sb, "/orders/get")
    assert listing.params["status"] == "pending"
    assert listing.params["created_after"].endswith("+08:00")


async def test_sku_file_and_redis_set_are_the_sku_list(
    make_sandbox: Any, redis_url: str, tmp_path: Path
) -> None:
    sb = await make_sandbox(
        scenario(
            aged("100000000000001", 3, item("200000000000001", sku="FILED")),
            aged("100000000000002", 3, item("200000000000002", sku="SETTED")),
            aged("100000000000003", 3, item("200000000000003", sku="OTHER")),
        )
    )
    sku_file = tmp_path / "skus.txt"
    sku_file.write_text("# out of stock today\nFILED\n\n", encoding="utf-8")
    rules = (
        rule(name="from-file", skus=(), sku_file=str(sku_file)),
        rule(name="from-set", skus=(), sku_redis_set="stock:zero"),
    )
    settings = with_rules(sb, *rules)

    with capture_logs() as logs:
        first = await run_sweeps_once(settings, redis_url=redis_url)
    # An empty set selects nothing; it never means "every SKU".
    assert [r.items_selected for r in first] == [1, 0]
    assert any(e["event"] == "sweep_no_skus" for e in logs)
    assert len(calls(sb, "/orders/get")) == 1  # the empty rule does not even list orders
    assert statuses(sb, ["200000000000001", "200000000000002"]) == ["canceled", "pending"]

    redis = connect_redis(redis_url)
    await redis.sadd("stock:zero", "SETTED")
    await redis.aclose()
    later = await run_sweeps_once(settings, redis_url=redis_url, now=now() + timedelta(minutes=1))
    assert [r.items_selected for r in later] == [0, 1]
    assert statuses(sb, ["200000000000002", "200000000000003"]) == ["canceled", "pending"]


async def test_a_missing_sku_file_fails_the_rule_not_the_others(
    make_sandbox: Any, redis_url: str
) -> None:
    sb = await make_sandbox(
        scenario(aged("100000000000001", 3, item("200000000000001", sku="GONE")))
    )
    rules = (rule(name="broken", sku_file="/nonexistent/skus.txt"), rule(name="fine"))

    broken, fine = await run_sweeps_once(with_rules(sb, *rules), redis_url=redis_url)

    assert broken.error and "/nonexistent/skus.txt" in broken.error
    assert fine.error is None and fine.items_selected == 1
    redis = connect_redis(redis_url)
    # The failed tick is free again: nothing was queued for it.
    assert await redis.exists(tick_key(broken.batch_id)) == 0
    assert await redis.exists(tick_key(fine.batch_id)) == 1
    await redis.aclose()


async def test_the_same_tick_runs_once_across_workers(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(
        scenario(aged("100000000000001", 3, item("200000000000001", sku="GONE")))
    )
    settings = with_rules(sb, rule())
    runtimes = [await open_runtime(settings, redis_url=redis_url) for _ in range(2)]
    pool = await create_pool(RedisSettings.from_dsn(redis_url))

    tick = now().replace(second=1)
    deps = [rt.sweep for rt in runtimes if rt.sweep is not None]
    reports = await asyncio.gather(
        *(sweep_rule(d, settings.sweeps[0], tick=tick, pool=pool) for d in deps)
    )
    calls_after_first = len(sb.ledger)
    again = await run_sweeps_once(settings, redis_url=redis_url, now=tick.replace(second=58))

    assert sorted(r.ran for r in reports) == [False, True]
    assert again[0].ran is False and again[0].batch_id == reports[0].batch_id
    assert len(sb.ledger) == calls_after_first  # the second run called no Lazada endpoint
    assert len(calls(sb, "/orders/get")) == 1
    await pool.aclose()
    for rt in runtimes:
        await rt.close()


async def test_dry_run_sweeps_send_no_create(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(
        scenario(
            aged("100000000000001", 3, item("200000000000001", sku="GONE")),
            aged("100000000000002", 3, item("200000000000002", sku="GONE")),
        )
    )
    settings = with_rules(sb, rule(), rule(name="always-dry", dry_run=True))

    tick = now()
    forced, ruled = await run_sweeps_once(settings, redis_url=redis_url, now=tick, dry_run=True)

    assert forced.batch_id == sweep_batch_id("oos", tick) + "-dry"
    assert ruled.batch_id == sweep_batch_id("always-dry", tick, dry_run=True)
    for report in (forced, ruled):
        run = await read_batch(redis_url, report.batch_id)
        assert {r.outcome for r in run.results.values()} == {Outcome.WOULD_CANCEL}
        assert run.status.counts["would_cancel"] == 2
    assert creates(sb) == []
    assert len(calls(sb, "/cancel/validate")) == 4
    assert statuses(sb, ["200000000000001", "200000000000002"]) == ["pending", "pending"]
    # A dry run does not take the real run's tick.
    [real] = await run_sweeps_once(
        dataclasses.replace(settings, sweeps=settings.sweeps[:1]), redis_url=redis_url, now=tick
    )
    assert real.ran and real.items_selected == 2 and len(creates(sb)) == 2


async def test_cap_and_budget_hold_across_two_workers(make_sandbox: Any, redis_url: str) -> None:
    orders = [
        aged(f"1000000000{n:05d}", 3 + n / 100, item(f"2000000000{n:05d}", sku="GONE"))
        for n in range(130)
    ]
    sb = await make_sandbox(scenario(*orders))
    settings = with_rules(sb, rule(max_items=110), budget=40)

    tick = now()
    [first] = await run_sweeps_once(settings, redis_url=redis_url, now=tick, process=False)
    workers = [
        build_worker(settings, redis_url=redis_url, burst=True, handle_signals=False, max_jobs=1)
        for _ in range(2)
    ]
    await asyncio.gather(*(w.main() for w in workers))
    for worker in workers:
        await worker.close()

    assert first.items_selected == 110 and first.cap_reached
    assert sum(w.jobs_complete for w in workers) == 3
    assert all(w.jobs_complete >= 1 for w in workers)  # both workers took chunks
    run = await read_batch(redis_url, first.batch_id)
    assert len(run.results) == 110
    assert run.status.counts["cancelled"] == 40
    assert run.status.codes["skipped"] == {"budget_exhausted": 70}
    # The oldest orders are taken first, and never more than the cap.
    oldest = {f"1000000000{n:05d}" for n in range(20, 130)}
    assert {r.order_id for r in run.results.values()} == oldest

    [second] = await run_sweeps_once(settings, redis_url=redis_url, now=tick + timedelta(minutes=1))
    assert second.items_selected == 90
    assert len(creates(sb)) == 40
    assert sum(sb.creates_for(f"2000000000{n:05d}") for n in range(130)) == 40


async def test_two_schedulers_run_each_tick_once(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(
        scenario(
            *(
                aged(f"1000000000{n:05d}", 3, item(f"2000000000{n:05d}", sku="GONE"))
                for n in range(3)
            )
        )
    )
    every_second = rule(schedule={"second": list(range(60))})
    settings = with_rules(sb, every_second)
    schedulers = [
        build_worker(
            settings, redis_url=redis_url, mode="sweep", handle_signals=False, poll_delay=0.1
        )
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(s.async_run()) for s in schedulers]
    await asyncio.sleep(2.6)
    for scheduler in schedulers:
        await scheduler.close()
    await asyncio.gather(*tasks, return_exceptions=True)

    redis = connect_redis(redis_url)
    ticks = [k async for k in redis.scan_iter(match=tick_key("sweep-oos-*"))]
    await redis.aclose()
    assert 1 <= len(ticks) <= 2  # one per minute; two only if the run crossed a minute
    assert len(calls(sb, "/orders/get")) == len(ticks)
    worker = build_worker(settings, redis_url=redis_url, burst=True, handle_signals=False)
    await worker.main()
    await worker.close()
    assert all(sb.creates_for(f"2000000000{n:05d}") == 1 for n in range(3))
    assert statuses(sb, [f"2000000000{n:05d}" for n in range(3)]) == ["canceled"] * 3
