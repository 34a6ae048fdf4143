"""The cancel flow end to end: arq jobs on a real redis-server, the sandbox over HTTP."""

from __future__ import annotations

import json
from typing import Any

from lazcancel.models import Outcome
from tests.flow_helpers import creates, item, order, rows, run_batch, scenario, settings_for

O1, O2, O3 = "662834005291234", "662834005291235", "662834005291236"


async def test_mixed_statuses_cancel_only_eligible_items(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(
        scenario(
            order(
                O1,
                item("662834005391234", "pending"),
                item("662834005491234", "shipped"),
                item("662834005591234", "canceled"),
                item("662834005691234", "ready_to_ship", package="PKG1"),
            )
        )
    )
    run = await run_batch(settings_for(sb), redis_url, rows(O1))

    assert run.of(O1, "662834005391234").outcome is Outcome.CANCELLED
    assert run.of(O1, "662834005691234").outcome is Outcome.CANCELLED
    shipped = run.of(O1, "662834005491234")
    assert (shipped.outcome, shipped.code, shipped.status) == (
        Outcome.SKIPPED,
        "status_not_cancellable",
        "shipped",
    )
    assert run.of(O1, "662834005591234").code == "already_canceled"
    assert sb.item("662834005391234")["status"] == "canceled"
    assert sb.item("662834005491234")["status"] == "shipped"
    assert run.status.state == "done"
    assert run.status.counts["cancelled"] == 2
    sent = [json.loads(e.params["order_item_id_list"]) for e in creates(sb)]
    assert sent == [["662834005391234", "662834005691234"]]


async def test_sku_filter_and_unknown_order(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(
        scenario(order(O1, item("662834005391234", sku="RED"), item("662834005491234", sku="BLUE")))
    )
    run = await run_batch(settings_for(sb), redis_url, rows(O1, O2), skus=("RED",))

    assert run.of(O1, "662834005391234").outcome is Outcome.CANCELLED
    blue = run.of(O1, "662834005491234")
    assert (blue.outcome, blue.code) == (Outcome.SKIPPED, "sku_not_selected")
    missing = run.of(O2)
    assert (missing.outcome, missing.code, missing.order_item_id) == (
        Outcome.SKIPPED,
        "order_not_found",
        None,
    )
    assert sb.item("662834005491234")["status"] == "pending"


async def test_item_row_limits_the_order_and_never_widens(
    make_sandbox: Any, redis_url: str
) -> None:
    sb = await make_sandbox(scenario(order(O1, item("662834005391234"), item("662834005491234"))))
    run = await run_batch(
        settings_for(sb),
        redis_url,
        rows(O1, item="662834005491234") + rows(O2, item="999"),
    )
    assert run.of(O1, "662834005491234").outcome is Outcome.CANCELLED
    assert f"{O1}:662834005391234" not in run.results
    assert sb.item("662834005391234")["status"] == "pending"
    assert run.of(O2).code == "order_not_found"


async def test_packed_package_is_skipped_unless_whole_package_allowed(
    make_sandbox: Any, redis_url: str
) -> None:
    packed = scenario(
        order(
            O1,
            item("662834005391234", "packed", sku="RED", package="PKG9"),
            item("662834005491234", "packed", sku="BLUE", package="PKG9"),
        )
    )
    sb = await make_sandbox(packed)
    settings = settings_for(sb)

    first = await run_batch(settings, redis_url, rows(O1), skus=("RED",))
    red = first.of(O1, "662834005391234")
    assert (red.outcome, red.code) == (Outcome.SKIPPED, "package_has_other_items")
    assert "662834005491234" in (red.message or "")
    assert creates(sb) == []

    second = await run_batch(settings, redis_url, rows(O1), skus=("RED",), allow_whole_package=True)
    assert second.of(O1, "662834005391234").outcome is Outcome.CANCELLED
    assert second.of(O1, "662834005491234").outcome is Outcome.CANCELLED
    assert sb.item("662834005491234")["status"] == "canceled"


async def test_reason_by_name_uses_the_countrys_own_id(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(scenario(order(O1, item("662834005391234"), country="TH")))
    run = await run_batch(settings_for(sb), redis_url, rows(O1), reason="sourcing delay")

    assert run.of(O1, "662834005391234").outcome is Outcome.CANCELLED
    [create] = creates(sb)
    offered = {r.reason_name: r.reason_id for r in sb.scenario.reason_options["TH"]}
    assert create.params["reason_id"] == offered["Sourcing Delay"] != "10000019"


async def test_reason_not_offered_is_never_guessed(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(scenario(order(O1, item("662834005391234"))))
    run = await run_batch(settings_for(sb), redis_url, rows(O1), reason="Changed my mind")

    result = run.of(O1, "662834005391234")
    assert (result.outcome, result.code) == (Outcome.SKIPPED, "reason_not_offered")
    assert "Out of Stock" in (result.message or "")
    assert creates(sb) == []


async def test_dry_run_sends_no_create(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(
        scenario(
            order(O1, item("662834005391234")), order(O2, item("662834005391235", "delivered"))
        )
    )
    run = await run_batch(settings_for(sb), redis_url, rows(O1, O2), dry_run=True)

    assert run.of(O1, "662834005391234").outcome is Outcome.WOULD_CANCEL
    assert run.of(O2, "662834005391235").code == "status_not_cancellable"
    assert creates(sb) == []
    assert sb.item("662834005391234")["status"] == "pending"


async def test_validate_rejection_is_recorded_with_lazadas_text(
    make_sandbox: Any, redis_url: str
) -> None:
    # The sandbox's allow-list is narrower than ours: validate has the last word.
    sb = await make_sandbox(
        scenario(order(O1, item("662834005391234", "repacked")), cancellable_statuses=["pending"])
    )
    run = await run_batch(settings_for(sb), redis_url, rows(O1))

    result = run.of(O1, "662834005391234")
    assert (result.outcome, result.code) == (Outcome.SKIPPED, "rejected")
    assert result.message and result.request_id
    assert creates(sb) == []


async def test_html_502_then_success(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(scenario(order(O1, item("662834005391234"))))
    sb.faults.set(
        {
            "script": {
                "/orders/items/get": ["html502"],
                "/order/reverse/cancel/validate": ["html502", "html502"],
            }
        }
    )
    run = await run_batch(settings_for(sb), redis_url, rows(O1))

    result = run.of(O1, "662834005391234")
    assert result.outcome is Outcome.CANCELLED
    assert len(creates(sb)) == 1
    assert any(e.fault == "html502" for e in sb.ledger)


async def test_dropped_create_is_confirmed_by_rereading_not_resent(
    make_sandbox: Any, redis_url: str
) -> None:
    sb = await make_sandbox(scenario(order(O1, item("662834005391234"))))
    sb.faults.set({"script": {"/order/reverse/cancel/create": ["drop_after_apply"]}})
    run = await run_batch(settings_for(sb), redis_url, rows(O1))

    assert run.of(O1, "662834005391234").outcome is Outcome.CANCELLED
    assert len(creates(sb)) == 1
    assert sb.creates_for("662834005391234") == 1


async def test_create_lost_before_applying_is_resent_after_a_reread(
    make_sandbox: Any, redis_url: str
) -> None:
    sb = await make_sandbox(scenario(order(O1, item("662834005391234"))))
    sb.faults.set({"script": {"/order/reverse/cancel/create": ["drop"]}})
    run = await run_batch(settings_for(sb), redis_url, rows(O1))

    assert run.of(O1, "662834005391234").outcome is Outcome.CANCELLED
    assert len(creates(sb)) == 2
    assert sb.creates_for("662834005391234") == 1


async def test_api_call_limit_storm_is_ridden_out(make_sandbox: Any, redis_url: str) -> None:
    orders = [
        order(f"66283400529{n:04d}", item(f"66283400539{n:04d}"), item(f"66283400549{n:04d}"))
        for n in range(30)
    ]
    sb = await make_sandbox(scenario(*orders, rate_limit=20))
    run = await run_batch(
        settings_for(sb, rate_limit=200.0, retry_attempts=12),
        redis_url,
        rows(*(o["order_id"] for o in orders)),
    )

    limited = [e for e in sb.ledger if e.code == "ApiCallLimit"]
    assert limited, "the storm must actually have hit the sandbox's limit"
    assert run.status.counts["cancelled"] == 60
    assert run.status.counts["failed"] == 0


async def test_same_file_twice_cancels_each_item_once(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(
        scenario(order(O1, item("662834005391234")), order(O2, item("662834005391235")))
    )
    settings = settings_for(sb)
    first = await run_batch(settings, redis_url, rows(O1, O2, O1))
    second = await run_batch(settings, redis_url, rows(O1, O2))

    assert first.status.duplicates == 1
    assert first.status.counts["cancelled"] == 2
    assert {r.code for r in second.results.values()} == {"already_canceled"}
    assert len(creates(sb)) == 2
    assert sb.creates_for("662834005391234") == 1


async def test_configuration_error_halts_the_batch_once(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(
        scenario(*(order(f"6628340052{n:05d}", item(f"6628340053{n:05d}")) for n in range(120)))
    )
    settings = settings_for(sb)
    wrong = {
        "default": settings.sellers["default"].__class__(
            **{**settings.sellers["default"].__dict__, "app_secret": "not-the-secret"}
        )
    }
    run = await run_batch(
        settings.__class__(**{**settings.__dict__, "sellers": wrong}),
        redis_url,
        rows(*(f"6628340052{n:05d}" for n in range(120))),
    )

    assert run.status.halted and run.status.halted.startswith("IncompleteSignature")
    assert run.status.counts["failed"] == 120
    assert {r.code for r in run.results.values()} == {"IncompleteSignature"}
    # One call per chunk at most before the halt is seen; never one call per item.
    assert len(sb.ledger) <= 3


async def test_create_answering_tip_error_is_a_rejection(make_sandbox: Any, redis_url: str) -> None:
    sb = await make_sandbox(scenario(order(O1, item("662834005391234"))))
    sb.faults.set({"script": {"/order/reverse/cancel/create": ["tip_error"]}})
    run = await run_batch(settings_for(sb), redis_url, rows(O1))

    result = run.of(O1, "662834005391234")
    assert (result.outcome, result.code) == (Outcome.FAILED, "rejected")
    assert result.message == "stock will be set as 0"
    assert sb.item("662834005391234")["status"] == "pending"
    assert len(creates(sb)) == 1


async def test_create_answering_tip_error_but_applied_counts_as_cancelled(
    make_sandbox: Any, redis_url: str
) -> None:
    # Lazada's reference example pairs a cancelled order with tip_type "error": the status read
    # after the create decides (lazada-api.md §16).
    sb = await make_sandbox(scenario(order(O1, item("662834005391234"))))
    sb.faults.set({"script": {"/order/reverse/cancel/create": ["tip_error_after_apply"]}})
    run = await run_batch(settings_for(sb), redis_url, rows(O1))

    assert run.of(O1, "662834005391234").outcome is Outcome.CANCELLED
    assert len(creates(sb)) == 1


async def test_seller_unknown_to_the_worker_halts_the_batch(
    make_sandbox: Any, redis_url: str
) -> None:
    import dataclasses

    from tests.flow_helpers import read_batch
    from worker.runner import process_batch

    sb = await make_sandbox(scenario(order(O1, item("662834005391234"))))
    settings = settings_for(sb)
    run = await run_batch(settings, redis_url, rows(O1), process=False)
    # The worker that takes the batch has no credentials for its seller.
    await process_batch(
        settings=dataclasses.replace(settings, sellers={}),
        redis_url=redis_url,
        batch_id=run.batch_id,
    )
    done = await read_batch(redis_url, run.batch_id)

    assert done.status.state == "done"
    assert (done.status.halted or "").startswith("configuration: unknown seller 'default'")
    failed = done.of(O1)
    assert (failed.outcome, failed.code) == (Outcome.FAILED, "configuration")
    assert sb.ledger == []
