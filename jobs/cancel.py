"""The per-order cancel flow, run by arq one chunk of at most 50 orders at a time.

Steps: fetch the chunk's items (one batched read), choose items, validate, pick the reason,
claim the cancel intent, cancel, confirm by re-reading, record. It receives the client and the
store through the job context and knows nothing of how the worker was started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import structlog
from arq.constants import retry_key_prefix
from arq.worker import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs.choose import CANCELED, choose_items, package_groups, skip
from lazcancel.client import LazadaClient
from lazcancel.errors import (
    AuthError,
    BusinessError,
    ConfigurationError,
    LazadaError,
    OutcomeUnknownError,
    SettingsError,
)
from lazcancel.models import CancelTip, ItemResult, OrderItem, Outcome, ReasonOption, Verdict
from lazcancel.store import BatchSpec, BatchStore, Selection

CHUNK_SIZE = 50  # GetMultipleOrderItems takes at most 50 order ids per call.
# Store calls already ride out a Redis restart; what still fails is retried soon.
CHUNK_RETRY_DELAY = 1.0
FINISHED = frozenset({"done", "aborted"})
CONTROL_REFRESH = 0.5

log = structlog.get_logger(__name__)


class Budget(Protocol):
    """The daily allowance of seller cancellations (lazcancel.budget)."""

    async def reserve(self, seller: str, count: int) -> int: ...
    async def release(self, seller: str, count: int) -> None: ...


@dataclass(kw_only=True)
class FlowDeps:
    """What the flow needs from the runtime; the worker builds it once per process."""

    store: BatchStore
    client_for: Callable[[str], LazadaClient]
    cancellable: Collection[str]
    order_slots: asyncio.Semaphore
    budget: Budget | None = None
    confirm_rounds: int = 4
    confirm_delay: float = 0.5
    create_attempts: int = 3
    intent_grace: float = 300.0
    # How long a create the client gave up on may still take to be applied (its read timeout).
    settle_delay: float = 30.0
    # The gateway's clock (epoch seconds, from its Date header), to report a refused timestamp.
    gateway_clock: Callable[[str], Awaitable[float | None]] | None = None
    # A chunk running longer than this stops and runs again (None: no limit).
    chunk_seconds: float | None = None
    # True once the worker is shutting down: start no new order, leave the rest for the next.
    stopping: Callable[[], bool] = lambda: False


class ChunkStopped(Exception):
    """The worker is shutting down: orders not started are left for the chunk's next run."""

    def __init__(self, left: int) -> None:
        super().__init__(f"{left} order(s) left for the next run")
        self.left = left


class Halt(Exception):
    """A configuration error: stop calling Lazada for this batch."""

    def __init__(self, error: LazadaError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True)
class Pending:
    """Items a create was sent for, waiting for a re-read to show them canceled."""

    order_id: str
    items: list[OrderItem]
    reason_id: str
    tip: CancelTip | None
    error: LazadaError | None
    creates: int = 1


@dataclass(slots=True)
class ChunkTally:
    orders: int = 0
    created: int = 0
    pending: list[Pending] = field(default_factory=list)


async def process_chunk(ctx: dict[str, Any], batch_id: str, index: int) -> dict[str, int]:
    """arq job: run the flow for chunk ``index`` of batch ``batch_id``."""
    deps: FlowDeps = ctx["flow"]
    spec = await deps.store.spec(batch_id)
    if spec is None:
        log.warning("batch_missing", batch_id=batch_id, chunk=index)
        return {}
    state, _ = await deps.store.control(batch_id)
    if state in FINISHED:
        # A chunk run again after its batch finished: the batch's selections are gone, and
        # there is nothing left to do.
        log.info("chunk_of_finished_batch", batch_id=batch_id, chunk=index, state=state)
        return {}
    with structlog.contextvars.bound_contextvars(
        batch_id=batch_id, seller=spec.seller, chunk=index
    ):
        try:
            run = ChunkRun(deps, spec, index)
        except SettingsError as exc:
            # This worker cannot serve the batch's seller: stop the batch, visibly.
            await _halt_unrunnable(deps, spec, index, exc)
            tally = ChunkTally()
        else:
            tally = await _run_once(ctx, run)
        last = await deps.store.chunk_finished(batch_id, index)
        log.info("chunk_done", orders=tally.orders, created=tally.created, last=last)
        if last:
            log.info("batch_finished")
    return {"orders": tally.orders, "created": tally.created}


async def _halt_unrunnable(deps: FlowDeps, spec: BatchSpec, index: int, exc: Exception) -> None:
    reason = f"configuration: {exc}"
    if await deps.store.halt(spec.batch_id, reason):
        log.error("batch_halted", code="configuration", error=str(exc))
    orders = [o for o, _ in await deps.store.chunk_orders(spec.batch_id, index, CHUNK_SIZE)]
    message = f"not attempted: {exc}"
    await deps.store.record(
        spec.batch_id, [_order_row(o, Outcome.FAILED, "configuration", message) for o in orders]
    )


async def _run_once(ctx: dict[str, Any], run: ChunkRun) -> ChunkTally:
    """Run the chunk; what interrupts it becomes a Retry of arq's, or failed rows."""
    deps = run.deps
    deadline = asyncio.timeout(deps.chunk_seconds)
    try:
        async with deadline:
            return await run.run()
    except TimeoutError:
        if not deadline.expired():
            raise
        # Past arq's job timeout the chunk would fail for good, its orders left without an
        # outcome; stopping a little earlier lets its next run finish them.
        log.warning("chunk_overran", seconds=deps.chunk_seconds)
        raise Retry(defer=CHUNK_RETRY_DELAY) from None
    except ChunkStopped as stopped:
        log.info("chunk_paused", left=stopped.left)
        await _give_back_try(ctx)
        raise Retry() from None
    except asyncio.CancelledError:
        # Cancelled by a shutdown (not a timeout): this run must not use up one of its tries.
        if deps.stopping():
            await asyncio.shield(_give_back_try(ctx))
        raise
    except (RedisConnectionError, RedisTimeoutError) as exc:
        # Results are safe in Redis or not yet written; the rerun skips what is recorded.
        log.warning("chunk_deferred", error=str(exc), retry_in=CHUNK_RETRY_DELAY)
        raise Retry(defer=CHUNK_RETRY_DELAY) from exc
    except Exception:
        log.exception("chunk_crashed")
        await run.fail_unfinished("internal_error", "lazcancel failed on this order; see logs")
        return run.tally


async def _give_back_try(ctx: dict[str, Any]) -> None:
    """Undo arq's count of this start, so that deploys never exhaust a chunk's tries."""
    key = retry_key_prefix + ctx["job_id"]
    try:
        if int(await ctx["redis"].get(key) or 0) > 0:
            await ctx["redis"].decr(key)
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        log.warning("try_not_returned", error=str(exc))


class ChunkRun:
    def __init__(self, deps: FlowDeps, spec: BatchSpec, index: int) -> None:
        self.deps = deps
        self.spec = spec
        self.index = index
        self.store = deps.store
        self.client = deps.client_for(spec.seller)
        self.tally = ChunkTally()
        self.read_error: LazadaError | None = None
        self.left: list[str] = []
        self.recorded: set[str] = set()
        self._gateway_time: asyncio.Future[float | None] | None = None
        self._control_value: tuple[str | None, str | None] | None = None
        self._control_at = 0.0

    async def run(self) -> ChunkTally:
        batch_id = self.spec.batch_id
        await self.store.mark_running(batch_id)
        if await self.store.chunk_is_finished(batch_id, self.index):
            return self.tally
        orders = await self.store.chunk_orders(batch_id, self.index, CHUNK_SIZE)
        done = await self.store.orders_done(batch_id, self.index, [o for o, _ in orders])
        todo = [(o, sel) for o, sel in orders if o not in done]
        self.tally.orders = len(todo)
        if not todo or await self._stopped([o for o, _ in todo]):
            return self.tally

        try:
            items_by_order = await self.client.get_multiple_order_items([o for o, _ in todo])
        except LazadaError as exc:
            await self._fail_orders([o for o, _ in todo], exc)
            return self.tally

        # Items recorded on an earlier run of this chunk keep their result: one read for all.
        keys = [
            f"{order_id}:{item.order_item_id}"
            for order_id, _ in todo
            for item in items_by_order.get(order_id) or ()
        ]
        self.recorded = await self.store.recorded(batch_id, keys)
        ended = await asyncio.gather(
            *(self._order(order_id, sel, items_by_order.get(order_id)) for order_id, sel in todo),
            return_exceptions=True,
        )
        # One order's failure (Redis gone) ends the run only once the others have recorded
        # what they decided, and the creates sent are confirmed: nothing keeps running behind
        # the chunk's next run, and no decided outcome is dropped.
        await self._confirm()
        failures = [e for e in ended if isinstance(e, BaseException)]
        if failures:
            raise failures[0]
        left = set(self.left)
        await self.store.mark_orders_done(
            batch_id, self.index, [o for o, _ in todo if o not in left]
        )
        if left:
            raise ChunkStopped(len(left))
        return self.tally

    async def fail_unfinished(self, code: str, message: str) -> None:
        """After an unexpected error: give every order not yet finished a failed row."""
        orders = [
            o for o, _ in await self.store.chunk_orders(self.spec.batch_id, self.index, CHUNK_SIZE)
        ]
        done = await self.store.orders_done(self.spec.batch_id, self.index, orders)
        left = [o for o in orders if o not in done]
        await self._record([_order_row(o, Outcome.FAILED, code, message) for o in left])
        await self.store.mark_orders_done(self.spec.batch_id, self.index, left)

    # -- control -----------------------------------------------------------------------------

    async def _control(self) -> tuple[str | None, str | None]:
        """The batch's state and halt reason, read at most every CONTROL_REFRESH seconds.

        Fifty orders check before each step; an abort or another worker's halt is seen within
        that time, this chunk's own halt at once.
        """
        now = time.monotonic()
        if self._control_value is None or now - self._control_at >= CONTROL_REFRESH:
            self._control_value = await self.store.control(self.spec.batch_id)
            self._control_at = now
        return self._control_value

    async def _stopped(self, order_ids: Sequence[str]) -> bool:
        """Record order-level rows and return True when the batch is aborting or halted."""
        state, halted = await self._control()
        if state in {"aborting", "aborted"}:
            await self._record(
                [_order_row(o, Outcome.SKIPPED, "aborted", "batch aborted") for o in order_ids]
            )
        elif halted:
            code, _, message = halted.partition(": ")
            rows = [
                _order_row(o, Outcome.FAILED, code, f"not attempted: {message}") for o in order_ids
            ]
            await self._record(rows)
        else:
            return False
        await self.store.mark_orders_done(self.spec.batch_id, self.index, list(order_ids))
        return True

    async def _halt(self, exc: LazadaError) -> None:
        reason = f"{exc.code}: {exc.message}"
        if _clock_rejected(exc):
            reason += await self._clocks()
        first = await self.store.halt(self.spec.batch_id, reason)
        self._control_value = None  # this chunk's own orders must see the halt at once
        if first:
            log.error(
                "batch_halted",
                code=exc.code,
                api=exc.api,
                request_id=exc.request_id,
                error=reason,
                fix="check the app key, app secret, access token and the machine clock",
            )

    async def _clocks(self) -> str:
        """Both clocks, for a timestamp the gateway refused: ours, and its HTTP Date."""
        ours = time.time()
        if self._gateway_time is None and self.deps.gateway_clock is not None:
            self._gateway_time = asyncio.ensure_future(self.deps.gateway_clock(self.spec.seller))
        theirs = await self._gateway_time if self._gateway_time is not None else None
        if theirs is None:
            return f"; our clock says {_utc(ours)}, the gateway's is unknown"
        return (
            f"; our clock says {_utc(ours)}, the gateway's (its Date header) {_utc(theirs)}: "
            f"{ours - theirs:+.0f} s apart; set this machine's clock right (NTP)"
        )

    async def _fail_orders(self, order_ids: Sequence[str], exc: LazadaError) -> None:
        if isinstance(exc, ConfigurationError | AuthError):
            await self._halt(exc)
        rows = [
            _order_row(o, Outcome.FAILED, exc.code, exc.message, exc.request_id, exc.attempts)
            for o in order_ids
        ]
        await self._record(rows)
        await self.store.mark_orders_done(self.spec.batch_id, self.index, list(order_ids))

    async def _record(self, results: Sequence[ItemResult]) -> None:
        await self.store.record(self.spec.batch_id, results)
        # A confirmed cancel needs no intent any more: Lazada itself now says "canceled".
        confirmed = [
            r.order_item_id for r in results if r.outcome is Outcome.CANCELLED and r.order_item_id
        ]
        await self.store.drop_intents(seller=self.spec.seller, item_ids=confirmed)
        for result in results:
            log.info(
                "item_" + result.outcome.value,
                order_id=result.order_id,
                order_item_id=result.order_item_id,
                code=result.code,
                request_id=result.request_id,
            )

    # -- one order ---------------------------------------------------------------------------

    async def _order(
        self, order_id: str, selection: Selection, items: list[OrderItem] | None
    ) -> None:
        async with self.deps.order_slots:
            if self.deps.stopping():
                self.left.append(order_id)
                return
            with structlog.contextvars.bound_contextvars(order_id=order_id):
                try:
                    await self._order_steps(order_id, selection, items)
                except Halt as halt:
                    await self._halt(halt.error)

    async def _order_steps(
        self, order_id: str, selection: Selection, items: list[OrderItem] | None
    ) -> None:
        if not items:
            code, message = (
                ("order_not_found", "Lazada does not know this order for this seller")
                if items is None
                else ("order_has_no_items", "Lazada returned no items for this order")
            )
            await self._record([_order_row(order_id, Outcome.SKIPPED, code, message)])
            return

        targets = await self._choose(order_id, selection, items)
        if not targets or await self._stopped_items(targets):
            return

        tip = await self._validate(order_id, targets)
        if tip is None:
            return
        reason = await self._pick_reason(targets, tip)
        if reason is None:
            return
        if self.spec.dry_run:
            await self._record(
                [_item_row(i, Outcome.WOULD_CANCEL, None, tip.tip_content, tip) for i in targets]
            )
            return

        targets = await self._within_budget(targets)
        if targets and not await self._stopped_items(targets):
            await self._create(order_id, targets, reason.reason_id)

    async def _choose(
        self, order_id: str, selection: Selection, items: list[OrderItem]
    ) -> list[OrderItem]:
        recorded = self.recorded
        fresh = [i for i in items if f"{order_id}:{i.order_item_id}" not in recorded]
        canceled = [i.order_item_id for i in fresh if i.status.strip().lower() == CANCELED]
        owners = await self.store.intent_owners(seller=self.spec.seller, item_ids=canceled)
        ours = {item for item, owner in owners.items() if owner == self.spec.batch_id}

        choice = choose_items(
            order_id,
            fresh,
            selection,
            skus=self.spec.skus,
            cancellable=self.deps.cancellable,
            allow_whole_package=self.spec.allow_whole_package,
            cancelled_by_batch=ours,
        )
        # Items recorded on an earlier run keep their result; never decide them twice.
        decided = [r for r in choice.decided if r.key not in recorded]
        await self._record(decided)
        return [i for i in choice.targets if f"{order_id}:{i.order_item_id}" not in recorded]

    async def _stopped_items(self, targets: Sequence[OrderItem]) -> bool:
        state, halted = await self._control()
        if state in {"aborting", "aborted"}:
            await self._record([skip(i, "aborted", "batch aborted") for i in targets])
            return True
        if halted:
            code, _, message = halted.partition(": ")
            await self._record(
                [_item_row(i, Outcome.FAILED, code, f"not attempted: {message}") for i in targets]
            )
            return True
        return False

    async def _validate(self, order_id: str, targets: list[OrderItem]) -> CancelTip | None:
        try:
            tip = await self.client.validate_cancel(order_id, [i.order_item_id for i in targets])
        except LazadaError as exc:
            await self._fail_items(targets, exc)
            return None
        if tip.verdict is Verdict.REJECTED:
            await self._record(
                [_item_row(i, Outcome.SKIPPED, "rejected", tip.tip_content, tip) for i in targets]
            )
            return None
        if tip.verdict is Verdict.UNKNOWN and not tip.reason_options:
            message = f"validate answered tip_type {tip.tip_type!r} without reasons"
            await self._record(
                [_item_row(i, Outcome.FAILED, "upstream_error", message, tip) for i in targets]
            )
            return None
        return tip

    async def _pick_reason(self, targets: list[OrderItem], tip: CancelTip) -> ReasonOption | None:
        reason = pick_reason(tip.reason_options, self.spec.reason)
        if reason is None:
            offered = ", ".join(f"{r.reason_name} ({r.reason_id})" for r in tip.reason_options)
            message = f"reason {self.spec.reason!r} is not offered; offered: {offered or 'none'}"
            await self._record(
                [_item_row(i, Outcome.SKIPPED, "reason_not_offered", message, tip) for i in targets]
            )
        return reason

    async def _within_budget(self, targets: list[OrderItem]) -> list[OrderItem]:
        """The targets the daily budget allows, never splitting a packed package."""
        if self.deps.budget is None:
            return targets
        granted = await self.deps.budget.reserve(self.spec.seller, len(targets))
        allowed: list[OrderItem] = []
        held: list[OrderItem] = []
        for group in package_groups(targets):
            fits = not held and len(allowed) + len(group) <= granted
            (allowed if fits else held).extend(group)
        if granted > len(allowed):
            await self._release_budget(granted - len(allowed))
        if held:
            log.warning("budget_exhausted", held_back=len(held))
            message = "the seller's daily cancellation budget is used up"
            await self._record([skip(i, "budget_exhausted", message) for i in held])
        return allowed

    async def _create(self, order_id: str, targets: list[OrderItem], reason_id: str) -> None:
        claimed, held = await self.store.claim_intents(
            seller=self.spec.seller,
            batch_id=self.spec.batch_id,
            item_ids=[i.order_item_id for i in targets],
            grace_seconds=self.deps.intent_grace,
        )
        ours = [i for i in targets if held.get(i.order_item_id) == self.spec.batch_id]
        others = [i for i in targets if i.order_item_id in held and i not in ours]
        if others:
            await self._record(
                [
                    skip(
                        i,
                        "in_progress_elsewhere",
                        f"batch {held[i.order_item_id]} is cancelling this item",
                    )
                    for i in others
                ]
            )
            await self._release_budget(len(others))
        if ours:
            # This batch sent a cancel before a crash: its outcome is unknown, so re-read first.
            self.tally.pending.append(Pending(order_id, ours, reason_id, None, None, creates=1))
        to_send = [i for i in targets if i.order_item_id in set(claimed)]
        if to_send:
            await self._send_create(order_id, to_send, reason_id, creates=1)

    async def _send_create(
        self, order_id: str, items: list[OrderItem], reason_id: str, *, creates: int
    ) -> None:
        ids = [i.order_item_id for i in items]
        self.tally.created += len(ids)
        try:
            tip = await self.client.create_cancel(order_id, ids, reason_id)
        except OutcomeUnknownError as exc:
            log.warning("cancel_outcome_unknown", code=exc.code, request_id=exc.request_id)
            self.tally.pending.append(Pending(order_id, items, reason_id, None, exc, creates))
            return
        except LazadaError as exc:
            await self._fail_items(items, exc)
            await self._release_budget(len(items))
            return
        log.info(
            "cancel_requested", items=len(ids), request_id=tip.request_id, tip_type=tip.tip_type
        )
        self.tally.pending.append(Pending(order_id, items, reason_id, tip, None, creates))

    async def _fail_items(self, items: Sequence[OrderItem], exc: LazadaError) -> None:
        code = exc.code
        if isinstance(exc, BusinessError) and exc.code == "104":
            code = "reason_not_offered"
        await self._record(
            [_item_row(i, Outcome.FAILED, code, exc.message, None, exc) for i in items]
        )
        if isinstance(exc, ConfigurationError | AuthError):
            raise Halt(exc)

    async def _release_budget(self, count: int) -> None:
        if self.deps.budget is not None and count:
            await self.deps.budget.release(self.spec.seller, count)

    # -- confirm -----------------------------------------------------------------------------

    async def _confirm(self) -> None:
        """Re-read until every pending item reads canceled; resend creates that never landed."""
        while self.tally.pending:
            current = await self._watch()
            resend: list[Pending] = []
            give_up: list[Pending] = []
            for pending in self.tally.pending:
                again, rest = self._resendable(pending, current)
                if again:
                    resend.append(replace(pending, items=again))
                if rest:
                    give_up.append(replace(pending, items=rest))
            self.tally.pending = []
            give_up, current = await self._last_look(give_up, current)
            await self._record_unconfirmed(give_up, current)
            for pending in resend:
                log.info("cancel_resent", items=len(pending.items), create=pending.creates + 1)
                await self._send_create(
                    pending.order_id, pending.items, pending.reason_id, creates=pending.creates + 1
                )

    async def _watch(self) -> dict[str, OrderItem]:
        """Confirm rounds with growing pauses; returns the last statuses read."""
        current: dict[str, OrderItem] = {}
        for round_ in range(self.deps.confirm_rounds):
            if round_:
                await asyncio.sleep(self.deps.confirm_delay * 2 ** (round_ - 1))
            snapshot = await self._reread({p.order_id for p in self.tally.pending})
            if snapshot is None:
                continue
            current = snapshot
            self.tally.pending = await self._settle(self.tally.pending, snapshot)
            if not self.tally.pending:
                break
        return current

    async def _last_look(
        self, give_up: list[Pending], current: dict[str, OrderItem]
    ) -> tuple[list[Pending], dict[str, OrderItem]]:
        """Before failing items whose last create went unanswered, wait until that create can
        no longer land (an answer that came too late may still have been applied), read again."""
        unknown = [p for p in give_up if p.error is not None]
        if not unknown:
            return give_up, current
        await asyncio.sleep(self.deps.settle_delay)
        snapshot = await self._reread({p.order_id for p in unknown})
        if snapshot is None:
            return give_up, current
        return await self._settle(give_up, snapshot), snapshot

    def _resendable(
        self, pending: Pending, current: dict[str, OrderItem]
    ) -> tuple[list[OrderItem], list[OrderItem]]:
        """Split items into those whose create may be sent again, and those to give up on.

        Only a create whose outcome was unknown is resent, only for items that a fresh read
        shows still cancellable: a create Lazada answered is never repeated.
        """
        if pending.tip is not None or pending.creates >= self.deps.create_attempts:
            return [], pending.items
        again = [
            i
            for i in pending.items
            if i.order_item_id in current
            and current[i.order_item_id].status.strip().lower() in self.deps.cancellable
        ]
        return again, [i for i in pending.items if i not in again]

    async def _reread(self, order_ids: Collection[str]) -> dict[str, OrderItem] | None:
        try:
            by_order = await self.client.get_multiple_order_items(sorted(order_ids))
        except LazadaError as exc:
            log.warning("confirm_read_failed", code=exc.code, request_id=exc.request_id)
            self.read_error = exc
            return None
        return {i.order_item_id: i for items in by_order.values() for i in items}

    async def _settle(self, waiting: list[Pending], current: dict[str, OrderItem]) -> list[Pending]:
        still: list[Pending] = []
        for pending in waiting:
            done: list[ItemResult] = []
            rest: list[OrderItem] = []
            for item in pending.items:
                now = current.get(item.order_item_id, item)
                if now.status.strip().lower() == CANCELED:
                    done.append(_cancelled_row(item, pending))
                else:
                    rest.append(item)
            await self._record(done)
            if not rest:
                continue
            if pending.tip is not None and pending.tip.verdict is Verdict.REJECTED:
                # The status read after the create is the ground truth (lazada-api.md §16).
                await self._record(
                    [
                        _item_row(
                            i, Outcome.FAILED, "rejected", pending.tip.tip_content, pending.tip
                        )
                        for i in rest
                    ]
                )
                continue
            still.append(replace(pending, items=rest))
        return still

    async def _record_unconfirmed(
        self, pendings: list[Pending], current: dict[str, OrderItem]
    ) -> None:
        rows: list[ItemResult] = []
        for pending in pendings:
            if pending.error is not None:
                rows += [
                    _item_row(
                        i,
                        Outcome.FAILED,
                        pending.error.code,
                        pending.error.message,
                        None,
                        pending.error,
                    )
                    for i in pending.items
                ]
            else:
                rows += [
                    _item_row(
                        i, Outcome.FAILED, "unconfirmed", self._unconfirmed(i, current), pending.tip
                    )
                    for i in pending.items
                ]
        await self._record(rows)

    def _unconfirmed(self, item: OrderItem, current: dict[str, OrderItem]) -> str:
        if item.order_item_id in current or self.read_error is None:
            return "cancel requested, but Lazada does not show the item as canceled"
        # Never read back: say so, rather than claim Lazada showed it uncancelled.
        error = self.read_error
        return f"cancel requested, but re-reading the item failed ({error.code}: {error.message})"


def _clock_rejected(exc: LazadaError) -> bool:
    # The gateway names no code of its own for a stale timestamp, only this wording.
    return isinstance(exc, ConfigurationError) and "timestamp" in exc.message.lower()


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def pick_reason(options: Sequence[ReasonOption], wanted: str) -> ReasonOption | None:
    """The option whose id equals ``wanted`` or whose name matches it ignoring case."""
    key = wanted.strip()
    for option in options:
        if option.reason_id == key:
            return option
    folded = " ".join(key.lower().split())
    for option in options:
        if " ".join(option.reason_name.lower().split()) == folded:
            return option
    return None


def _order_row(
    order_id: str,
    outcome: Outcome,
    code: str,
    message: str,
    request_id: str | None = None,
    attempts: int = 0,
) -> ItemResult:
    return ItemResult(
        order_id=order_id,
        order_item_id=None,
        outcome=outcome,
        code=code,
        message=message,
        request_id=request_id,
        attempts=attempts,
    )


def _item_row(
    item: OrderItem,
    outcome: Outcome,
    code: str | None,
    message: str | None,
    tip: CancelTip | None = None,
    error: LazadaError | None = None,
) -> ItemResult:
    source = error or tip
    return ItemResult(
        order_id=item.order_id,
        order_item_id=item.order_item_id,
        sku=item.sku,
        status=item.status,
        outcome=outcome,
        code=code,
        message=message,
        request_id=source.request_id if source else None,
        attempts=source.attempts if source else 0,
    )


def _cancelled_row(item: OrderItem, pending: Pending) -> ItemResult:
    message = pending.tip.tip_content if pending.tip else "canceled; confirmed by re-reading"
    return _item_row(item, Outcome.CANCELLED, None, message, pending.tip, pending.error)
