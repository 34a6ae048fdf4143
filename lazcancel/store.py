"""Batches, their order lists and per-item results in Redis: the one home of every key prefix.

Key schema (``{b}`` is a batch id, ``{s}`` a seller name), every key under ``lazcancel:``:

- ``batch:{b}`` hash: the batch's settings, state and counters (``n:<outcome>``,
  ``c:<outcome>:<code>``, ``items_done``, ``chunks_done``).
- ``batch:{b}:orders`` list: the order ids, de-duplicated, in file order.
- ``batch:{b}:sel`` hash: order id -> selection (``i:<item id>`` / ``s:<sku>`` tokens); an
  order without an entry is a whole order. Whole orders are kept as ``*`` while staging only.
- ``batch:{b}:items`` hash: ``<order id>:<item id>`` -> result record (a compact JSON array),
  written once.
- ``batch:{b}:msg`` hash: message reference -> message text, each distinct text once.
- ``batch:{b}:done:{chunk}`` set: order ids of an unfinished chunk whose items all have a
  result (a chunk stopped half-way resumes with the rest).
- ``batch:{b}:chunks`` set: indexes of the chunks that have finished.
- ``batches`` sorted set: batch ids by creation time (housekeeping).
- ``intent:{s}:{item id}`` string: ``<batch id> <epoch>``, set before a cancel is sent and
  dropped once a re-read confirms it.

Other modules keep their own keys under the same prefix: ``rate:`` and ``ban:``
(lazcancel.ratelimit), ``token:`` (lazcancel.tokens), ``budget:`` (lazcancel.budget),
``sweep:`` and ``housekeeping`` (jobs.sweep), ``worker:`` (worker.liveness).

Everything of a batch expires after the retention time. This module knows nothing about Lazada.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lazcancel.models import ItemResult, Outcome

PREFIX = "lazcancel"
BATCH_INDEX = f"{PREFIX}:batches"
WHOLE_ORDER = "*"
BATCH_PARTS = ("orders", "sel", "items", "msg", "chunks")

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Merges one selection token into an order's selection; appends new orders to the list.
_STAGE = """
local new, dup = 0, 0
for i = 1, #ARGV, 2 do
  local order, token = ARGV[i], ARGV[i + 1]
  local cur = redis.call('HGET', KEYS[2], order)
  if not cur then
    redis.call('HSET', KEYS[2], order, token)
    redis.call('RPUSH', KEYS[1], order)
    new = new + 1
  elseif cur == '*' then
    dup = dup + 1
  elseif token == '*' then
    redis.call('HSET', KEYS[2], order, '*')
  elseif string.find(' ' .. cur .. ' ', ' ' .. token .. ' ', 1, true) then
    dup = dup + 1
  else
    redis.call('HSET', KEYS[2], order, cur .. ' ' .. token)
  end
end
redis.call('HINCRBY', KEYS[3], 'orders', new)
redis.call('HINCRBY', KEYS[3], 'duplicates', dup)
return {new, dup}
"""

# Writes each record once, counting it in the same step, and keeps each distinct message once
# in the batch's message hash; returns how many records were new.
_RECORD = """
local added = 0
for i = 1, #ARGV - 1, 6 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    added = added + 1
    redis.call('HINCRBY', KEYS[2], 'n:' .. ARGV[i + 2], 1)
    redis.call('HINCRBY', KEYS[2], 'c:' .. ARGV[i + 2] .. ':' .. ARGV[i + 3], 1)
    if ARGV[i + 4] ~= '' then redis.call('HSETNX', KEYS[3], ARGV[i + 4], ARGV[i + 5]) end
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[2], 'items_done', added)
  redis.call('HSET', KEYS[2], 'updated_at', ARGV[#ARGV])
  -- Keys born after the batch was published take the batch's remaining lifetime.
  local ttl = redis.call('TTL', KEYS[2])
  for k = 1, 3, 2 do
    if ttl > 0 and redis.call('TTL', KEYS[k]) == -1 then redis.call('EXPIRE', KEYS[k], ttl) end
  end
end
return added
"""

# Claims cancel intents: free ones, and ones older than ARGV[3] seconds (their cancel did
# not take effect). Returns the claimed indexes and, for the rest, index and holder.
_CLAIM = """
local claimed, held = {}, {}
local now = tonumber(ARGV[2])
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  local take = not cur
  if cur then
    local at = string.match(cur, ' (%S+)$')
    take = now - tonumber(at or '0') > tonumber(ARGV[3])
  end
  if take then
    redis.call('SET', KEYS[i], ARGV[1] .. ' ' .. ARGV[2], 'EX', ARGV[4])
    table.insert(claimed, i)
  else
    table.insert(held, i)
    table.insert(held, cur)
  end
end
return {claimed, held}
"""


async def ride_out_outage(
    op: Callable[[], Awaitable[T]], what: str, *, outage_seconds: float = 120.0
) -> T:
    """Run ``op``, retrying through a Redis restart of up to ``outage_seconds``."""
    deadline = time.monotonic() + outage_seconds
    delay = 0.1
    while True:
        try:
            return await op()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("redis_unavailable", op=what, error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def batch_key(batch_id: str) -> str:
    return f"{PREFIX}:batch:{batch_id}"


def done_key(batch_id: str, index: int) -> str:
    return f"{batch_key(batch_id)}:done:{index}"


def intent_key(seller: str, order_item_id: str) -> str:
    return f"{PREFIX}:intent:{seller}:{order_item_id}"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSpec:
    """What a batch asks for; stored in the batch hash, read by every chunk job."""

    batch_id: str
    seller: str
    reason: str = "Out of Stock"
    skus: tuple[str, ...] = ()
    dry_run: bool = False
    allow_whole_package: bool = False
    source: str = ""

    def to_hash(self) -> dict[str, str]:
        values = asdict(self)
        values["skus"] = json.dumps(list(self.skus))
        values["dry_run"] = "1" if self.dry_run else "0"
        values["allow_whole_package"] = "1" if self.allow_whole_package else "0"
        return {k: str(v) for k, v in values.items()}

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> BatchSpec:
        return cls(
            batch_id=raw["batch_id"],
            seller=raw["seller"],
            reason=raw.get("reason", "Out of Stock"),
            skus=tuple(json.loads(raw.get("skus", "[]"))),
            dry_run=raw.get("dry_run") == "1",
            allow_whole_package=raw.get("allow_whole_package") == "1",
            source=raw.get("source", ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchStatus:
    spec: BatchSpec
    state: str
    orders: int
    chunks: int
    chunks_done: int
    items_done: int
    rows_rejected: int
    duplicates: int
    counts: dict[str, int]
    codes: dict[str, dict[str, int]]
    created_at: str
    updated_at: str
    halted: str | None

    @property
    def finished(self) -> bool:
        return self.state in {"done", "aborted"}


@dataclass(frozen=True, slots=True)
class Selection:
    """Which items of one order the batch targets."""

    whole: bool
    item_ids: frozenset[str]
    skus: frozenset[str]

    @classmethod
    def parse(cls, raw: str) -> Selection:
        if raw == WHOLE_ORDER:
            return cls(True, frozenset(), frozenset())
        tokens = raw.split(" ")
        items = frozenset(t[2:] for t in tokens if t.startswith("i:"))
        skus = frozenset(t[2:] for t in tokens if t.startswith("s:"))
        return cls(False, items, skus)


def selection_token(order_item_id: str | None, sku: str | None) -> str:
    if order_item_id:
        return f"i:{order_item_id}"
    if sku:
        # A space would split the token list; SKUs with spaces are matched with it folded.
        return "s:" + sku.replace(" ", "\u00a0")
    return WHOLE_ORDER


class BatchStore:
    """Async access to batches and results. Writes retry while Redis is briefly away."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ttl_seconds: int = 30 * 24 * 3600,
        outage_seconds: float = 120.0,
    ) -> None:
        # redis-py types async commands as "Awaitable[T] | T", which no await accepts.
        self.redis: Any = redis
        self.ttl = ttl_seconds
        self.outage_seconds = outage_seconds
        self._stage = redis.register_script(_STAGE)
        self._record = redis.register_script(_RECORD)
        self._claim = redis.register_script(_CLAIM)

    async def _retrying(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        return await ride_out_outage(op, what, outage_seconds=self.outage_seconds)

    # -- batches ---------------------------------------------------------------------------

    async def create_batch(self, spec: BatchSpec) -> None:
        now = utc_now()
        fields = spec.to_hash() | {
            "state": "staging",
            "created_at": now,
            "updated_at": now,
            "orders": "0",
            "duplicates": "0",
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(batch_key(spec.batch_id), mapping=fields)
            pipe.expire(batch_key(spec.batch_id), self.ttl)
            pipe.zadd(BATCH_INDEX, {spec.batch_id: time.time()})
            await pipe.execute()

    async def stage(self, batch_id: str, pairs: Sequence[tuple[str, str]]) -> tuple[int, int]:
        """Add (order id, selection token) pairs; returns (new orders, duplicate rows)."""
        if not pairs:
            return 0, 0
        base = batch_key(batch_id)
        args = [v for pair in pairs for v in pair]
        new, dup = await self._stage(keys=[f"{base}:orders", f"{base}:sel", base], args=args)
        return int(new), int(dup)

    async def publish(self, batch_id: str, *, chunks: int, rows_rejected: int) -> None:
        """Make a staged batch visible as queued; every key gets the retention TTL."""
        base = batch_key(batch_id)
        await self._prune_whole_orders(f"{base}:sel")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                base,
                mapping={
                    "state": "queued",
                    "chunks": chunks,
                    "chunks_done": 0,
                    "items_done": 0,
                    "rows_rejected": rows_rejected,
                },
            )
            for key in (base, *(f"{base}:{part}" for part in BATCH_PARTS)):
                pipe.expire(key, self.ttl)
            await pipe.execute()

    async def _prune_whole_orders(self, key: str, page: int = 2000) -> None:
        """Drop the ``*`` entries that staging used to merge duplicates: most orders are whole,
        and an order without an entry reads as whole."""
        whole: list[str] = []
        async for order, selection in self.redis.hscan_iter(key, count=page):
            if selection == WHOLE_ORDER:
                whole.append(order)
            if len(whole) >= page:
                await self.redis.hdel(key, *whole)
                whole = []
        if whole:
            await self.redis.hdel(key, *whole)

    async def finish_empty(self, batch_id: str) -> None:
        await self.redis.hset(
            batch_key(batch_id), mapping={"state": "done", "finished_at": utc_now()}
        )

    async def discard(self, batch_id: str) -> None:
        base = batch_key(batch_id)
        await self.redis.delete(base, *(f"{base}:{part}" for part in BATCH_PARTS))
        await self.redis.zrem(BATCH_INDEX, batch_id)

    async def spec(self, batch_id: str) -> BatchSpec | None:
        raw = await self._retrying(lambda: self.redis.hgetall(batch_key(batch_id)), "spec")
        return BatchSpec.from_hash(raw) if raw else None

    async def status(self, batch_id: str) -> BatchStatus | None:
        raw: dict[str, str] = await self.redis.hgetall(batch_key(batch_id))
        if not raw:
            return None
        counts = {o.value: int(raw.get(f"n:{o.value}", 0)) for o in Outcome}
        codes: dict[str, dict[str, int]] = {}
        for key, value in raw.items():
            if key.startswith("c:"):
                _, outcome, code = key.split(":", 2)
                codes.setdefault(outcome, {})[code] = int(value)
        return BatchStatus(
            spec=BatchSpec.from_hash(raw),
            state=raw.get("state", "unknown"),
            orders=int(raw.get("orders", 0)),
            chunks=int(raw.get("chunks", 0)),
            chunks_done=int(raw.get("chunks_done", 0)),
            items_done=int(raw.get("items_done", 0)),
            rows_rejected=int(raw.get("rows_rejected", 0)),
            duplicates=int(raw.get("duplicates", 0)),
            counts=counts,
            codes=codes,
            created_at=raw.get("created_at", ""),
            updated_at=raw.get("updated_at", ""),
            halted=raw.get("halted"),
        )

    async def state(self, batch_id: str) -> str | None:
        value = await self._retrying(lambda: self.redis.hget(batch_key(batch_id), "state"), "state")
        return str(value) if value is not None else None

    async def mark_running(self, batch_id: str) -> None:
        script = "if redis.call('HGET', KEYS[1], 'state') == 'queued' then " \
                 "redis.call('HSET', KEYS[1], 'state', 'running') end"  # fmt: skip
        await self._retrying(lambda: self.redis.eval(script, 1, batch_key(batch_id)), "running")

    async def abort(self, batch_id: str) -> bool:
        """Ask a batch to stop at the next item boundary; False if it was already finished."""
        script = """
        local s = redis.call('HGET', KEYS[1], 'state')
        if s == 'queued' or s == 'running' then
          redis.call('HSET', KEYS[1], 'state', 'aborting') return 1 end
        return 0"""
        return bool(await self.redis.eval(script, 1, batch_key(batch_id)))

    async def halt(self, batch_id: str, reason: str) -> bool:
        """Stop calling Lazada for this batch (a configuration error); True for the first call."""
        key = batch_key(batch_id)
        return bool(await self._retrying(lambda: self.redis.hsetnx(key, "halted", reason), "halt"))

    async def chunk_finished(self, batch_id: str, index: int) -> bool:
        """Count a finished chunk once, however often it ran; True when the batch is complete."""
        script = """
        redis.call('SADD', KEYS[2], ARGV[2])
        redis.call('EXPIRE', KEYS[2], ARGV[3])
        -- A finished chunk is known by its index; its orders need no done marks any more.
        redis.call('DEL', KEYS[4])
        local done = redis.call('SCARD', KEYS[2])
        redis.call('HSET', KEYS[1], 'chunks_done', done)
        local s = redis.call('HGET', KEYS[1], 'state')
        if done >= tonumber(redis.call('HGET', KEYS[1], 'chunks') or '0')
           and s ~= 'done' and s ~= 'aborted' then
          redis.call('HSET', KEYS[1], 'state', s == 'aborting' and 'aborted' or 'done',
                     'finished_at', ARGV[1])
          -- Only running chunks need the selections; results stay.
          redis.call('DEL', KEYS[3])
          return 1
        end
        return 0"""
        key = batch_key(batch_id)
        return bool(
            await self._retrying(
                lambda: self.redis.eval(
                    script,
                    4,
                    key,
                    f"{key}:chunks",
                    f"{key}:sel",
                    done_key(batch_id, index),
                    utc_now(),
                    str(index),
                    str(self.ttl),
                ),
                "chunk",
            )
        )

    async def chunk_orders(
        self, batch_id: str, index: int, size: int
    ) -> list[tuple[str, Selection]]:
        base = batch_key(batch_id)

        async def read() -> list[tuple[str, Selection]]:
            orders: list[str] = await self.redis.lrange(
                f"{base}:orders", index * size, index * size + size - 1
            )
            if not orders:
                return []
            sels: list[str | None] = await self.redis.hmget(f"{base}:sel", orders)
            return [
                (o, Selection.parse(s or WHOLE_ORDER)) for o, s in zip(orders, sels, strict=True)
            ]

        return await self._retrying(read, "chunk_orders")

    async def mark_orders_done(self, batch_id: str, index: int, order_ids: Sequence[str]) -> None:
        if order_ids:
            key = done_key(batch_id, index)

            async def mark() -> None:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.sadd(key, *order_ids)
                    pipe.expire(key, self.ttl)
                    await pipe.execute()

            await self._retrying(mark, "done")

    async def orders_done(self, batch_id: str, index: int, order_ids: Sequence[str]) -> set[str]:
        if not order_ids:
            return set()
        key = done_key(batch_id, index)
        flags = await self._retrying(lambda: self.redis.smismember(key, list(order_ids)), "done")
        return {o for o, flag in zip(order_ids, flags, strict=True) if flag}

    async def chunk_is_finished(self, batch_id: str, index: int) -> bool:
        key = f"{batch_key(batch_id)}:chunks"
        return bool(await self._retrying(lambda: self.redis.sismember(key, str(index)), "chunk"))

    async def control(self, batch_id: str) -> tuple[str | None, str | None]:
        """The batch's state and halt reason, read before each order."""
        key = batch_key(batch_id)
        state, halted = await self._retrying(
            lambda: self.redis.hmget(key, ["state", "halted"]), "control"
        )
        return state, halted

    async def iter_order_ids(self, batch_id: str, page: int = 1000) -> AsyncIterator[str]:
        key = f"{batch_key(batch_id)}:orders"
        start = 0
        while True:
            orders: list[str] = await self.redis.lrange(key, start, start + page - 1)
            for order in orders:
                yield order
            if len(orders) < page:
                return
            start += page

    # -- results ---------------------------------------------------------------------------

    async def recorded(self, batch_id: str, keys: Sequence[str]) -> set[str]:
        """Which of these ``<order id>:<item id>`` keys already have a result."""
        if not keys:
            return set()
        key = f"{batch_key(batch_id)}:items"
        raw = await self._retrying(lambda: self.redis.hmget(key, list(keys)), "recorded")
        return {k for k, v in zip(keys, raw, strict=True) if v is not None}

    async def record(self, batch_id: str, results: Iterable[ItemResult]) -> int:
        """Write each result once (a rerun never overwrites); returns how many were new."""
        now = time.time()
        args: list[str] = []
        for result in results:
            ref = message_ref(result.message)
            record = encode_result(result, message_ref=ref, now=now)
            code = result.code or ""
            args += [result.key, record, result.outcome.value, code, ref, result.message or ""]
        if not args:
            return 0
        base = batch_key(batch_id)
        keys = [f"{base}:items", base, f"{base}:msg"]
        args.append(utc_now())
        added = await self._retrying(lambda: self._record(keys=keys, args=args), "record")
        return int(added)

    async def result(self, batch_id: str, key: str) -> ItemResult | None:
        found = [r async for r in self._decoded(batch_id, [(key, None)])]
        return found[0] if found else None

    async def iter_results(self, batch_id: str, count: int = 500) -> AsyncIterator[ItemResult]:
        """Every recorded result, streamed with HSCAN so memory stays bounded."""
        key = f"{batch_key(batch_id)}:items"
        page: list[tuple[str, str | None]] = []
        async for field, value in self.redis.hscan_iter(key, count=count):
            page.append((field, value))
            if len(page) >= count:
                async for result in self._decoded(batch_id, page):
                    yield result
                page = []
        async for result in self._decoded(batch_id, page):
            yield result

    async def _decoded(
        self, batch_id: str, page: Sequence[tuple[str, str | None]]
    ) -> AsyncIterator[ItemResult]:
        """Results of a page of (field, record), fetching records not given and their messages."""
        base = batch_key(batch_id)
        missing = [field for field, value in page if value is None]
        fetched = (
            dict(zip(missing, await self.redis.hmget(f"{base}:items", missing), strict=True))
            if missing
            else {}
        )
        records: list[tuple[str, str]] = []
        for field, value in page:
            found = value if value is not None else fetched.get(field)
            if found is not None:
                records.append((field, found))
        refs = sorted({ref for _, v in records if (ref := json.loads(v)[2])})
        texts = (
            dict(zip(refs, await self.redis.hmget(f"{base}:msg", refs), strict=True))
            if refs
            else {}
        )
        for field, value in records:
            yield decode_result(field, value, texts)

    # -- cancel intents --------------------------------------------------------------------

    async def claim_intents(
        self, *, seller: str, batch_id: str, item_ids: Sequence[str], grace_seconds: float
    ) -> tuple[list[str], dict[str, str]]:
        """Mark items as about to be cancelled by this batch.

        Returns the claimed item ids and, for the rest, the batch holding a recent intent (this
        very batch, on a rerun). An intent older than ``grace_seconds`` may be taken over: its
        cancel did not take effect in that time.
        """
        keys = [intent_key(seller, i) for i in item_ids]
        args = [batch_id, f"{time.time():.3f}", str(grace_seconds), str(7 * 24 * 3600)]
        claimed_idx, held = await self._retrying(lambda: self._claim(keys=keys, args=args), "claim")
        claimed = [item_ids[int(i) - 1] for i in claimed_idx]
        holders = {
            item_ids[int(held[n]) - 1]: str(held[n + 1]).split(" ")[0]
            for n in range(0, len(held), 2)
        }
        return claimed, holders

    async def drop_intents(self, *, seller: str, item_ids: Sequence[str]) -> None:
        if item_ids:
            keys = [intent_key(seller, i) for i in item_ids]
            await self._retrying(lambda: self.redis.delete(*keys), "intents")

    async def intent_owners(self, *, seller: str, item_ids: Sequence[str]) -> dict[str, str]:
        if not item_ids:
            return {}
        keys = [intent_key(seller, i) for i in item_ids]
        raw = await self._retrying(lambda: self.redis.mget(keys), "intents")
        return {i: v.split(" ")[0] for i, v in zip(item_ids, raw, strict=True) if v}


_OUTCOME_CODES = {
    Outcome.CANCELLED: "c",
    Outcome.WOULD_CANCEL: "w",
    Outcome.SKIPPED: "s",
    Outcome.FAILED: "f",
}
_OUTCOMES = {v: k for k, v in _OUTCOME_CODES.items()}


def message_ref(message: str | None) -> str:
    """A short name for a message text; the same text (thousands of identical Lazada tips)
    is stored once per batch."""
    if not message:
        return ""
    return hashlib.blake2b(message.encode(), digest_size=6).hexdigest()


def encode_result(result: ItemResult, *, message_ref: str, now: float) -> str:
    """A compact record: the ids are in the hash field, the message in the message hash.

    ``[outcome, code, message ref, status, sku, request id, attempts, updated epoch]``
    """
    return json.dumps(
        [
            _OUTCOME_CODES[result.outcome],
            result.code or "",
            message_ref,
            result.status or "",
            result.sku or "",
            result.request_id or "",
            result.attempts,
            int(now),
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def decode_result(field: str, raw: str, messages: dict[str, str | None]) -> ItemResult:
    outcome, code, ref, status, sku, request_id, attempts, updated = json.loads(raw)
    order_id, _, item_id = field.partition(":")
    return ItemResult(
        order_id=order_id,
        order_item_id=item_id or None,
        outcome=_OUTCOMES[outcome],
        code=code or None,
        message=messages.get(ref) if ref else None,
        sku=sku or None,
        status=status or None,
        request_id=request_id or None,
        attempts=attempts,
        updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(updated)),
    )
