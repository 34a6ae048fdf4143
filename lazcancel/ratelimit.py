"""Pacing of Lazada calls per API: a steady rate with no burst, and pauses after ApiCallLimit.

LocalLimiter holds inside one process; RedisLimiter shares the rate and the bans of one seller
between every worker process through Redis. Neither knows what the calls are for.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog
from aiolimiter import AsyncLimiter
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RATE_PREFIX = "lazcancel:rate"
BAN_PREFIX = "lazcancel:ban"
# Without Redis each process may use 1/DEFAULT_FALLBACK_SHARE of the rate: a guess at how many
# workers run, erring low.
DEFAULT_FALLBACK_SHARE = 4
# Paced this fraction below the limit: L calls then span 1/(1 - headroom) s, about 40 ms more
# than a second at 0.04, so that delays between the grant and the gateway's clock (scheduling
# on a busy machine, the network) do not put one call too many into a one-second window.
DEFAULT_HEADROOM = 0.04
# A grant taken this late still keeps its place in the schedule, so short wake-up delays cost
# no throughput; it spends part of the headroom's margin, so it stays well below it.
DEFAULT_SLACK_S = 0.005
# The in-process smoother in front of Redis runs this much faster than the limit: a pacer wakes
# a little late each time and never wins that time back, so at exactly the limit it would
# become the limit itself, a few percent below it.
SMOOTHER_FACTOR = 1.5
DEFAULT_PROBE_INTERVAL_S = 1.0
DEFAULT_REDIS_TIMEOUT_S = 1.0

log = structlog.get_logger(__name__)


class Limiter(Protocol):
    """What the client needs from a limiter; the key is the API path (``/orders/get``)."""

    async def acquire(self, api: str) -> None:
        """Wait until a call to ``api`` may start."""

    async def ban(self, api: str, seconds: float) -> None:
        """Lazada answered ApiCallLimit: hold every call to ``api`` for ``seconds``."""


class LocalLimiter:
    """One leaky bucket per API, sized for a single call so that no burst exceeds the rate.

    ``rate_for(api)`` gives the calls per second allowed for that API; it is read once, when
    the API is first used.
    """

    def __init__(self, *, rate_for: Callable[[str], float]) -> None:
        self._rate_for = rate_for
        self._buckets: dict[str, AsyncLimiter] = {}
        self._banned_until: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"LocalLimiter(apis={sorted(self._buckets)})"

    async def acquire(self, api: str) -> None:
        await self._wait_out_ban(api)
        await self._bucket(api).acquire()
        # A ban may have begun while this call queued for its slot.
        await self._wait_out_ban(api)

    async def ban(self, api: str, seconds: float) -> None:
        until = asyncio.get_running_loop().time() + max(0.0, seconds)
        self._banned_until[api] = max(self._banned_until.get(api, 0.0), until)

    def banned_for(self, api: str) -> float:
        """Seconds left on the ban of ``api`` (0 when it is not banned)."""
        remaining = self._banned_until.get(api, 0.0) - asyncio.get_running_loop().time()
        return max(0.0, remaining)

    async def _wait_out_ban(self, api: str) -> None:
        remaining = self.banned_for(api)
        while remaining > 0:
            await asyncio.sleep(remaining)
            # ban() may have been called again meanwhile, extending the pause.
            remaining = self.banned_for(api)

    def _bucket(self, api: str) -> AsyncLimiter:
        bucket = self._buckets.get(api)
        if bucket is None:
            rate = self._rate_for(api)
            if not rate > 0:
                raise ValueError(f"rate limit for {api} must be a positive number, got {rate!r}")
            # Capacity 1 refilled every 1/rate s: at start or after idle, no burst above rate.
            bucket = self._buckets[api] = AsyncLimiter(max_rate=1, time_period=1 / rate)
        return bucket


# GCRA with a burst of one. KEYS: rate key, ban key. ARGV: interval and slack in microseconds.
# Returns {wait_us, banned}: wait_us 0 grants the call; otherwise retry after wait_us.
# Redis's own clock is the one clock every worker shares; numbers go out via %.0f because Lua
# would print a microsecond timestamp in exponent form.
_ACQUIRE = """
local ban = redis.call('PTTL', KEYS[2])
if ban > 0 then return {ban * 1000, 1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat > now then return {tat - now, 0} end
local nxt = math.max(tat, now - tonumber(ARGV[2])) + tonumber(ARGV[1])
local ttl_ms = math.ceil((nxt - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', ttl_ms)
return {0, 0}
"""

# KEYS: ban key. ARGV: ban in milliseconds. A ban only ever grows; the value is its end (epoch ms).
_BAN = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) >= ms then return 0 end
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ms
redis.call('SET', KEYS[1], string.format('%.0f', until_ms), 'PX', ms)
return 1
"""

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


def smoother(rate_for: Callable[[str], float]) -> LocalLimiter:
    """The LocalLimiter to put in front of a RedisLimiter: it spreads this process's callers
    and holds bans seen here; the shared limiter decides the exact rate."""
    return LocalLimiter(rate_for=lambda api: rate_for(api) * SMOOTHER_FACTOR)


def rate_key(seller: str, api: str) -> str:
    return f"{RATE_PREFIX}:{seller}:{api}"


def ban_key(seller: str, api: str) -> str:
    return f"{BAN_PREFIX}:{seller}:{api}"


class RedisLimiter:
    """One seller's per-API rate and bans, shared by every process that uses the same Redis.

    Each grant is decided by a Lua script (GCRA, no burst) on Redis's clock; ``local`` stays in
    front to smooth this process's callers, and only one of them per API asks Redis at a time.
    When Redis does not answer, calls fall back to ``rate / fallback_share`` in this process
    until Redis answers again, retried every ``probe_interval`` seconds.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        seller: str,
        rate_for: Callable[[str], float],
        local: LocalLimiter,
        fallback_share: int = DEFAULT_FALLBACK_SHARE,
        headroom: float = DEFAULT_HEADROOM,
        slack: float = DEFAULT_SLACK_S,
        probe_interval: float = DEFAULT_PROBE_INTERVAL_S,
        timeout: float = DEFAULT_REDIS_TIMEOUT_S,
    ) -> None:
        if fallback_share < 1:
            raise ValueError(f"fallback_share must be at least 1, got {fallback_share}")
        if not 0 <= headroom < 1:
            raise ValueError(f"headroom is a fraction in [0, 1), got {headroom}")
        self._seller = seller
        self._rate_for = rate_for
        self._local = local
        self._fallback_share = fallback_share
        self._fallback = LocalLimiter(rate_for=lambda api: rate_for(api) / fallback_share)
        self._headroom = headroom
        self._slack_us = round(slack * 1e6)
        self._probe_interval = probe_interval
        self._timeout = timeout
        self._acquire_script = redis.register_script(_ACQUIRE)
        self._ban_script = redis.register_script(_BAN)
        self._intervals: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._log = log.bind(seller=seller)

    def __repr__(self) -> str:
        return f"RedisLimiter(seller={self._seller!r}, shared={self.shared})"

    @property
    def shared(self) -> bool:
        """False while Redis is unreachable and the per-process fallback share applies."""
        return self._down_since is None

    def interval(self, api: str) -> float:
        """Seconds between two calls to ``api`` granted by Redis, across all processes."""
        return self._interval_us(api) / 1e6

    async def acquire(self, api: str) -> None:
        await self._local.acquire(api)
        async with self._lock(api):
            while True:
                wait = await self._shared_wait(api)
                if wait is None:
                    await self._fallback.acquire(api)
                    return
                if wait <= 0:
                    return
                await asyncio.sleep(wait)

    async def ban(self, api: str, seconds: float) -> None:
        await self._local.ban(api, seconds)
        await self._fallback.ban(api, seconds)
        ms = max(1, math.ceil(seconds * 1000))
        reply = await self._call_redis(self._ban_script, [ban_key(self._seller, api)], [ms])
        if reply is not None:
            self._log.debug("rate_limit_ban_published", api=api, ban_seconds=seconds)

    async def _shared_wait(self, api: str) -> float | None:
        """Seconds to wait before asking again (0: granted), or None when Redis is down."""
        keys = [rate_key(self._seller, api), ban_key(self._seller, api)]
        reply = await self._call_redis(
            self._acquire_script, keys, [self._interval_us(api), self._slack_us]
        )
        if reply is None:
            return None
        wait_us, banned = int(reply[0]), int(reply[1])
        if banned:
            self._log.debug("rate_limit_ban_honoured", api=api, wait_s=wait_us / 1e6)
        return wait_us / 1e6

    async def _call_redis(self, script: AsyncScript, keys: list[str], args: list[int]) -> Any:
        """Run ``script``; None when Redis is down (or not yet due for another try)."""
        now = asyncio.get_running_loop().time()
        if self._down_since is not None and now < self._next_probe:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                reply = await script(keys=keys, args=args)
        except _REDIS_DOWN as exc:
            self._went_down(now, exc)
            return None
        self._came_back(now)
        return reply

    def _went_down(self, now: float, exc: BaseException) -> None:
        self._next_probe = now + self._probe_interval
        if self._down_since is None:
            self._down_since = now
            self._log.warning(
                "rate_limit_redis_unreachable",
                error=type(exc).__name__,
                fallback_share=self._fallback_share,
            )

    def _came_back(self, now: float) -> None:
        if self._down_since is not None:
            outage = now - self._down_since
            self._down_since = None
            self._log.info("rate_limit_redis_restored", outage_s=round(outage, 3))

    def _interval_us(self, api: str) -> int:
        interval = self._intervals.get(api)
        if interval is None:
            rate = self._rate_for(api)
            if not rate > 0:
                raise ValueError(f"rate limit for {api} must be a positive number, got {rate!r}")
            interval = self._intervals[api] = math.ceil(1e6 / (rate * (1 - self._headroom)))
        return interval

    def _lock(self, api: str) -> asyncio.Lock:
        lock = self._locks.get(api)
        if lock is None:
            lock = self._locks[api] = asyncio.Lock()
        return lock
