"""RedisLimiter against a real Redis: one rate and one ban for every process, and the fallback."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from lazcancel.embedded_redis import RedisServer
from lazcancel.ratelimit import (
    DEFAULT_HEADROOM,
    DEFAULT_SLACK_S,
    Limiter,
    LocalLimiter,
    RedisLimiter,
    ban_key,
    rate_key,
    smoother,
)
from worker.runtime import connect_redis

API = "/order/reverse/cancel/validate"
OTHER_API = "/order/reverse/cancel/create"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect_redis(redis_url)
    yield client
    await client.aclose()


def limiter(
    redis: aioredis.Redis, rate: float, *, seller: str = "default", **options: Any
) -> RedisLimiter:
    """A limiter as one worker process builds it: its own LocalLimiter in front."""

    def rate_for(api: str) -> float:
        return rate

    return RedisLimiter(
        redis, seller=seller, rate_for=rate_for, local=LocalLimiter(rate_for=rate_for), **options
    )


async def timed(*calls: Callable[[], Awaitable[object]]) -> float:
    start = time.monotonic()
    await asyncio.gather(*(call() for call in calls))
    return time.monotonic() - start


async def acquire_n(lim: Limiter, api: str, n: int) -> None:
    for _ in range(n):
        await lim.acquire(api)


def test_is_a_limiter_paced_a_little_below_the_rate(redis: aioredis.Redis) -> None:
    lim: Limiter = limiter(redis, 50.0)
    assert isinstance(lim, RedisLimiter)
    assert lim.interval(API) == math.ceil(1e6 / (50.0 * (1 - DEFAULT_HEADROOM))) / 1e6
    assert 0.020 < lim.interval(API) < 0.021


async def test_the_smoother_in_front_is_looser_than_the_shared_rate() -> None:
    local = smoother(lambda api: 20.0)
    elapsed = await timed(lambda: acquire_n(local, API, 4))
    # 3 intervals of 1 / (1.5 * 20) s: it spreads callers, the shared limiter sets the rate.
    assert 0.095 <= elapsed < 0.15


async def test_two_processes_share_one_rate(redis: aioredis.Redis) -> None:
    first, second = limiter(redis, 50.0), limiter(redis, 50.0)
    interval = first.interval(API)

    elapsed = await timed(lambda: acquire_n(first, API, 10), lambda: acquire_n(second, API, 10))

    # Each alone would take 9 intervals; sharing, the 20 grants take 19.
    assert elapsed >= 19 * interval - DEFAULT_SLACK_S - 0.005
    assert elapsed < 19 * interval + 0.25


async def test_sellers_and_apis_have_their_own_rate(redis: aioredis.Redis) -> None:
    shop_a, shop_b = limiter(redis, 50.0, seller="a"), limiter(redis, 50.0, seller="b")
    interval = shop_a.interval(API)

    elapsed = await timed(
        lambda: acquire_n(shop_a, API, 10),
        lambda: acquire_n(shop_a, OTHER_API, 10),
        lambda: acquire_n(shop_b, API, 10),
    )

    assert 9 * interval - DEFAULT_SLACK_S - 0.005 <= elapsed < 9 * interval + 0.15
    keys = set(await redis.keys("lazcancel:rate:*"))
    assert rate_key("a", API) == "lazcancel:rate:a:" + API
    assert keys == {rate_key("a", API), rate_key("a", OTHER_API), rate_key("b", API)}
    # The schedule key lives only as long as it matters.
    assert 0 < await redis.pttl(rate_key("a", API)) <= 1000 + math.ceil(interval * 1000)


async def test_no_burst_after_idle(redis: aioredis.Redis) -> None:
    first, second = limiter(redis, 20.0), limiter(redis, 20.0)
    await first.acquire(API)
    await asyncio.sleep(0.3)

    elapsed = await timed(lambda: acquire_n(first, API, 2), lambda: acquire_n(second, API, 1))

    assert elapsed >= 2 * first.interval(API) - DEFAULT_SLACK_S - 0.005


async def test_a_ban_published_by_one_process_pauses_another(redis: aioredis.Redis) -> None:
    seen_it, other = limiter(redis, 1000.0), limiter(redis, 1000.0)

    await seen_it.ban(API, 0.3)

    assert 200 < await redis.pttl(ban_key("default", API)) <= 300
    until_ms = int(await redis.get(ban_key("default", API)))
    assert abs(until_ms - time.time() * 1000 - 300) < 100
    assert await timed(lambda: other.acquire(OTHER_API)) < 0.05
    waited = await timed(lambda: other.acquire(API), lambda: acquire_n(other, API, 2))
    assert 0.28 <= waited < 0.5


async def test_a_ban_is_only_ever_extended(redis: aioredis.Redis) -> None:
    first, second = limiter(redis, 1000.0), limiter(redis, 1000.0)
    await first.ban(API, 0.6)
    await second.ban(API, 0.1)
    assert await redis.pttl(ban_key("default", API)) > 450


async def test_a_ban_published_while_waiting_is_honoured(redis: aioredis.Redis) -> None:
    waiting, seen_it = limiter(redis, 5.0), limiter(redis, 5.0)
    await waiting.acquire(API)
    start = time.monotonic()
    queued = asyncio.create_task(waiting.acquire(API))
    await asyncio.sleep(0.05)  # the next slot is 0.2 s away

    await seen_it.ban(API, 0.4)
    await queued

    assert time.monotonic() - start >= 0.44


async def test_falls_back_to_a_stricter_share_while_redis_is_down(
    redis: aioredis.Redis, redis_server: RedisServer
) -> None:
    with capture_logs() as logs:
        lim = limiter(redis, 40.0, probe_interval=0.2)
        await acquire_n(lim, API, 2)
        assert lim.shared
        redis_server.stop()
        try:
            # 40/s divided by the default share of 4: 10/s, so 3 intervals of 0.1 s.
            down = await timed(lambda: acquire_n(lim, API, 4))
            assert not lim.shared
            await lim.ban(OTHER_API, 0.2)
            assert await timed(lambda: lim.acquire(OTHER_API)) >= 0.19
        finally:
            redis_server.start()
        await asyncio.sleep(0.25)
        up = await timed(lambda: acquire_n(lim, API, 4))

    assert 0.29 <= down < 0.6
    assert lim.shared
    assert up < 0.2
    events = [e["event"] for e in logs if e["event"].startswith("rate_limit_redis")]
    assert events == ["rate_limit_redis_unreachable", "rate_limit_redis_restored"]
    warning = next(e for e in logs if e["event"] == "rate_limit_redis_unreachable")
    assert warning["log_level"] == "warning"
    assert warning["seller"] == "default"
    assert warning["fallback_share"] == 4


async def test_a_stalled_redis_counts_as_down(redis: aioredis.Redis, redis_url: str) -> None:
    lim = limiter(redis, 1000.0, timeout=0.1, probe_interval=0.1, fallback_share=2)
    await lim.acquire(API)
    admin = aioredis.Redis.from_url(redis_url)
    await admin.execute_command("CLIENT", "PAUSE", "400", "ALL")
    try:
        start = time.monotonic()
        await lim.acquire(API)
        assert time.monotonic() - start < 0.3
        assert not lim.shared
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
    await asyncio.sleep(0.15)
    await lim.acquire(API)
    assert lim.shared


def test_refuses_nonsense_settings(redis: aioredis.Redis) -> None:
    with pytest.raises(ValueError, match="fallback_share must be at least 1, got 0"):
        limiter(redis, 10.0, fallback_share=0)
    with pytest.raises(ValueError, match=r"headroom is a fraction in \[0, 1\), got 1.5"):
        limiter(redis, 10.0, headroom=1.5)
    with pytest.raises(ValueError, match=f"rate limit for {API} must be a positive number"):
        limiter(redis, 0.0).interval(API)
