"""Start-up and shutdown of what the jobs use: one Redis client, one HTTP session, one client
and limiter per seller. Built once per process, inside its event loop, never at import.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import aiohttp
import redis.asyncio as aioredis

from jobs.cancel import FlowDeps
from jobs.sweep import SweepDeps
from lazcancel.budget import RedisBudget
from lazcancel.client import LazadaClient, RetryPolicy, StaticToken, TokenSource, session_for
from lazcancel.models import TokenSet
from lazcancel.ratelimit import RedisLimiter, smoother
from lazcancel.settings import Settings
from lazcancel.store import BatchStore
from lazcancel.tokens import RedisTokenSource
from worker.liveness import Liveness


@dataclass(kw_only=True)
class Runtime:
    settings: Settings
    redis: aioredis.Redis
    store: BatchStore
    session: aiohttp.ClientSession
    clients: dict[str, LazadaClient] = field(default_factory=dict)
    flow: FlowDeps | None = None
    sweep: SweepDeps | None = None
    liveness: Liveness | None = None

    def client_for(self, seller: str) -> LazadaClient:
        client = self.clients.get(seller)
        if client is None:
            client = self.clients[seller] = self._new_client(seller)
        return client

    def _new_client(self, name: str) -> LazadaClient:
        seller = self.settings.seller(name)
        client = LazadaClient(
            session=self.session,
            api_url=seller.api_url,
            auth_url=seller.auth_url,
            app_key=seller.app_key,
            app_secret=seller.app_secret,
            tokens=self._tokens(name, lambda refresh: client.refresh_token(refresh)),
            limiter=RedisLimiter(
                self.redis,
                seller=name,
                rate_for=self.settings.rate_for,
                local=smoother(self.settings.rate_for),
            ),
            retry=RetryPolicy(
                attempts=self.settings.retry_attempts,
                backoff_base=self.settings.retry_backoff_base,
                backoff_cap=self.settings.retry_backoff_cap,
            ),
            seller=name,
        )
        return client

    def _tokens(self, name: str, exchange: Callable[[str], Awaitable[TokenSet]]) -> TokenSource:
        """Tokens shared through Redis when the seller can refresh; a fixed token otherwise."""
        seller = self.settings.seller(name)
        if seller.refresh_token is None:
            return StaticToken(seller.access_token)
        return RedisTokenSource(
            redis=self.redis,
            seller=name,
            access_token=seller.access_token,
            refresh_token=seller.refresh_token,
            exchange=exchange,
        )

    async def gateway_clock(self, name: str) -> float | None:
        """The gateway's time from the Date header of a plain GET on its base URL, or None."""
        url = self.settings.seller(name).api_url
        try:
            async with self.session.get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                date = response.headers.get("Date")
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None
        try:
            return parsedate_to_datetime(date).timestamp() if date else None
        except (TypeError, ValueError):
            return None

    async def close(self) -> None:
        if self.liveness is not None:
            await self.liveness.stop()
        await self.session.close()
        await self.redis.aclose()


def connect_redis(url: str) -> aioredis.Redis:
    client: aioredis.Redis = aioredis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=5, health_check_interval=30
    )
    return client


async def open_runtime(settings: Settings, *, redis_url: str) -> Runtime:
    redis = connect_redis(redis_url)
    runtime = Runtime(
        settings=settings,
        redis=redis,
        store=BatchStore(redis, ttl_seconds=settings.result_ttl_seconds),
        session=session_for(settings),
    )
    runtime.flow = FlowDeps(
        store=runtime.store,
        client_for=runtime.client_for,
        cancellable=settings.cancellable_statuses,
        order_slots=asyncio.Semaphore(settings.concurrency),
        budget=RedisBudget(redis, sellers=settings.sellers),
        confirm_delay=settings.confirm_delay or 0.5,
        settle_delay=settings.read_timeout,
        gateway_clock=runtime.gateway_clock,
    )
    runtime.sweep = SweepDeps(
        settings=settings,
        redis=redis,
        store=runtime.store,
        client_for=runtime.client_for,
    )
    return runtime
