"""Worker heartbeats, and prompt re-runs of the chunks a dead worker held.

arq starts a killed worker's job again only when its in-progress key expires (job timeout plus
10 s). Here every worker keeps a short-lived heartbeat key and records the jobs it runs; every
worker also looks at the others' and deletes the in-progress key of a job whose worker is gone,
so that arq starts it again at its next poll. arq's own rules (tries, timeouts) are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from arq.constants import in_progress_key_prefix
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RUNNING = "lazcancel:running"
HEARTBEAT_PREFIX = "lazcancel:worker"
# Jobs at the head of the queue looked at per check: arq itself reads no further than this.
QUEUE_HEAD = 200
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)

log = structlog.get_logger(__name__)

# Frees a job only if nobody re-started it since it was seen: same recorded worker (or none),
# and an in-progress key that was not set again (its TTL would have jumped back up).
_RECLAIM = """
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if (owner or '') ~= ARGV[2] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 or ttl > tonumber(ARGV[3]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# Forgets a job's worker only if that worker is still the one recorded.
_FORGET = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def heartbeat_key(worker_id: str) -> str:
    return f"{HEARTBEAT_PREFIX}:{worker_id}"


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Suspect:
    """A job seen held by a dead (or no) worker: reclaimed if it stays so long enough."""

    owner: str
    expires_at: float
    since: float


class Liveness:
    """One worker's heartbeat, its record of running jobs, and its watch over the others.

    ``ttl`` is the heartbeat's lifetime: a worker silent for that long is taken for dead once
    it has stayed silent for another ``ttl``. Beats and checks happen every ``ttl / 3``.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        queue_name: str,
        ttl: float = 15.0,
    ) -> None:
        self.redis: Any = redis
        self.queue_name = queue_name
        self.ttl = ttl
        self.worker_id = new_worker_id()
        self._suspects: dict[str, Suspect] = {}
        self._task: asyncio.Task[None] | None = None
        self._reclaim = redis.register_script(_RECLAIM)
        self._forget = redis.register_script(_FORGET)

    def __repr__(self) -> str:
        return f"Liveness(worker_id={self.worker_id!r}, ttl={self.ttl})"

    async def start(self) -> None:
        await self._beat()
        self._task = asyncio.create_task(self._run(), name="lazcancel-liveness")
        log.info("worker_heartbeat_started", worker_id=self.worker_id, ttl=self.ttl)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(*REDIS_ERRORS):
            await self.redis.delete(heartbeat_key(self.worker_id))

    async def job_started(self, job_id: str) -> None:
        """Record that this worker runs ``job_id``; waits out a short Redis outage."""
        await _patiently(lambda: self.redis.hset(RUNNING, job_id, self.worker_id), self.ttl * 8)

    async def job_ended(self, job_id: str) -> None:
        await _patiently(
            lambda: self._forget(keys=[RUNNING], args=[job_id, self.worker_id]), self.ttl * 8
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._beat()
                await self.check()
            except REDIS_ERRORS as exc:
                # Nothing is decided while Redis is away; suspicions wait for its return.
                log.warning("worker_heartbeat_failed", worker_id=self.worker_id, error=str(exc))

    async def _beat(self) -> None:
        await self.redis.set(heartbeat_key(self.worker_id), "1", px=int(self.ttl * 1000))

    async def check(self) -> list[str]:
        """Reclaim the jobs held too long by dead workers (or none); returns their ids."""
        held = await self._held_jobs()
        alive = await self._alive({owner for owner, _ttl in held.values() if owner})
        now = time.monotonic()
        reclaimed: list[str] = []
        for job_id, (owner, ttl_ms) in held.items():
            if owner in alive:
                self._suspects.pop(job_id, None)
            elif await self._stale(job_id, owner, ttl_ms, now):
                reclaimed.append(job_id)
        for job_id in set(self._suspects) - held.keys():
            del self._suspects[job_id]
        return reclaimed

    async def _held_jobs(self) -> dict[str, tuple[str, int]]:
        """Jobs with an in-progress key: their recorded worker ('' if none) and key TTL (ms)."""
        running: dict[str, str] = await self.redis.hgetall(RUNNING)
        head: list[str] = await self.redis.zrangebyscore(
            self.queue_name, "-inf", time.time() * 1000, start=0, num=QUEUE_HEAD
        )
        jobs = list(dict.fromkeys([*running, *head]))
        if not jobs:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in jobs:
                pipe.pttl(in_progress_key_prefix + job_id)
            ttls: list[int] = await pipe.execute()
        held = {j: (running.get(j, ""), t) for j, t in zip(jobs, ttls, strict=True) if t > 0}
        for job_id in set(running) - held.keys():
            # Finished or reclaimed, but its worker died before forgetting it.
            await self._forget(keys=[RUNNING], args=[job_id, running[job_id]])
        return held

    async def _alive(self, owners: set[str]) -> set[str]:
        if not owners:
            return set()
        ordered = sorted(owners)
        beats = await self.redis.mget([heartbeat_key(o) for o in ordered])
        return {o for o, beat in zip(ordered, beats, strict=True) if beat is not None}

    async def _stale(self, job_id: str, owner: str, ttl_ms: int, now: float) -> bool:
        expires_at = now + ttl_ms / 1000
        seen = self._suspects.get(job_id)
        if seen is None or seen.owner != owner or abs(seen.expires_at - expires_at) > 1.0:
            self._suspects[job_id] = Suspect(owner, expires_at, now)
            return False
        if now - seen.since < self.ttl:
            return False
        del self._suspects[job_id]
        freed = await self._reclaim(
            keys=[in_progress_key_prefix + job_id, RUNNING], args=[job_id, owner, ttl_ms]
        )
        if freed:
            log.warning("job_reclaimed", job_id=job_id, dead_worker=owner or None)
        return bool(freed)


async def _patiently(op: Callable[[], Awaitable[Any]], within: float) -> Any:
    deadline = time.monotonic() + within
    delay = 0.1
    while True:
        try:
            return await op()
        except REDIS_ERRORS as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("redis_unavailable", op="liveness", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
