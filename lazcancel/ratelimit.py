"""Pacing of Lazada calls per API: a steady rate with no burst, and pauses after ApiCallLimit.

The limits hold inside one process and one event loop; nothing here is shared between workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from aiolimiter import AsyncLimiter


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
