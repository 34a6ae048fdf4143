"""Choosing items and reasons: the pure decisions of the flow."""

from __future__ import annotations

from jobs.cancel import pick_reason
from jobs.choose import choose_items
from lazcancel.models import OrderItem, Outcome, ReasonOption
from lazcancel.settings import DEFAULT_CANCELLABLE
from lazcancel.store import Selection

WHOLE = Selection.parse("*")


def it(item_id: str, status: str = "pending", sku: str = "A", package: str = "") -> OrderItem:
    return OrderItem(
        order_id="1", order_item_id=item_id, status=status, sku=sku, package_id=package
    )


def choose(
    items: list[OrderItem], selection: Selection = WHOLE, **kw: object
) -> tuple[list[str], dict[str, str]]:
    choice = choose_items(
        "1",
        items,
        selection,
        skus=kw.pop("skus", ()),  # type: ignore[arg-type]
        cancellable=DEFAULT_CANCELLABLE,
        allow_whole_package=bool(kw.pop("allow", False)),
        cancelled_by_batch=kw.pop("ours", ()),  # type: ignore[arg-type]
    )
    return [t.order_item_id for t in choice.targets], {
        r.order_item_id or "": r.code or r.outcome.value for r in choice.decided
    }


def test_status_is_compared_ignoring_case_and_space() -> None:
    targets, decided = choose(
        [it("10", " Ready_To_Ship "), it("11", "SHIPPED"), it("12", "unpaid")]
    )
    assert targets == ["10"]
    assert decided == {"11": "status_not_cancellable", "12": "status_not_cancellable"}


def test_canceled_items_are_ours_only_with_our_intent() -> None:
    items = [it("10", "canceled"), it("11", "canceled")]
    choice = choose_items(
        "1",
        items,
        WHOLE,
        skus=(),
        cancellable=DEFAULT_CANCELLABLE,
        allow_whole_package=False,
        cancelled_by_batch={"10"},
    )
    outcomes = {r.order_item_id: (r.outcome, r.code) for r in choice.decided}
    assert outcomes == {
        "10": (Outcome.CANCELLED, None),
        "11": (Outcome.SKIPPED, "already_canceled"),
    }


def test_item_selection_names_missing_items_and_ignores_the_rest() -> None:
    targets, decided = choose([it("10"), it("11")], Selection.parse("i:11 i:99"))
    assert targets == ["11"]
    assert decided == {"99": "item_not_in_order"}


def test_sku_selection_from_the_file_and_from_the_option() -> None:
    items = [it("10", sku="RED"), it("11", sku="BLUE"), it("12", sku="GREEN")]
    assert choose(items, Selection.parse("s:RED s:GREEN"))[0] == ["10", "12"]
    targets, decided = choose(items, skus=("BLUE",))
    assert targets == ["11"]
    assert decided == {"10": "sku_not_selected", "12": "sku_not_selected"}


def test_sku_with_spaces_survives_the_selection_token() -> None:
    from lazcancel.store import selection_token

    selection = Selection.parse(selection_token(None, "RED SHIRT L"))
    assert choose([it("10", sku="RED SHIRT L"), it("11", sku="RED")], selection)[0] == ["10"]


def test_partial_package_is_held_back_whole_package_taken_when_allowed() -> None:
    items = [it("10", "packed", "RED", "P1"), it("11", "packed", "BLUE", "P1"), it("12", "pending")]
    targets, decided = choose(items, skus=("RED",))
    assert targets == []
    assert decided["10"] == "package_has_other_items"

    targets, decided = choose(items, skus=("RED",), allow=True)
    assert sorted(targets) == ["10", "11"]
    assert "11" not in decided


def test_whole_package_chosen_needs_no_permission() -> None:
    items = [it("10", "packed", package="P1"), it("11", "ready_to_ship", package="P1")]
    assert sorted(choose(items)[0]) == ["10", "11"]


def test_pending_items_with_a_package_id_cancel_alone() -> None:
    items = [it("10", "pending", "RED", "P1"), it("11", "pending", "BLUE", "P1")]
    assert choose(items, skus=("RED",))[0] == ["10"]


def test_canceled_package_member_does_not_block() -> None:
    items = [it("10", "packed", "RED", "P1"), it("11", "canceled", "BLUE", "P1")]
    assert choose(items, skus=("RED",))[0] == ["10"]


def test_pick_reason_by_id_or_name_never_guessing() -> None:
    options = [ReasonOption("10000119", "Sourcing Delay"), ReasonOption("10000121", "Out of Stock")]
    assert pick_reason(options, "10000121") == options[1]
    assert pick_reason(options, "  out   OF stock ") == options[1]
    assert pick_reason(options, "10000021") is None
    assert pick_reason(options, "Wrong Price or Pricing Error") is None
    assert pick_reason([], "Out of Stock") is None


def test_sku_option_applies_to_rows_naming_an_item() -> None:
    items = [it("10", sku="RED"), it("11", sku="BLUE")]
    targets, decided = choose(items, Selection.parse("i:11"), skus=("RED",))
    assert targets == []
    assert decided == {"11": "sku_not_selected"}


def test_file_sku_matching_no_item_still_records_the_order() -> None:
    items = [it("10", sku="RED"), it("11", sku="BLUE")]
    targets, decided = choose(items, Selection.parse("s:GREEN"))
    assert targets == []
    assert decided == {"10": "sku_not_selected", "11": "sku_not_selected"}
