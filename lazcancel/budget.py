"""The daily budget of seller cancellations, per seller, counted in Redis across all workers.

It grants at most what is left of the seller's budget for the seller's local day and takes back
what was not used; which items to hold back is the flow's decision, not this module's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
import structlog

from lazcancel.settings import SellerSettings
from lazcancel.store import PREFIX, ride_out_outage

BUDGET_PREFIX = f"{PREFIX}:budget"
# A day's counter must outlive the day in every time zone, and no longer matter after it.
BUDGET_TTL_SECONDS = 2 * 86400
DEFAULT_UTC_OFFSET_HOURS = 8

log = structlog.get_logger(__name__)

# Grants min(wanted, left) in one step, so concurrent workers can never overdraw the day.
# A negative limit means no limit: usage is still counted.
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local grant = want
if limit >= 0 then grant = math.max(0, math.min(want, limit - used)) end
if grant > 0 then
  redis.call('INCRBY', KEYS[1], grant)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return grant
"""

# Gives back at most what the counter holds: a counter never goes below zero.
_RELEASE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local give = math.min(used, tonumber(ARGV[1]))
if give > 0 then redis.call('DECRBY', KEYS[1], give) end
return give
"""


def budget_key(seller: str, day: str) -> str:
    return f"{BUDGET_PREFIX}:{seller}:{day}"


class RedisBudget:
    """The flow's ``Budget``: ``reserve`` before a create, ``release`` what was not sent.

    A seller without ``daily_budget`` is unlimited; its cancellations are counted all the same,
    so that a budget set later in the day starts from the true figure.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        sellers: Mapping[str, SellerSettings],
        clock: Callable[[], float] = time.time,
        ttl_seconds: int = BUDGET_TTL_SECONDS,
    ) -> None:
        # redis-py types async commands as "Awaitable[T] | T", which no await accepts.
        self.redis: Any = redis
        self.sellers = sellers
        self.clock = clock
        self.ttl_seconds = ttl_seconds
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)
        # Reserved by this process and not released, per (seller, day): a release goes back
        # to the day it was taken from, even after the seller's midnight.
        self._held: dict[tuple[str, str], int] = {}

    def limit(self, seller: str) -> int | None:
        found = self.sellers.get(seller)
        return found.daily_budget if found is not None else None

    def day(self, seller: str) -> str:
        """The seller's local date, e.g. ``2026-12-04``."""
        found = self.sellers.get(seller)
        offset = found.utc_offset_hours if found is not None else DEFAULT_UTC_OFFSET_HOURS
        return time.strftime("%Y-%m-%d", time.gmtime(self.clock() + offset * 3600))

    async def reserve(self, seller: str, count: int) -> int:
        """Take up to ``count`` cancellations from today's budget; returns how many were granted."""
        if count <= 0:
            return 0
        day = self.day(seller)
        limit = self.limit(seller)
        key = budget_key(seller, day)
        args = [count, -1 if limit is None else limit, self.ttl_seconds]
        granted = int(await ride_out_outage(lambda: self._reserve(keys=[key], args=args), "budget"))
        if granted:
            self._held[(seller, day)] = self._held.get((seller, day), 0) + granted
        log.debug("budget_reserved", seller=seller, day=day, wanted=count, granted=granted)
        return granted

    async def release(self, seller: str, count: int) -> None:
        """Give back ``count`` reserved cancellations that were not sent or were refused."""
        left = count
        for day in sorted((d for s, d in self._held if s == seller), reverse=True):
            if left <= 0:
                break
            take = min(left, self._held[(seller, day)])
            await self._give_back(seller, day, take)
            left -= take
        if left > 0:
            await self._give_back(seller, self.day(seller), left)

    async def _give_back(self, seller: str, day: str, count: int) -> None:
        held = self._held.get((seller, day), 0) - count
        if held > 0:
            self._held[(seller, day)] = held
        else:
            self._held.pop((seller, day), None)
        key = budget_key(seller, day)
        await ride_out_outage(lambda: self._release(keys=[key], args=[count]), "budget")
        log.debug("budget_released", seller=seller, day=day, count=count)

    async def used(self, seller: str) -> int:
        """Cancellations counted against the seller's budget today."""
        raw = await self.redis.get(budget_key(seller, self.day(seller)))
        return int(raw or 0)
