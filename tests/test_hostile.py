"""Hostile and broken input: oversized batches, and gateway answers that are huge, deeply
nested, or carry ids no float can hold."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from jobs.enqueue import QUEUE_NAME, BatchTooLarge
from lazcancel.models import Outcome
from lazcancel.orders_file import OrderRow
from lazcancel.settings import Settings
from lazcancel.store import BatchSpec
from tests.flow_helpers import creates, item, order, rows, run_batch, scenario, settings_for
from worker.runner import submit_batch

# Beyond 2**53: a float (or a JavaScript number) would turn these into other ids.
BIG_ORDER, BIG_ITEM = "12345678901234567890", "12345678901234567891"
NEAR_ORDER, NEAR_ITEM = "9007199254740993", "9007199254740995"


async def test_batch_beyond_the_limit_is_refused_and_nothing_staged_remains(
    make_sandbox: Any, redis_url: str
) -> None:
    sb = await make_sandbox(scenario())
    settings = dataclasses.replace(settings_for(sb), max_batch_orders=1500)
    many = [OrderRow(line=n, order_id=f"{6628340052000 + n}") for n in range(1, 2501)]

    with pytest.raises(BatchTooLarge) as refused:
        await submit_batch(
            settings=settings,
            redis_url=redis_url,
            spec=BatchSpec(batch_id="too-big", seller="default"),
            rows=many,
        )

    assert "1500" in str(refused.value) and "max_batch_orders" in str(refused.value)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    left = [key async for key in redis.scan_iter("lazcancel:batch:*")]
    indexed = await redis.zrange("lazcancel:batches", 0, -1)
    queued = await redis.zcard(QUEUE_NAME)
    await redis.aclose()
    assert (left, indexed, queued) == ([], [], 0)
    assert sb.ledger == []


async def test_ids_beyond_2_to_the_53_stay_exact_end_to_end(
    make_sandbox: Any, redis_url: str
) -> None:
    sb = await make_sandbox(
        scenario(order(BIG_ORDER, item(BIG_ITEM)), order(NEAR_ORDER, item(NEAR_ITEM)))
    )
    run = await run_batch(settings_for(sb), redis_url, rows(BIG_ORDER, NEAR_ORDER))

    assert run.of(BIG_ORDER, BIG_ITEM).outcome is Outcome.CANCELLED
    assert run.of(NEAR_ORDER, NEAR_ITEM).outcome is Outcome.CANCELLED
    assert set(run.results) == {f"{BIG_ORDER}:{BIG_ITEM}", f"{NEAR_ORDER}:{NEAR_ITEM}"}
    sent = sorted(json.loads(e.params["order_item_id_list"]) for e in creates(sb))
    assert sent == [[BIG_ITEM], [NEAR_ITEM]]
    assert sb.creates_for(BIG_ITEM) == sb.creates_for(NEAR_ITEM) == 1


@contextlib.asynccontextmanager
async def gateway_answering(body: bytes, content_type: str) -> AsyncIterator[str]:
    """A loopback gateway whose every answer is ``body``; yields its API URL."""

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/rest/{api:.+}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/rest"
    finally:
        await runner.cleanup()


def against(settings: Settings, url: str) -> Settings:
    seller = dataclasses.replace(settings.sellers["default"], api_url=url, auth_url=url)
    return dataclasses.replace(settings, sellers={"default": seller}, retry_attempts=2)


async def test_huge_answer_fails_the_order_with_a_short_clear_message(
    make_sandbox: Any, redis_url: str
) -> None:
    settings = settings_for(await make_sandbox(scenario()))
    junk = b"<html>" + b"x" * (32 * 1024 * 1024) + b"</html>"
    async with gateway_answering(junk, "text/html") as url:
        run = await run_batch(against(settings, url), redis_url, rows("662834005291234"))

    failed = run.of("662834005291234")
    assert (failed.outcome, failed.code) == (Outcome.FAILED, "upstream_error")
    assert "byte cap" in (failed.message or "")
    # The answer is summarised, never copied into results or logs.
    assert len(failed.message or "") < 300
    assert run.status.state == "done"


async def test_deeply_nested_answer_fails_the_order_and_the_run_goes_on(
    make_sandbox: Any, redis_url: str
) -> None:
    settings = settings_for(await make_sandbox(scenario()))
    depth = 200_000
    nested = b'{"code":"0","request_id":"r1","data":' + b"[" * depth + b"]" * depth + b"}"
    async with gateway_answering(nested, "application/json") as url:
        run = await run_batch(
            against(settings, url), redis_url, rows("662834005291234", "662834005291235")
        )

    assert run.status.state == "done"
    assert {r.outcome for r in run.results.values()} == {Outcome.FAILED}
    # The JSON decoder gives up on the depth; the order fails, the worker does not.
    assert {r.code for r in run.results.values()} == {"upstream_error"}
    assert all("nested too deeply" in (r.message or "") for r in run.results.values())
    assert len(run.results) == 2
    assert all(len(r.message or "") < 300 for r in run.results.values())
