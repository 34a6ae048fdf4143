"""The dry-run preview and the confirmation it gates: against the sandbox, on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from jobs.enqueue import QUEUE_NAME, new_batch_id
from lazada_sandbox import SandboxServer
from lazcancel.preview import ConfirmationRequired, confirm_hook, render_preview
from lazcancel.settings import Settings
from lazcancel.store import BatchSpec, BatchStore
from tests.flow_helpers import creates, item, order, rows, scenario, settings_for
from worker.runner import submit_batch
from worker.runtime import Runtime, connect_redis, open_runtime

O1, O2, O3, O4 = "662834005291234", "662834005291235", "662834005291236", "662834005291237"


def store_scenario() -> Any:
    return scenario(
        order(O1, item("662834005391234", sku="RED"), item("662834005491234", sku="BLUE")),
        order(O2, item("662834005391235", sku="RED")),
        order(O3, item("662834005391236", "delivered", sku="GREEN")),
        order(O4, item("662834005391237", sku="BLUE"), country="TH"),
    )


@dataclass
class Env:
    runtime: Runtime
    sandbox: SandboxServer


@pytest.fixture
async def env(make_sandbox: Any, redis_url: str) -> AsyncIterator[Env]:
    sb = await make_sandbox(store_scenario())
    rt = await open_runtime(settings_for(sb), redis_url=redis_url)
    yield Env(rt, sb)
    await rt.close()


def spec_for(**kwargs: Any) -> BatchSpec:
    return BatchSpec(batch_id=new_batch_id(), seller="default", **kwargs)


async def submit(rt: Runtime, redis_url: str, spec: BatchSpec, threshold: int | None) -> Any:
    settings: Settings = rt.settings
    hook = confirm_hook(
        client=rt.client_for("default"),
        spec=spec,
        threshold=threshold,
        cancellable=settings.cancellable_statuses,
    )
    return await submit_batch(
        settings=settings,
        redis_url=redis_url,
        spec=spec,
        rows=rows(O1, O2, O3, O4, "662834005299999"),
        before_queue=hook,
    )


async def test_a_batch_over_the_threshold_is_refused_with_its_preview(
    env: Env, redis_url: str
) -> None:
    spec = spec_for()
    with pytest.raises(ConfirmationRequired) as info:
        await submit(env.runtime, redis_url, spec, threshold=3)

    preview = info.value.preview
    assert [(i.order_id, i.order_item_id) for i in preview.items if i.order_id == O1] == [
        (O1, "662834005391234"),
        (O1, "662834005491234"),
    ]
    assert len(preview.items) == 4
    assert preview.orders == [O1, O2, O4]
    assert preview.stock_zero_skus == ["BLUE", "RED"]
    assert preview.left_alone == {"status_not_cancellable": 1, "order_not_found": 1}
    message = str(info.value)
    assert "4 item(s) in 3 order(s)" in message
    assert "set the stock of these SKUs to 0: BLUE, RED" in message
    assert "--yes" in message and "confirm_threshold (3)" in message
    # Nothing was queued and the staged rows are gone; Lazada saw no create.
    redis = connect_redis(redis_url)
    assert await BatchStore(redis).status(spec.batch_id) is None
    assert await redis.zcard(QUEUE_NAME) == 0
    await redis.aclose()
    assert creates(env.sandbox) == []


async def test_a_batch_within_the_threshold_is_queued(env: Env, redis_url: str) -> None:
    submitted = await submit(env.runtime, redis_url, spec_for(), threshold=4)

    assert submitted.orders == 5 and submitted.chunks == 1
    sb = env.sandbox
    validated = [e for e in sb.ledger if e.route.endswith("/cancel/validate")]
    assert len(validated) == 3
    assert creates(sb) == []


async def test_no_preview_with_yes_for_dry_runs_or_without_threshold(env: Env) -> None:
    client = env.runtime.client_for("default")
    common: dict[str, Any] = {"client": client, "cancellable": {"pending"}}
    assert confirm_hook(spec=spec_for(), threshold=0, yes=True, **common) is None
    assert confirm_hook(spec=spec_for(dry_run=True), threshold=0, **common) is None
    assert confirm_hook(spec=spec_for(), threshold=None, **common) is None
    assert confirm_hook(spec=spec_for(), threshold=0, **common) is not None


async def test_a_reason_that_keeps_stock_names_no_sku(env: Env, redis_url: str) -> None:
    with pytest.raises(ConfirmationRequired) as info:
        await submit(env.runtime, redis_url, spec_for(reason="Sourcing Delay", skus=("RED",)), 1)

    preview = info.value.preview
    assert {i.sku for i in preview.items} == {"RED"}
    assert preview.stock_zero_skus == []
    assert preview.left_alone["sku_not_selected"] == 3  # two BLUE, one GREEN
    assert "stock of these SKUs" not in render_preview(preview)
    assert "Sourcing Delay (10000019)" in render_preview(preview)
