"""Secrets and buyer data stay out of logs, results, Redis and error texts.

Two full batches with known secret values run in this process: one whose token expires and is
refreshed mid-batch, one whose refresh fails. Every request passes a relay that keeps its
signature, so signatures can be looked for too.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from yarl import URL

from lazada_sandbox import SandboxServer, Scenario
from lazcancel.log import configure_logging
from lazcancel.settings import SellerSettings, Settings
from lazcancel.tokens import token_key
from tests.flow_helpers import creates, item, order, read_batch
from tests.test_tokens import submit, when
from worker.runner import process_batch


@contextlib.asynccontextmanager
async def recording_relay(sb: SandboxServer, sent: list[str]) -> AsyncIterator[str]:
    """The sandbox behind a loopback relay that collects the raw query string of every request
    in ``sent``; yields the relay's API URL."""
    async with aiohttp.ClientSession() as session:

        async def relay(request: web.Request) -> web.Response:
            sent.append(request.query_string)
            target = URL(f"http://{sb.host}:{sb.port}{request.raw_path}", encoded=True)
            headers = {"Content-Type": request.headers.get("Content-Type", "text/plain")}
            body = await request.read()
            async with session.request(request.method, target, data=body, headers=headers) as up:
                answer = await up.read()
                kind = up.headers.get("Content-Type", "application/json")
                status = up.status
            return web.Response(body=answer, status=status, headers={"Content-Type": kind})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", relay)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/rest"
        finally:
            await runner.cleanup()


APP_SECRET = "app-secret-Qw8zX1vB7nM3kL5pR9tY"
ACCESS = "access-token-Hj4Dk8Sl2Fq6Gz0Wx3Cv"
REFRESH = "refresh-token-Tb5Ny7Um1Ie9Op3As6Dd"
BUYER_FIRST, BUYER_LAST = "Wirawan-Pemalang", "Sukmajaya-Tengah"
SIGN = re.compile(r"\b[0-9A-F]{64}\b")


def store(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        order(
            f"6628340{k:08d}",
            item(f"7728340{k:08d}"),
            item(f"8828340{k:08d}"),
            customer_first_name=BUYER_FIRST,
            customer_last_name=BUYER_LAST,
        )
        for k in range(start, start + n)
    ]


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every structlog event, debug included, as the JSON lines a worker writes."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    configure_logging(level="debug", json=True, stream=buffer)
    yield buffer
    structlog.configure(**saved)


async def redis_texts(redis_url: str) -> dict[str, str]:
    """Every key of Redis and its whole value, as text (binary values decoded leniently)."""
    redis = aioredis.Redis.from_url(redis_url)
    found: dict[str, str] = {}
    async for raw_key in redis.scan_iter(count=1000):
        kind = (await redis.type(raw_key)).decode()
        value: Any
        if kind == "string":
            value = await redis.get(raw_key)
        elif kind == "hash":
            value = await redis.hgetall(raw_key)
        elif kind == "list":
            value = await redis.lrange(raw_key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(raw_key)
        else:
            value = await redis.zrange(raw_key, 0, -1, withscores=True)
        found[raw_key.decode(errors="replace")] = repr(value)
    await redis.aclose()
    return found


async def test_no_secret_or_buyer_data_in_logs_results_redis_or_errors(
    make_sandbox: Any,
    redis_url: str,
    log_lines: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    orders = store(120)
    sb = await make_sandbox(
        Scenario.from_dict(
            {
                "app_key": "100001",
                "app_secret": APP_SECRET,
                "sellers": {"default": {"access_token": ACCESS, "refresh_token": REFRESH}},
                "orders": orders + store(20, start=500),
            }
        )
    )
    sent: list[str] = []
    async with recording_relay(sb, sent) as url:
        seller = SellerSettings(
            name="default",
            app_key="100001",
            app_secret=APP_SECRET,
            access_token=ACCESS,
            refresh_token=REFRESH,
            api_url=url,
            auth_url=url,
        )
        settings = Settings(
            sellers={"default": seller}, rate_limit=500.0, confirm_delay=0.02,
            retry_backoff_base=0.01, retry_backoff_cap=0.05,
        )  # fmt: skip
        await submit(settings, redis_url, [o["order_id"] for o in orders], "sec-1")
        refreshed = asyncio.create_task(when(lambda: len(creates(sb)) >= 30, sb.expire_token))
        await process_batch(settings=settings, redis_url=redis_url, batch_id="sec-1")
        await refreshed
        rotated = (
            sb.state.sellers["default"].access_token,
            sb.state.sellers["default"].refresh_token,
        )

        # A second batch whose refresh fails: its errors are texts to search too.
        sb.expire_token(which="both")
        await submit(settings, redis_url, [f"6628340{k:08d}" for k in range(500, 520)], "sec-2")
        await process_batch(settings=settings, redis_url=redis_url, batch_id="sec-2")

    first, second = await read_batch(redis_url, "sec-1"), await read_batch(redis_url, "sec-2")
    assert first.status.counts["cancelled"] == 240
    assert [e.route for e in sb.ledger].count("/auth/token/refresh") == 2
    assert second.status.halted and second.status.halted.startswith("IllegalRefreshToken")
    signatures = {m for q in sent for m in SIGN.findall(q)}
    assert len(signatures) > 200, "every request's signature must have been seen"
    secrets = {APP_SECRET, ACCESS, REFRESH, *rotated}

    texts = {
        "structlog": log_lines.getvalue(),
        "stdlib logging": caplog.text,
        "results": repr([*first.results.values(), *second.results.values()]),
        "halt reason": second.status.halted or "",
        "settings": repr(settings),
    }
    stored = await redis_texts(redis_url)
    tokens = stored.pop(token_key("default"))
    texts |= {f"Redis key {key}": f"{key} {value}" for key, value in stored.items()}
    assert "item_cancelled" in texts["structlog"] and "api_call" in texts["structlog"]
    for where, text in texts.items():
        leaked = [s for s in secrets if s in text] + sorted(signatures & set(SIGN.findall(text)))
        assert not leaked, f"{where} holds a secret"
        for buyer in (BUYER_FIRST, BUYER_LAST, "Example Road"):
            assert buyer not in text, f"{where} holds buyer data"
    # The one place tokens live: the seller's current pair, nothing older, no secret besides.
    assert rotated[0] in tokens and rotated[1] in tokens
    assert not [s for s in (APP_SECRET, ACCESS, REFRESH) if s in tokens]
    assert not SIGN.findall(tokens)
