"""The batch store against a real redis-server: staging, write-once results, intents."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lazcancel.models import ItemResult, Outcome
from lazcancel.store import BatchSpec, BatchStore, Selection, selection_token
from worker.runtime import connect_redis


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[BatchStore]:
    redis = connect_redis(redis_url)
    yield BatchStore(redis, ttl_seconds=3600)
    await redis.aclose()


async def test_staging_merges_duplicates_and_selections(store: BatchStore) -> None:
    await store.create_batch(BatchSpec(batch_id="b1", seller="default"))
    pairs = [
        ("100", selection_token("1001", None)),
        ("100", selection_token("1002", None)),
        ("100", selection_token("1001", None)),
        ("200", selection_token(None, "RED")),
        ("300", selection_token(None, None)),
        ("300", selection_token("3001", None)),
        ("400", selection_token("4001", None)),
        ("400", selection_token(None, None)),
    ]
    assert await store.stage("b1", pairs) == (4, 2)
    await store.publish("b1", chunks=1, rows_rejected=0)

    chunk = dict(await store.chunk_orders("b1", 0, 50))
    assert list(chunk) == ["100", "200", "300", "400"]
    assert chunk["100"] == Selection(False, frozenset({"1001", "1002"}), frozenset())
    assert chunk["200"].skus == {"RED"}
    assert chunk["300"].whole and chunk["400"].whole
    status = await store.status("b1")
    assert status is not None
    assert (status.orders, status.duplicates, status.state) == (4, 2, "queued")


async def test_results_are_written_once_with_their_counters(store: BatchStore) -> None:
    await store.create_batch(BatchSpec(batch_id="b2", seller="default"))
    first = ItemResult(order_id="1", order_item_id="11", outcome=Outcome.CANCELLED)
    again = ItemResult(order_id="1", order_item_id="11", outcome=Outcome.FAILED, code="x")
    other = ItemResult(order_id="1", order_item_id="12", outcome=Outcome.SKIPPED, code="aborted")
    assert await store.record("b2", [first]) == 1
    assert await store.record("b2", [again, other]) == 1

    assert await store.recorded("b2", ["1:11", "1:12", "1:13"]) == {"1:11", "1:12"}
    kept = await store.result("b2", "1:11")
    assert kept is not None and kept.outcome is Outcome.CANCELLED
    status = await store.status("b2")
    assert status is not None
    assert status.counts == {"cancelled": 1, "would_cancel": 0, "skipped": 1, "failed": 0}
    assert status.codes["skipped"] == {"aborted": 1}
    assert status.items_done == 2


async def test_chunk_completion_counts_each_chunk_once(store: BatchStore) -> None:
    await store.create_batch(BatchSpec(batch_id="b3", seller="default"))
    await store.publish("b3", chunks=2, rows_rejected=0)
    assert await store.chunk_finished("b3", 0) is False
    assert await store.chunk_finished("b3", 0) is False
    assert await store.chunk_finished("b3", 1) is True
    assert await store.chunk_finished("b3", 1) is False
    assert await store.state("b3") == "done"


async def test_intents_block_other_batches_until_the_grace_ends(store: BatchStore) -> None:
    claimed, held = await store.claim_intents(
        seller="s", batch_id="b1", item_ids=["11", "12"], grace_seconds=60
    )
    assert (claimed, held) == (["11", "12"], {})
    claimed, held = await store.claim_intents(
        seller="s", batch_id="b2", item_ids=["12", "13"], grace_seconds=60
    )
    assert (claimed, held) == (["13"], {"12": "b1"})
    claimed, held = await store.claim_intents(
        seller="s", batch_id="b2", item_ids=["12"], grace_seconds=-1
    )
    assert (claimed, held) == (["12"], {})
    assert await store.intent_owners(seller="s", item_ids=["11", "12", "14"]) == {
        "11": "b1",
        "12": "b2",
    }


async def test_abort_only_moves_a_live_batch(store: BatchStore) -> None:
    await store.create_batch(BatchSpec(batch_id="b4", seller="default"))
    await store.publish("b4", chunks=1, rows_rejected=0)
    assert await store.abort("b4") is True
    assert await store.chunk_finished("b4", 0) is True
    assert await store.state("b4") == "aborted"
    assert await store.abort("b4") is False


async def test_records_are_compact_and_messages_kept_once(store: BatchStore) -> None:
    await store.create_batch(BatchSpec(batch_id="b5", seller="default"))
    await store.publish("b5", chunks=1, rows_rejected=0)
    tip = "The order has been cancelled and SKU stock may have been set to 0."
    results = [
        ItemResult(
            order_id="100",
            order_item_id=f"10{n}",
            outcome=Outcome.CANCELLED,
            message=tip,
            status="pending",
            sku="SKU-1",
            request_id=f"req{n}",
            attempts=1,
        )
        for n in range(3)
    ] + [ItemResult(order_id="200", order_item_id=None, outcome=Outcome.FAILED, code="16")]
    assert await store.record("b5", results) == 4

    redis = store.redis
    assert await redis.hlen("lazcancel:batch:b5:msg") == 1
    raw = await redis.hget("lazcancel:batch:b5:items", "100:101")
    assert tip not in raw and len(raw) < 80
    for part in ("items", "msg"):
        assert await redis.ttl(f"lazcancel:batch:b5:{part}") > 0

    back = {r.key: r async for r in store.iter_results("b5", count=2)}
    assert back["100:101"] == ItemResult(
        order_id="100",
        order_item_id="101",
        outcome=Outcome.CANCELLED,
        message=tip,
        status="pending",
        sku="SKU-1",
        request_id="req1",
        attempts=1,
        updated_at=back["100:101"].updated_at,
    )
    assert back["200:"].order_item_id is None and back["200:"].code == "16"
    assert back["200:"].updated_at.endswith("Z")


async def test_finishing_drops_what_only_running_chunks_need(store: BatchStore) -> None:
    await store.create_batch(BatchSpec(batch_id="b6", seller="default"))
    await store.stage("b6", [("100", "*")])
    await store.publish("b6", chunks=1, rows_rejected=0)
    await store.mark_orders_done("b6", 0, ["100"])
    assert await store.orders_done("b6", 0, ["100", "200"]) == {"100"}
    assert await store.redis.ttl("lazcancel:batch:b6:done:0") > 0
    assert await store.chunk_is_finished("b6", 0) is False
    assert await store.chunk_finished("b6", 0) is True
    assert await store.chunk_is_finished("b6", 0) is True
    assert await store.redis.exists("lazcancel:batch:b6:sel", "lazcancel:batch:b6:done:0") == 0
    assert await store.redis.exists("lazcancel:batch:b6:orders") == 1
