"""Shared fixtures: a real redis-server on a free loopback port, flushed for every test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from lazcancel.embedded_redis import RedisServer, free_port

pytest_plugins = ["tests.sandbox_fixtures"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(port=free_port())
    server.start()
    yield server
    server.close()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> AsyncIterator[str]:
    """The URL of a running, empty Redis; restarted first if an earlier test stopped it."""
    redis_server.start()
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    yield redis_server.url
