"""Housekeeping of old batches, and the pieces of a sweep that need no sandbox: ticks,
schedules and status filters."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from jobs.sweep import (
    HOUSEKEEPING_KEY,
    SweepDeps,
    housekeep,
    housekeep_if_due,
    scheduled_tick,
    status_matches,
    sweep_batch_id,
)
from lazcancel.errors import SettingsError
from lazcancel.settings import Settings, SweepRule
from lazcancel.store import BATCH_INDEX, BatchSpec, BatchStore
from worker.runtime import connect_redis
from worker.settings import SWEEP_QUEUE_NAME, build_worker, cron_fields, sweep_cron_jobs

DAY = 86400


async def make_batch(store: BatchStore, batch_id: str, *, age_days: float) -> None:
    """A published batch created ``age_days`` ago, with rows in every part."""
    await store.create_batch(BatchSpec(batch_id=batch_id, seller="default"))
    await store.stage(
        batch_id, [("662834005291234", "*"), ("662834005291235", "i:662834005391235")]
    )
    await store.publish(batch_id, chunks=1, rows_rejected=0)
    await store.redis.zadd(BATCH_INDEX, {batch_id: time.time() - age_days * DAY})


async def test_old_batches_and_keys_without_ttl_are_removed(redis_url: str) -> None:
    redis = connect_redis(redis_url)
    store = BatchStore(redis, ttl_seconds=30 * DAY)
    await make_batch(store, "old-1", age_days=31)
    await make_batch(store, "recent", age_days=2)
    # A run that died while staging leaves rows without a TTL, and nothing in the index.
    await redis.rpush("lazcancel:batch:crashed:orders", "662834005291234")
    # A batch being staged right now has rows without a TTL too, but it is indexed: kept.
    await store.create_batch(BatchSpec(batch_id="staging", seller="default"))
    await store.stage("staging", [("662834005291235", "*")])

    with capture_logs() as logs:
        report = await housekeep(redis, retention_seconds=30 * DAY, now=time.time())

    assert report.batches == ["old-1"]
    assert await redis.exists("lazcancel:batch:old-1", "lazcancel:batch:old-1:items") == 0
    assert await redis.exists("lazcancel:batch:crashed:orders") == 0
    assert await store.status("recent") is not None
    assert await redis.exists("lazcancel:batch:staging:orders") == 1
    assert await redis.zrange(BATCH_INDEX, 0, -1) == ["recent", "staging"]
    [event] = [e for e in logs if e["event"] == "housekeeping_done"]
    assert event["batch_ids"] == ["old-1"] and event["keys_without_ttl"] == 1
    assert report.keys_removed >= 4
    await redis.aclose()


async def test_housekeeping_runs_once_an_hour_across_workers(redis_url: str) -> None:
    redis = connect_redis(redis_url)
    store = BatchStore(redis)
    deps = SweepDeps(settings=Settings(), redis=redis, store=store, client_for=_no_client)
    await make_batch(store, "ancient", age_days=400)

    first = await housekeep_if_due(deps)
    second = await housekeep_if_due(deps)

    assert first is not None and first.batches == ["ancient"]
    assert second is None
    assert 3500 < await redis.ttl(HOUSEKEEPING_KEY) <= 3600
    await redis.aclose()


def _no_client(seller: str) -> Any:
    raise AssertionError("housekeeping must not call Lazada")


def test_tick_is_the_scheduled_minute_in_utc() -> None:
    scheduled = datetime(2026, 12, 4, 16, 30, 0, 123456, tzinfo=UTC)
    ms = int(scheduled.timestamp() * 1000)
    assert scheduled_tick({"job_id": f"sweep:a:b:{ms}", "score": 0}) == scheduled.replace(
        microsecond=0
    )
    late = {"job_id": "custom-id", "score": ms + 45_000}
    assert scheduled_tick(late) == datetime(2026, 12, 4, 16, 30, tzinfo=UTC)
    assert sweep_batch_id("oos", scheduled) == "sweep-oos-20261204T1630"


def test_status_filters_stand_for_item_statuses() -> None:
    assert status_matches(["pending"]) == frozenset({"pending"})
    assert status_matches(["topack", "Ready_To_Ship"]) == frozenset(
        {"pending", "repacked", "ready_to_ship"}
    )
    assert status_matches(["toship"]) == frozenset(
        {"packed", "ready_to_ship", "ready_to_ship_pending"}
    )
    assert status_matches(["pending", "all"]) is None


def test_schedules_become_cron_jobs_and_bad_ones_are_refused() -> None:
    rules = (
        SweepRule(name="half-hourly", schedule={"minute": [0, 30], "hour": 3}),
        SweepRule(name="manual"),
    )
    [job] = sweep_cron_jobs(rules)
    assert job.name == "sweep:half-hourly"
    assert (job.minute, job.hour, job.second, job.unique) == ({0, 30}, 3, 0, True)
    assert cron_fields(SweepRule(name="w", schedule={"weekday": "mon"})) == {"weekday": "mon"}

    with pytest.raises(SettingsError, match=r"unknown schedule keys \['minutes'\]"):
        cron_fields(SweepRule(name="typo", schedule={"minutes": 5}))
    with pytest.raises(SettingsError, match=r"schedule\.hour must be a whole number"):
        cron_fields(SweepRule(name="text", schedule={"hour": "3"}))


def test_the_sweep_worker_needs_a_scheduled_rule() -> None:
    url = "redis://127.0.0.1:1/0"  # building a worker connects to nothing
    manual = Settings(sweeps=(SweepRule(name="manual"),))
    with pytest.raises(SettingsError, match="no sweep rule has a schedule"):
        build_worker(manual, redis_url=url, mode="sweep", handle_signals=False)
    rules = (SweepRule(name="nightly", schedule={"hour": 2, "minute": 0}),)
    worker = build_worker(Settings(sweeps=rules), redis_url=url, mode="sweep", handle_signals=False)
    assert worker.queue_name == SWEEP_QUEUE_NAME
    assert set(worker.functions) == {"sweep:nightly"}
    assert worker.timezone == UTC
