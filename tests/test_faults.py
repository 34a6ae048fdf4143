"""A fault storm at the gateway, clock skew, and the check every fault test ends with: the
recorded results agree with the sandbox's final state, item for item, and nothing was cancelled
twice."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from lazada_sandbox import SandboxServer
from lazcancel.models import ItemResult, Outcome
from tests.flow_helpers import creates

# The codes a run may end an item with when the gateway kept failing (never a business code).
TRANSIENT_CODES = frozenset({"ServiceTimeout", "6", "106", "upstream_error"})


def ledger_creates(sb: SandboxServer) -> Counter[str]:
    """How many create calls that reached the API (applied) named each item."""
    counts: Counter[str] = Counter()
    for entry in creates(sb):
        if entry.applied:
            counts.update(json.loads(entry.params["order_item_id_list"]))
    return counts


def assert_agrees_with_sandbox(
    sb: SandboxServer,
    results: Mapping[str, ItemResult],
    order_ids: Iterable[str],
    *,
    seller: str = "default",
) -> Counter[str]:
    """Every item of every order has one true result; returns the count per outcome:code.

    cancelled: the sandbox shows it canceled, by exactly one accepted create. already_canceled:
    canceled, by nobody here. Anything else: no create was accepted and the status is still the
    one recorded. Failures only with codes a faulty gateway explains.
    """
    tally: Counter[str] = Counter()
    sent = ledger_creates(sb)
    for order_id in order_ids:
        order = sb.state.order(seller, order_id)
        assert order is not None, order_id
        whole = results.get(f"{order_id}:")
        if whole is not None:
            assert whole.outcome in (Outcome.FAILED, Outcome.SKIPPED), whole
            assert all(sb.creates_for(i.order_item_id) == 0 for i in order.items), whole
            tally[f"{whole.outcome}:{whole.code}"] += 1
            continue
        for item in order.items:
            result = results.get(f"{order_id}:{item.order_item_id}")
            assert result is not None, f"no result for {order_id}:{item.order_item_id}"
            _assert_true(result, status=item.status, accepted=sb.creates_for(item.order_item_id))
            assert sent[item.order_item_id] <= 1, f"{item.order_item_id} cancelled twice"
            tally[f"{result.outcome}:{result.code or ''}"] += 1
    return tally


def _assert_true(result: ItemResult, *, status: str, accepted: int) -> None:
    assert accepted <= 1, f"{result.key}: {accepted} accepted creates"
    if result.outcome is Outcome.CANCELLED:
        assert (status, accepted) == ("canceled", 1), result
    elif result.code == "already_canceled":
        assert (status, accepted) == ("canceled", 0), result
    else:
        assert accepted == 0, result
        assert status == result.status, result
    if result.outcome is Outcome.FAILED:
        assert result.code in TRANSIENT_CODES, result


def outcome_counts(results: Mapping[str, Any]) -> Counter[str]:
    return Counter(str(r.outcome) for r in results.values())
