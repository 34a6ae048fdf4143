"""A fault storm at the gateway, clock skew, and the check every fault test ends with: the
recorded results agree with the sandbox's final state, item for item, and nothing was cancelled
twice."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from lazada_sandbox import SandboxServer, Scenario
from lazcancel.models import ItemResult, Outcome
from tests.flow_helpers import (
    creates,
    item,
    order,
    read_batch,
    rows,
    run_batch,
    scenario,
    settings_for,
)
from worker.settings import build_worker

# The codes a run may end an item with when the gateway kept failing (never a business code).
TRANSIENT_CODES = frozenset({"ServiceTimeout", "6", "106", "upstream_error"})
O1, I1 = "662834005291234", "662834005391234"


def ledger_creates(sb: SandboxServer) -> Counter[str]:
    """How many create calls that reached the API (applied) named each item."""
    counts: Counter[str] = Counter()
    for entry in creates(sb):
        if entry.applied:
            counts.update(json.loads(entry.params["order_item_id_list"]))
    return counts


def assert_agrees_with_sandbox(
    sb: SandboxServer,
    results: Mapping[str, ItemResult],
    order_ids: Iterable[str],
    *,
    seller: str = "default",
    one_create_each: bool = True,
) -> Counter[str]:
    """Every item of every order has one true result; returns the count per outcome:code.

    cancelled: the sandbox shows it canceled, by exactly one accepted create. already_canceled:
    canceled, by nobody here. Anything else: no create was accepted and the status is still the
    one recorded. Failures only with codes a faulty gateway explains. ``one_create_each``: no
    item was named by two creates that reached the API (false where a create answered too late
    is rightly sent again: the gateway refuses the later one).
    """
    tally: Counter[str] = Counter()
    sent = ledger_creates(sb)
    for order_id in order_ids:
        order = sb.state.order(seller, order_id)
        assert order is not None, order_id
        whole = results.get(f"{order_id}:")
        if whole is not None:
            assert whole.outcome in (Outcome.FAILED, Outcome.SKIPPED), whole
            assert all(sb.creates_for(i.order_item_id) == 0 for i in order.items), whole
            tally[f"{whole.outcome}:{whole.code}"] += 1
            continue
        for unit in order.items:
            result = results.get(f"{order_id}:{unit.order_item_id}")
            assert result is not None, f"no result for {order_id}:{unit.order_item_id}"
            _assert_true(result, status=unit.status, accepted=sb.creates_for(unit.order_item_id))
            if one_create_each:
                assert sent[unit.order_item_id] <= 1, f"{unit.order_item_id}: two creates"
            tally[f"{result.outcome}:{result.code or ''}"] += 1
    return tally


def _assert_true(result: ItemResult, *, status: str, accepted: int) -> None:
    assert accepted <= 1, f"{result.key}: {accepted} accepted creates"
    if result.outcome is Outcome.CANCELLED:
        assert (status, accepted) == ("canceled", 1), result
    elif result.code == "already_canceled":
        assert (status, accepted) == ("canceled", 0), result
    else:
        assert accepted == 0, result
        assert status == result.status, result
    if result.outcome is Outcome.FAILED:
        assert result.code in TRANSIENT_CODES, result


def outcome_counts(results: Mapping[str, Any]) -> Counter[str]:
    return Counter(str(r.outcome) for r in results.values())


STORM_KINDS = ["ServiceTimeout", "6", "html502", "slow", "drop", "drop_after_apply",
               "late_after_apply"]  # fmt: skip


async def test_fault_storm_ends_every_item_true_and_cancels_none_twice(
    make_sandbox: Any, redis_url: str
) -> None:
    sb = await make_sandbox(Scenario.generate(n_orders=300, seed=21))
    order_ids = [o.order_id for o in sb.scenario.orders]
    # Slow answers outlast the client's read timeout: applied or not, the client cannot tell.
    sb.faults.set({"rate": 0.2, "kinds": STORM_KINDS, "seed": 7, "slow_seconds": 0.6})
    settings = settings_for(sb, read_timeout=0.3, retry_attempts=8)
    run = await run_batch(settings, redis_url, rows(*order_ids))

    assert run.status.state == "done"
    faults = Counter(e.fault for e in sb.ledger if e.fault)
    assert set(faults) == set(STORM_KINDS), faults
    assert sum(faults.values()) > 0.15 * len(sb.ledger)
    tally = assert_agrees_with_sandbox(sb, run.results, order_ids, one_create_each=False)
    failed = sum(n for key, n in tally.items() if key.startswith("failed"))
    # Failing is right only where the gateway failed every attempt: rare at 20 %.
    assert failed <= 0.01 * sum(tally.values()), tally
    assert tally["cancelled:"] > 450


async def test_create_applied_after_the_client_gave_up_is_found_not_failed(
    make_sandbox: Any, redis_url: str
) -> None:
    sb = await make_sandbox(scenario(order(O1, item(I1))))
    # Two creates lost, then one that Lazada applies only after the client stopped waiting.
    sb.faults.set(
        {
            "script": {"/order/reverse/cancel/create": ["html502", "html502", "slow"]},
            "slow_seconds": 0.6,
        }
    )
    run = await run_batch(settings_for(sb, read_timeout=0.3), redis_url, rows(O1))

    assert len(creates(sb)) == 3
    assert run.of(O1, I1).outcome is Outcome.CANCELLED
    assert_agrees_with_sandbox(sb, run.results, [O1])


async def test_clock_skew_halts_the_batch_once_naming_both_clocks(
    make_sandbox: Any, redis_url: str
) -> None:
    orders = [order(f"6628340052{n:05d}", item(f"6628340053{n:05d}")) for n in range(120)]
    sb = await make_sandbox(scenario(*orders))
    sb.clock.set(offset_s=3 * 3600)  # our clock is three hours behind the gateway's
    # The sandbox's Date header tells its own clock, as a real gateway's does.
    with structlog.testing.capture_logs() as logs:
        started = time.time()
        run = await run_batch(settings_for(sb), redis_url, rows(*(o["order_id"] for o in orders)))

    halted = run.status.halted or ""
    assert halted.startswith("IncompleteSignature: ") and "7200 s window" in halted
    ours, theirs = (
        datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        for t in re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", halted)
    )
    assert abs(ours - started) < 30
    assert abs(theirs - ours - 3 * 3600) < 5
    apart = re.search(r"(-?\d+) s apart; set this machine's clock right", halted)
    assert apart and abs(int(apart.group(1)) + 3 * 3600) <= 2
    # Reported once, as a configuration error; never retried: a call per chunk at most.
    assert [e["event"] for e in logs].count("batch_halted") == 1
    assert len(sb.ledger) <= 3
    assert run.status.counts["failed"] == 120
    assert {r.code for r in run.results.values()} == {"IncompleteSignature"}
    assert creates(sb) == []


async def test_chunk_slower_than_the_job_timeout_stops_in_time_and_runs_again(
    make_sandbox: Any, redis_url: str
) -> None:
    orders = [order(f"6628340052{n:05d}", item(f"6628340053{n:05d}")) for n in range(8)]
    sb = await make_sandbox(scenario(*orders))
    sb.faults.set({"rate": 1.0, "kinds": ["slow"], "slow_seconds": 0.6, "seed": 1,
                   "routes": ["/order/reverse/cancel/validate"]})  # fmt: skip
    settings = dataclasses.replace(settings_for(sb), concurrency=2)
    order_ids = [o["order_id"] for o in orders]
    run = await run_batch(settings, redis_url, rows(*order_ids), process=False)
    # 8 validates of 0.6 s, two at a time: 2.4 s of work against a 2 s job timeout.
    worker = build_worker(
        settings, redis_url=redis_url, burst=True, handle_signals=False, job_timeout=2
    )
    with structlog.testing.capture_logs() as logs:
        try:
            await worker.main()
        finally:
            await worker.close()

    assert worker.jobs_failed == 0
    assert [e["event"] for e in logs].count("chunk_overran") >= 1
    done = await read_batch(redis_url, run.batch_id)
    assert done.status.state == "done"
    tally = assert_agrees_with_sandbox(sb, done.results, order_ids)
    assert tally["cancelled:"] == 8
