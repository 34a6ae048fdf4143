"""Seller tokens shared through Redis, so that every worker refreshes an expired token once.

It implements the client's TokenSource; it does not call Lazada itself but through the refresh
function it is given. The token pair of a seller lives only in ``lazcancel:token:{seller}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import structlog

from lazcancel.errors import AuthError, LazadaError, TransientError
from lazcancel.models import TokenSet
from lazcancel.store import ride_out_outage

PREFIX = "lazcancel:token"
REFRESH_FAILED_CODE = "IllegalRefreshToken"

log = structlog.get_logger(__name__)

# Seeds the pair from settings unless Redis already holds a pair grown from the same seed:
# new tokens in the settings (a re-authorised seller) replace the pair and clear a failure.
_SEED = """
if redis.call('HGET', KEYS[1], 'seed') ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'seed', ARGV[1], 'access', ARGV[2], 'refresh', ARGV[3])
  redis.call('HDEL', KEYS[1], 'failed')
end
return 1
"""

# Deletes the lock only while this refresher still holds it.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def token_key(seller: str) -> str:
    return f"{PREFIX}:{seller}"


def _fingerprint(access: str, refresh: str) -> str:
    """Tells seeds apart without storing them: a digest, never the tokens themselves."""
    return hashlib.sha256(f"{access}\0{refresh}".encode()).hexdigest()[:24]


class RedisTokenSource:
    """One seller's tokens in Redis; one refresher at a time across every worker process.

    ``exchange`` turns a refresh token into a new pair (``LazadaClient.refresh_token``). When
    it fails for good, the failure is stored and every worker stops calling for the seller.
    """

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        seller: str,
        access_token: str,
        refresh_token: str,
        exchange: Callable[[str], Awaitable[TokenSet]],
        lock_seconds: float = 30.0,
        poll_seconds: float = 0.05,
        outage_seconds: float = 120.0,
    ) -> None:
        self._redis: Any = redis
        self._seller = seller
        self._seed = (access_token, refresh_token)
        self._exchange = exchange
        self._lock_seconds = lock_seconds
        self._poll_seconds = poll_seconds
        self._outage_seconds = outage_seconds
        self._key = token_key(seller)
        self._lock_key = f"{self._key}:lock"
        self._seeded = False

    def __repr__(self) -> str:
        return f"RedisTokenSource(seller={self._seller!r})"

    async def access_token(self) -> str:
        """The seller's current token; AuthError once a refresh has failed for good."""
        access, _refresh, failed = await self._read()
        if failed is not None:
            raise self._failure(failed)
        return access

    async def refresh(self, stale_token: str) -> str:
        """A token newer than ``stale_token``: refreshed here, or by whoever holds the lock."""
        deadline = time.monotonic() + 2 * self._lock_seconds
        while True:
            access, _refresh, failed = await self._read()
            if failed is not None:
                raise self._failure(failed)
            if access != stale_token:
                return access
            owner = await self._lock()
            if owner is not None:
                try:
                    return await self._refresh_locked(stale_token)
                finally:
                    await self._unlock(owner)
            if time.monotonic() > deadline:
                raise TransientError(
                    f"seller {self._seller}: waited {2 * self._lock_seconds:.0f} s for another "
                    "worker to refresh the access token",
                    code="token_refresh_timeout",
                )
            await asyncio.sleep(self._poll_seconds)

    async def _lock(self) -> str | None:
        """Take the refresh lock; its short TTL frees it if the holder dies mid-refresh."""
        owner = secrets.token_hex(8)
        ttl_ms = int(self._lock_seconds * 1000)
        taken = await self._redis_op(
            lambda: self._redis.set(self._lock_key, owner, nx=True, px=ttl_ms)
        )
        return owner if taken else None

    async def _unlock(self, owner: str) -> None:
        await self._redis_op(lambda: self._redis.eval(_UNLOCK, 1, self._lock_key, owner))

    async def _refresh_locked(self, stale_token: str) -> str:
        # The previous holder may have refreshed, or failed, since this worker last looked.
        access, refresh, failed = await self._read()
        if failed is not None:
            raise self._failure(failed)
        if access != stale_token:
            return access
        try:
            pair = await self._exchange(refresh)
        except TransientError:
            raise
        except LazadaError as exc:
            return await self._refresh_failed(refresh, exc)
        await self._redis_op(
            lambda: self._redis.hset(
                self._key, mapping={"access": pair.access_token, "refresh": pair.refresh_token}
            )
        )
        log.info("token_refreshed", seller=self._seller, expires_in=pair.expires_in)
        return pair.access_token

    async def _refresh_failed(self, used_refresh: str, exc: LazadaError) -> str:
        access, refresh, _failed = await self._read()
        if refresh != used_refresh:
            # Another refresher rotated the pair while the lock had lapsed: use its token.
            return access
        reason = f"{exc.code}: {exc.message}"
        await self._redis_op(lambda: self._redis.hset(self._key, "failed", reason))
        log.error("token_refresh_failed", seller=self._seller, code=exc.code, error=exc.message)
        raise self._failure(reason)

    def _failure(self, reason: str) -> AuthError:
        code, _, message = reason.partition(": ")
        return AuthError(
            f"seller {self._seller}: the access token expired and refreshing it failed "
            f"({message or code}); re-authorise the seller and update its tokens",
            code=code or REFRESH_FAILED_CODE,
            api="/auth/token/refresh",
        )

    async def _read(self) -> tuple[str, str, str | None]:
        if not self._seeded:
            access, refresh = self._seed
            await self._redis_op(
                lambda: self._redis.eval(
                    _SEED, 1, self._key, _fingerprint(access, refresh), access, refresh
                )
            )
            self._seeded = True
        values = await self._redis_op(
            lambda: self._redis.hmget(self._key, ["access", "refresh", "failed"])
        )
        access, refresh, failed = values
        if access is None or refresh is None:
            # The pair vanished (Redis lost its data): start again from the settings.
            self._seeded = False
            return await self._read()
        return str(access), str(refresh), failed

    async def _redis_op(self, op: Callable[[], Awaitable[Any]]) -> Any:
        return await ride_out_outage(op, "token", outage_seconds=self._outage_seconds)
