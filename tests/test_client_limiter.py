"""LocalLimiter: a steady per-API rate with no initial burst, and bans that hold every caller."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from lazcancel.ratelimit import Limiter, LocalLimiter


async def _stamps(limiter: Limiter, api: str, n: int) -> list[float]:
    start = time.monotonic()
    stamps: list[float] = []
    for _ in range(n):
        await limiter.acquire(api)
        stamps.append(time.monotonic() - start)
    return stamps


async def test_no_burst_at_start_calls_are_spaced_by_the_rate() -> None:
    limiter = LocalLimiter(rate_for=lambda api: 20.0)
    stamps = await _stamps(limiter, "/orders/get", 6)
    assert stamps[0] < 0.02
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 0.045 for gap in gaps), gaps


async def test_no_burst_after_idle() -> None:
    limiter = LocalLimiter(rate_for=lambda api: 20.0)
    await limiter.acquire("/orders/get")
    await asyncio.sleep(0.3)
    stamps = await _stamps(limiter, "/orders/get", 3)
    assert stamps[2] - stamps[0] >= 0.09


async def test_concurrent_callers_share_the_rate() -> None:
    limiter = LocalLimiter(rate_for=lambda api: 50.0)
    start = time.monotonic()
    await asyncio.gather(*(limiter.acquire("/order/items/get") for _ in range(10)))
    assert time.monotonic() - start >= 9 / 50 - 0.01


async def test_apis_have_their_own_rate() -> None:
    rates = {"/orders/get": 5.0}
    limiter = LocalLimiter(rate_for=lambda api: rates.get(api, 100.0))
    await limiter.acquire("/orders/get")
    start = time.monotonic()
    for _ in range(5):
        await limiter.acquire("/order/items/get")
    assert time.monotonic() - start < 0.1


async def test_ban_holds_every_acquire_for_that_api_only() -> None:
    limiter = LocalLimiter(rate_for=lambda api: 1000.0)
    await limiter.acquire("/order/reverse/cancel/create")
    await limiter.ban("/order/reverse/cancel/create", 0.25)
    assert limiter.banned_for("/order/reverse/cancel/create") > 0.2

    start = time.monotonic()
    await limiter.acquire("/orders/get")
    assert time.monotonic() - start < 0.05
    await asyncio.gather(*(limiter.acquire("/order/reverse/cancel/create") for _ in range(3)))
    assert time.monotonic() - start >= 0.24
    assert limiter.banned_for("/order/reverse/cancel/create") == 0.0


async def test_a_ban_set_while_waiting_is_honoured() -> None:
    limiter = LocalLimiter(rate_for=lambda api: 10.0)
    await limiter.acquire("/orders/get")
    start = time.monotonic()
    waiter = asyncio.create_task(limiter.acquire("/orders/get"))
    await asyncio.sleep(0.02)  # the waiter is now queued for the next slot, 0.1 s away
    await limiter.ban("/orders/get", 0.3)
    await waiter
    assert time.monotonic() - start >= 0.3


async def test_a_shorter_ban_does_not_cut_a_longer_one() -> None:
    limiter = LocalLimiter(rate_for=lambda api: 1000.0)
    await limiter.ban("/orders/get", 0.3)
    await limiter.ban("/orders/get", 0.05)
    assert limiter.banned_for("/orders/get") > 0.25


async def test_rate_must_be_positive() -> None:
    limiter = LocalLimiter(rate_for=lambda api: 0.0)
    with pytest.raises(ValueError, match="/orders/get must be a positive number"):
        await limiter.acquire("/orders/get")
