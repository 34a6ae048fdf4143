"""Scheduled clean-up sweeps: list a rule's candidate orders, pick the items of its SKUs, and
queue them as an ordinary batch for the cancel flow; plus the housekeeping of old batches.

Each tick of a rule runs once across all workers (a Redis marker). The sweep cancels nothing
itself: the chunk jobs of the batch it queues do, exactly as for a batch from a file.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog
from arq.connections import ArqRedis

from jobs.cancel import CHUNK_SIZE
from jobs.choose import UNPACKED, choose_items
from jobs.enqueue import queue_chunks, stage_rows
from lazcancel.client import LazadaClient
from lazcancel.errors import LazcancelError, SettingsError
from lazcancel.models import OrderItem
from lazcancel.orders_file import OrderRow
from lazcancel.settings import Settings, SweepRule
from lazcancel.store import BATCH_INDEX, BATCH_PARTS, PREFIX, BatchSpec, BatchStore, Selection

SWEEP_PREFIX = f"{PREFIX}:sweep"
HOUSEKEEPING_KEY = f"{PREFIX}:housekeeping"
TICK_FORMAT = "%Y%m%dT%H%M"
# Housekeeping scans every batch key: once an hour across all workers is plenty.
HOUSEKEEPING_EVERY_S = 3600
LOGGED_IDS = 100

# GetOrders filters that stand for several item statuses (lazada-api.md §17); any other filter
# matches the item status of its own name, and "all" matches every status.
STATUS_GROUPS: dict[str, frozenset[str]] = {
    "topack": frozenset({"pending", "repacked"}),
    "toship": frozenset({"packed", "ready_to_ship", "ready_to_ship_pending"}),
    "shipped": frozenset({"shipping", "shipped"}),
}

log = structlog.get_logger(__name__)


@dataclass(kw_only=True)
class SweepDeps:
    """What a sweep needs from the runtime; the worker builds it once per process."""

    settings: Settings
    redis: aioredis.Redis
    store: BatchStore
    client_for: Callable[[str], LazadaClient]
    clock: Callable[[], float] = time.time


@dataclass(kw_only=True)
class SweepReport:
    """What one rule's tick did; ``ran`` is False when another run had already taken the tick."""

    rule: str
    tick: str
    batch_id: str
    dry_run: bool
    ran: bool = True
    orders_listed: int = 0
    orders_queued: int = 0
    items_selected: int = 0
    cap_reached: bool = False
    error: str | None = None


@dataclass(kw_only=True)
class HousekeepingReport:
    batches: list[str] = field(default_factory=list)
    keys_removed: int = 0


# -- ticks ---------------------------------------------------------------------------------


def minute_of(when: datetime) -> datetime:
    """The UTC minute ``when`` falls in: a tick's identity."""
    return when.astimezone(UTC).replace(second=0, microsecond=0)


def tick_label(tick: datetime) -> str:
    return minute_of(tick).strftime(TICK_FORMAT)


def sweep_batch_id(rule: str, tick: datetime, *, dry_run: bool = False) -> str:
    """``sweep-<rule>-<tick>``, with ``-dry`` for a dry run so it never takes a real run's tick."""
    return f"sweep-{rule}-{tick_label(tick)}" + ("-dry" if dry_run else "")


def tick_key(batch_id: str) -> str:
    return f"{SWEEP_PREFIX}:{batch_id}"


def scheduled_tick(ctx: dict[str, Any]) -> datetime:
    """The minute arq scheduled this cron job for.

    arq names a unique cron job ``<name>:<scheduled epoch ms>``, the same on every worker; the
    job's score is the fallback (the scheduled time, or the enqueue time if it was late).
    """
    job_id = str(ctx.get("job_id") or "")
    stamp = job_id.rsplit(":", 1)[-1]
    millis = int(stamp) if stamp.isdigit() else int(ctx.get("score") or time.time() * 1000)
    return minute_of(datetime.fromtimestamp(millis / 1000, UTC))


async def claim_tick(redis: Any, batch_id: str, *, ttl_seconds: int) -> bool:
    """True for the one caller that takes this tick; every later caller gets False."""
    holder = f"{socket.gethostname()}:{os.getpid()}"
    return bool(await redis.set(tick_key(batch_id), holder, nx=True, ex=ttl_seconds))


# -- the arq job ---------------------------------------------------------------------------


async def scheduled_sweep(ctx: dict[str, Any], rule_name: str) -> dict[str, Any]:
    """arq cron job body for one rule: run its tick, then the hourly housekeeping."""
    deps: SweepDeps = ctx["sweep"]
    rule = next((r for r in deps.settings.sweeps if r.name == rule_name), None)
    if rule is None:
        log.error("sweep_rule_unknown", rule=rule_name)
        return {}
    report = await sweep_rule(deps, rule, tick=scheduled_tick(ctx), pool=ctx["redis"])
    await housekeep_if_due(deps)
    return {"batch_id": report.batch_id, "ran": report.ran, "items": report.items_selected}


async def sweep_rule(
    deps: SweepDeps,
    rule: SweepRule,
    *,
    tick: datetime,
    pool: ArqRedis,
    dry_run: bool = False,
) -> SweepReport:
    """Run ``rule`` for ``tick`` unless that tick already ran: list, select, queue a batch."""
    dry = dry_run or rule.dry_run
    batch_id = sweep_batch_id(rule.name, tick, dry_run=dry)
    report = SweepReport(rule=rule.name, tick=tick_label(tick), batch_id=batch_id, dry_run=dry)
    ttl = deps.settings.result_ttl_seconds
    with structlog.contextvars.bound_contextvars(rule=rule.name, batch_id=batch_id):
        if not await claim_tick(deps.redis, batch_id, ttl_seconds=ttl):
            log.info("sweep_tick_taken", tick=report.tick)
            report.ran = False
            return report
        spec = BatchSpec(
            batch_id=batch_id,
            seller=rule.seller,
            reason=rule.reason,
            dry_run=dry,
            allow_whole_package=rule.allow_whole_package,
            source=f"sweep {rule.name} {report.tick}",
        )
        try:
            rows = await _select(deps, rule, minute_of(tick), report)
            report.orders_queued = await _queue(deps, pool, spec, rows)
        except LazcancelError as exc:
            # Nothing was queued: free the tick so that a retry may run it.
            await deps.redis.delete(tick_key(batch_id))
            log.error("sweep_failed", error=str(exc), error_type=type(exc).__name__)
            report.error = str(exc)
            return report
        log.info(
            "sweep_queued",
            tick=report.tick,
            orders_listed=report.orders_listed,
            orders=report.orders_queued,
            items=report.items_selected,
            cap_reached=report.cap_reached,
            dry_run=dry,
        )
    return report


async def _queue(deps: SweepDeps, pool: ArqRedis, spec: BatchSpec, rows: list[OrderRow]) -> int:
    store = deps.store
    await store.create_batch(spec)
    try:
        staged = await stage_rows(
            store, spec.batch_id, rows, max_orders=deps.settings.max_batch_orders
        )
    except BaseException:
        await store.discard(spec.batch_id)
        raise
    await queue_chunks(store, pool, spec, orders=staged.orders, rows_rejected=0)
    return staged.orders


# -- choosing the items --------------------------------------------------------------------


async def _select(
    deps: SweepDeps, rule: SweepRule, now: datetime, report: SweepReport
) -> list[OrderRow]:
    seller = deps.settings.seller(rule.seller)
    client = deps.client_for(rule.seller)
    skus = await rule_skus(deps.redis, rule)
    if skus is not None and not skus:
        log.warning("sweep_no_skus", sku_redis_set=rule.sku_redis_set, sku_file=rule.sku_file)
        return []
    local = timezone(timedelta(hours=seller.utc_offset_hours))
    order_ids = await list_candidates(client, rule, now=now.astimezone(local))
    report.orders_listed = len(order_ids)
    picked, report.cap_reached = await pick_items(
        client,
        order_ids,
        rule=rule,
        skus=skus,
        cancellable=deps.settings.cancellable_statuses,
    )
    report.items_selected = sum(len(targets) for _, _, targets in picked)
    if report.cap_reached:
        log.warning("sweep_cap_reached", max_items=rule.max_items)
    rows: list[OrderRow] = []
    for order_id, chosen, _ in picked:
        rows += [
            OrderRow(line=len(rows) + n, order_id=order_id, order_item_id=item_id)
            for n, item_id in enumerate(chosen, 1)
        ]
    return rows


async def rule_skus(redis: Any, rule: SweepRule) -> frozenset[str] | None:
    """The rule's SKUs from all its sources; None when it names no source (every SKU matches).

    A named source that is empty (an empty Redis set) selects nothing, never everything.
    """
    if not (rule.skus or rule.sku_file or rule.sku_redis_set):
        return None
    found = set(rule.skus)
    if rule.sku_file:
        found |= await asyncio.to_thread(read_sku_file, Path(rule.sku_file), rule.name)
    if rule.sku_redis_set:
        found |= set(await redis.smembers(rule.sku_redis_set))
    return frozenset(s.strip() for s in found if s.strip())


def read_sku_file(path: Path, rule: str = "") -> set[str]:
    """One seller SKU per line; blank lines and lines starting with # are ignored."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SettingsError(f"sweep {rule!r}: sku_file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"sweep {rule!r}: sku_file {path} is not readable: {exc}") from None
    lines = (line.strip() for line in text.splitlines())
    return {line for line in lines if line and not line.startswith("#")}


async def list_candidates(client: LazadaClient, rule: SweepRule, *, now: datetime) -> list[str]:
    """Order ids created between ``lookback_days`` and ``min_age_hours`` ago in any of the
    rule's statuses, oldest first, each once."""
    after = now - timedelta(days=rule.lookback_days)
    before = now - timedelta(hours=rule.min_age_hours)
    if before <= after:
        log.warning("sweep_window_empty", lookback_days=rule.lookback_days)
        return []
    found: dict[str, datetime] = {}
    for status in rule.statuses:
        async for order in client.get_orders(
            created_after=after, created_before=before, status=status
        ):
            found.setdefault(order.order_id, order.created_at)
    return sorted(found, key=lambda order_id: found[order_id])


def status_matches(statuses: Collection[str]) -> frozenset[str] | None:
    """Item statuses the rule's GetOrders filters stand for; None for ``all``."""
    wanted: set[str] = set()
    for raw in statuses:
        name = raw.strip().lower()
        if name == "all":
            return None
        wanted |= STATUS_GROUPS.get(name, {name})
    return frozenset(wanted)


async def pick_items(
    client: LazadaClient,
    order_ids: Sequence[str],
    *,
    rule: SweepRule,
    skus: frozenset[str] | None,
    cancellable: Collection[str],
) -> tuple[list[tuple[str, list[str], list[OrderItem]]], bool]:
    """Per order, the items to ask for and every item that would be cancelled with them.

    Orders are taken oldest first until ``max_items`` would be exceeded; returns the picks and
    whether the cap stopped the selection.
    """
    wanted = status_matches(rule.statuses)
    left = rule.max_items
    picked: list[tuple[str, list[str], list[OrderItem]]] = []
    for start in range(0, len(order_ids), CHUNK_SIZE):
        chunk = order_ids[start : start + CHUNK_SIZE]
        items_by_order = await client.get_multiple_order_items(chunk)
        for order_id in chunk:
            chosen, targets = _order_targets(
                order_id, items_by_order.get(order_id) or [], rule, skus, wanted, cancellable
            )
            if len(targets) > rule.max_items and not _splittable(targets):
                # It could never fit: leave it to a person rather than block every later run.
                log.warning("sweep_order_over_cap", order_id=order_id, items=len(targets))
                continue
            if targets and len(targets) > left:
                if not _splittable(targets):
                    return picked, True
                targets = targets[:left]
                chosen = [item.order_item_id for item in targets]
            if targets:
                picked.append((order_id, chosen, targets))
                left -= len(targets)
            if left <= 0:
                return picked, True
    return picked, False


def _order_targets(
    order_id: str,
    items: list[OrderItem],
    rule: SweepRule,
    skus: frozenset[str] | None,
    wanted: frozenset[str] | None,
    cancellable: Collection[str],
) -> tuple[list[str], list[OrderItem]]:
    """The rule's items of one order, and what the flow would cancel for them (package mates
    included when the rule allows whole packages)."""
    matching = {
        item.order_item_id
        for item in items
        if (skus is None or (item.sku or "") in skus)
        and (wanted is None or item.status.strip().lower() in wanted)
    }
    if not matching:
        return [], []
    choice = choose_items(
        order_id,
        items,
        Selection(False, frozenset(matching), frozenset()),
        skus=(),
        cancellable=cancellable,
        allow_whole_package=rule.allow_whole_package,
    )
    chosen = [item.order_item_id for item in choice.targets if item.order_item_id in matching]
    return chosen, choice.targets


def _splittable(targets: list[OrderItem]) -> bool:
    """Unpacked items may be cancelled one by one; a packed package goes as a whole."""
    return all(item.status.strip().lower() in UNPACKED for item in targets)


# -- housekeeping --------------------------------------------------------------------------


async def housekeep_if_due(deps: SweepDeps) -> HousekeepingReport | None:
    """Housekeeping by whichever worker comes first in each hour; None when not due."""
    redis: Any = deps.redis
    if not await redis.set(HOUSEKEEPING_KEY, "1", nx=True, ex=HOUSEKEEPING_EVERY_S):
        return None
    return await housekeep(
        redis, retention_seconds=deps.settings.result_ttl_seconds, now=deps.clock()
    )


async def housekeep(redis: Any, *, retention_seconds: int, now: float) -> HousekeepingReport:
    """Remove batches older than the retention, their index entries, and batch keys that would
    never expire (left by a run that died while staging)."""
    report = HousekeepingReport()
    cutoff = now - retention_seconds
    old: list[str] = await redis.zrangebyscore(BATCH_INDEX, "-inf", cutoff)
    for start in range(0, len(old), 500):
        page = old[start : start + 500]
        report.keys_removed += await _delete_batches(redis, page)
        await redis.zrem(BATCH_INDEX, *page)
    report.batches.extend(old)
    orphans = await _orphans(redis, cutoff)
    if orphans:
        report.keys_removed += int(await redis.delete(*orphans))
    log.info(
        "housekeeping_done",
        batches_removed=len(report.batches),
        batch_ids=report.batches[:LOGGED_IDS],
        keys_removed=report.keys_removed,
        keys_without_ttl=len(orphans),
    )
    return report


async def _delete_batches(redis: Any, batch_ids: Sequence[str]) -> int:
    keys = [f"{PREFIX}:batch:{b}" for b in batch_ids]
    keys += [f"{key}:{part}" for key in keys for part in BATCH_PARTS]
    return int(await redis.delete(*keys)) if keys else 0


async def _orphans(redis: Any, cutoff: float) -> list[str]:
    """Batch keys without a TTL whose batch is not indexed, or indexed before ``cutoff``."""
    found: list[str] = []
    page: list[str] = []
    async for key in redis.scan_iter(match=f"{PREFIX}:batch:*", count=1000):
        page.append(key)
        if len(page) >= 1000:
            found += await _without_ttl(redis, page, cutoff)
            page = []
    if page:
        found += await _without_ttl(redis, page, cutoff)
    return found


async def _without_ttl(redis: Any, keys: list[str], cutoff: float) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.ttl(key)
        ttls = await pipe.execute()
    found: list[str] = []
    for key, ttl in zip(keys, ttls, strict=True):
        if ttl != -1:
            continue
        score = await redis.zscore(BATCH_INDEX, _batch_of(key))
        if score is None or score < cutoff:
            found.append(key)
    return found


def _batch_of(key: str) -> str:
    rest = key[len(f"{PREFIX}:batch:") :]
    head, _, tail = rest.rpartition(":")
    return head if head and tail in BATCH_PARTS else rest
