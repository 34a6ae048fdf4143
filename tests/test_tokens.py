"""Tokens shared through Redis: one refresh for every worker; a failed refresh stops calls."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from lazada_sandbox import SandboxServer
from lazcancel.errors import AuthError, ConfigurationError
from lazcancel.models import Outcome, TokenSet
from lazcancel.settings import Settings
from lazcancel.store import BatchSpec
from lazcancel.tokens import RedisTokenSource, token_key
from tests.flow_helpers import (
    creates,
    item,
    order,
    read_batch,
    rows,
    scenario,
    settings_for,
)
from worker.runner import process_batch, submit_batch

REFRESH = "/auth/token/refresh"


def refreshable(sb: SandboxServer, **overrides: Any) -> Settings:
    """Settings whose seller can refresh, on the sandbox's own auth route."""
    base = settings_for(sb, **overrides)
    seller = dataclasses.replace(
        base.sellers["default"],
        refresh_token=sb.scenario.sellers["default"].refresh_token,
        auth_url=sb.url,
    )
    return dataclasses.replace(base, sellers={"default": seller})


def store_of(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [order(f"6628340{n_:08d}", item(f"7728340{n_:08d}")) for n_ in range(start, start + n)]


async def when(condition: Callable[[], bool], then: Callable[[], None]) -> None:
    """Run ``then`` as soon as ``condition`` holds; the sandbox has no event to wait on."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    then()


async def two_workers(settings: Settings, redis_url: str, batch_id: str) -> None:
    """Two independent runtimes (own clients, own token sources): they share only Redis."""
    await asyncio.gather(
        process_batch(settings=settings, redis_url=redis_url, batch_id=batch_id),
        process_batch(settings=settings, redis_url=redis_url, batch_id=batch_id),
    )


async def submit(settings: Settings, redis_url: str, order_ids: list[str], batch_id: str) -> None:
    spec = BatchSpec(batch_id=batch_id, seller="default")
    await submit_batch(settings=settings, redis_url=redis_url, spec=spec, rows=rows(*order_ids))


async def test_token_expiring_mid_batch_is_refreshed_once_for_every_worker(
    make_sandbox: Any, redis_url: str
) -> None:
    orders = store_of(200)
    sb = await make_sandbox(scenario(*orders))
    settings = refreshable(sb)
    await submit(settings, redis_url, [o["order_id"] for o in orders], "tok-1")

    # Expire the token once four chunks are under way: 40 creates of 200 went out.
    expiry = asyncio.create_task(when(lambda: len(creates(sb)) >= 40, sb.expire_token))
    await two_workers(settings, redis_url, "tok-1")
    await expiry

    run = await read_batch(redis_url, "tok-1")
    assert run.status.state == "done"
    assert run.status.counts["cancelled"] == 200
    assert [e.route for e in sb.ledger].count(REFRESH) == 1
    rejected = [e for e in sb.ledger if e.code == "IllegalAccessToken"]
    assert len(rejected) >= 2, "several callers must have met the expired token"
    assert all(sb.creates_for(o["items"][0]["order_item_id"]) == 1 for o in orders)

    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    stored = await redis.hgetall(token_key("default"))
    await redis.aclose()
    seller = sb.state.sellers["default"]
    assert (stored["access"], stored["refresh"]) == (seller.access_token, seller.refresh_token)
    assert "failed" not in stored


async def test_failed_refresh_fails_the_sellers_items_and_stops_calling(
    make_sandbox: Any, redis_url: str
) -> None:
    orders = store_of(200)
    sb = await make_sandbox(scenario(*orders))
    settings = refreshable(sb)
    await submit(settings, redis_url, [o["order_id"] for o in orders], "tok-2")

    expiry = asyncio.create_task(
        when(lambda: len(creates(sb)) >= 40, lambda: sb.expire_token(which="both"))
    )
    await two_workers(settings, redis_url, "tok-2")
    await expiry

    run = await read_batch(redis_url, "tok-2")
    assert run.status.state == "done"
    assert run.status.halted and run.status.halted.startswith("IllegalRefreshToken")
    assert len(run.results) == 200
    by_code: dict[str | None, int] = {}
    for result in run.results.values():
        by_code[result.code] = by_code.get(result.code, 0) + 1
        cancels = sb.creates_for(result.order_item_id or "")
        if result.outcome is Outcome.CANCELLED:
            assert cancels == 1
        elif result.code == "unconfirmed":
            # Created before the token died, never read back since: said as it is.
            assert "re-reading the item failed (IllegalRefreshToken" in (result.message or "")
            assert cancels == 1
        else:
            assert (result.outcome, result.code, cancels) == (
                Outcome.FAILED,
                "IllegalRefreshToken",
                0,
            )
    assert by_code.get("IllegalRefreshToken", 0) >= 100
    routes = [e.route for e in sb.ledger]
    assert routes.count(REFRESH) == 1
    after = sb.ledger[routes.index(REFRESH) + 1 :]
    # Only callers that held the old token when the refresh failed: one call each at most,
    # none of which got through.
    assert all(e.code == "IllegalAccessToken" for e in after)
    assert len(after) <= 2 * settings.concurrency

    # A later batch of the same seller makes no call at all: the failure is remembered.
    calls = len(sb.ledger)
    more = store_of(3, start=500)
    await submit(settings, redis_url, [o["order_id"] for o in more], "tok-3")
    await process_batch(settings=settings, redis_url=redis_url, batch_id="tok-3")
    later = await read_batch(redis_url, "tok-3")
    assert len(sb.ledger) == calls
    assert {r.code for r in later.results.values()} == {"IllegalRefreshToken"}
    assert all(r.outcome is Outcome.FAILED for r in later.results.values())


async def test_new_tokens_in_the_settings_clear_a_remembered_failure(redis_url: str) -> None:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    exchanges: list[str] = []

    async def refused(refresh: str) -> TokenSet:
        exchanges.append(refresh)
        raise ConfigurationError("The specified refresh token is invalid or expired",
                                 code="IllegalRefreshToken")  # fmt: skip

    old = RedisTokenSource(
        redis=redis, seller="s1", access_token="a-old", refresh_token="r-old", exchange=refused
    )
    assert await old.access_token() == "a-old"
    try:
        await old.refresh("a-old")
    except AuthError as exc:
        assert exc.code == "IllegalRefreshToken"
        assert "a-old" not in str(exc) and "r-old" not in str(exc)
    else:
        raise AssertionError("a refused refresh must raise")
    try:
        await old.access_token()
    except AuthError:
        pass
    else:
        raise AssertionError("a remembered failure must stop every later call")
    assert exchanges == ["r-old"]

    async def granted(refresh: str) -> TokenSet:
        exchanges.append(refresh)
        return TokenSet(access_token="a-3", refresh_token="r-3", expires_in=60,
                        refresh_expires_in=600)  # fmt: skip

    renewed = RedisTokenSource(
        redis=redis, seller="s1", access_token="a-new", refresh_token="r-new", exchange=granted
    )
    assert await renewed.access_token() == "a-new"
    assert await renewed.refresh("a-new") == "a-3"
    # A worker still holding the old token gets the new one without a second exchange.
    assert await renewed.refresh("a-new") == "a-3"
    assert exchanges == ["r-old", "r-new"]
    await redis.aclose()
