"""Generated stores look like real data; scenarios round-trip through JSON; the package stands
alone."""

from __future__ import annotations

import ast
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from lazada_sandbox import Scenario

NOW = 1_767_000_000.0


def test_generated_ids_look_real() -> None:
    scenario = Scenario.generate(n_orders=200, seed=1, now=NOW)
    item_ids = [i.order_item_id for o in scenario.orders for i in o.items]
    assert len(scenario.orders) == 200 and len(set(item_ids)) == len(item_ids)
    for order in scenario.orders:
        assert 15 <= len(order.order_id) <= 16
        ids = [int(i.order_item_id) for i in order.items]
        assert all(str(i)[-5:] == order.order_id[-5:] for i in ids)
        assert all(b - a >= 100000 for a, b in itertools.pairwise(ids))
        assert max(ids) < 2**53


def test_generated_mix_is_realistic() -> None:
    scenario = Scenario.generate(n_orders=200, seed=1, now=NOW)
    kinds = Counter(tuple(o.statuses) for o in scenario.orders)
    assert kinds[("pending",)] > 60
    for statuses in [("packed",), ("ready_to_ship",), ("shipping",), ("delivered",)]:
        assert kinds[statuses] > 0, statuses
    assert kinds[("canceled",)] + kinds[("unpaid",)] > 0
    assert any(len(s) > 1 for s in kinds), "some orders mix item statuses"
    packages = Counter(
        i.package_id for o in scenario.orders for i in o.items if i.status == "packed"
    )
    assert max(packages.values()) >= 2, "packed orders have multi-item packages"
    assert len({i.sku for o in scenario.orders for i in o.items}) >= 5
    assert any(o.reason_options is not None for o in scenario.orders)
    assert all(o.created_at <= o.updated_at <= NOW for o in scenario.orders)


def test_generation_is_deterministic() -> None:
    first = Scenario.generate(n_orders=20, seed=4, now=NOW).to_dict()
    assert first == Scenario.generate(n_orders=20, seed=4, now=NOW).to_dict()
    assert first != Scenario.generate(n_orders=20, seed=5, now=NOW).to_dict()


def test_seeded_with_given_ids_and_skus() -> None:
    order_ids = ["662834005291234", "711433089564242", "42"]
    named = {"662834005291234": ["662834005391234", "662834005691234"]}
    scenario = Scenario.generate(
        order_ids=order_ids, item_ids=named, skus=["SKU-A", "SKU-B"], seed=1
    )
    assert [o.order_id for o in scenario.orders] == order_ids
    first = scenario.orders[0]
    assert [i.order_item_id for i in first.items][:2] == named["662834005291234"]
    assert {i.sku for o in scenario.orders for i in o.items} <= {"SKU-A", "SKU-B"}
    assert all(o.seller == "default" for o in scenario.orders)
    assert set(scenario.sellers) == {"default"}


def test_item_named_under_two_orders_stays_with_the_first() -> None:
    named = {"100000000011111": ["100000000211111"], "100000000022222": ["100000000211111"]}
    scenario = Scenario.generate(order_ids=list(named), item_ids=named, seed=1)
    scenario.validate()
    owners = [
        o.order_id for o in scenario.orders for i in o.items if i.order_item_id == "100000000211111"
    ]
    assert owners == ["100000000011111"]


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    scenario = Scenario.generate(n_orders=15, seed=2, now=NOW, sellers={"a": "TH", "b": "SG"})
    scenario.rate_limit = 5
    scenario.faults = {"rate": 0.1, "seed": 3}
    path = tmp_path / "scenario.json"
    scenario.save(path)
    loaded = Scenario.from_file(path)
    assert loaded.to_dict() == scenario.to_dict()
    assert json.loads(path.read_text())["sellers"]["a"]["country"] == "TH"


def test_minimal_scenario_gets_defaults() -> None:
    scenario = Scenario.from_dict(
        {
            "app_key": "1",
            "app_secret": "s",
            "sellers": {"default": {"access_token": "t"}},
            "orders": [
                {
                    "order_id": 12345678901234,
                    "created_at": "2025-01-01 10:00:00 +0800",
                    "items": [{"order_item_id": 12345678911234}],
                }
            ],
        }
    )
    order = scenario.orders[0]
    assert order.order_id == "12345678901234" and order.items[0].status == "pending"
    assert scenario.reasons_for(order)[1].reason_id == "10000021"
    assert scenario.cancellable_statuses[0] == "pending" and scenario.rate_limit is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seller": "ghost"}, "unknown seller"),
        ({"items": [{"order_item_id": "5"}, {"order_item_id": "5"}]}, "appears in orders"),
        ({"items": [{"order_item_id": "5x"}]}, "not digits"),
        ({"items": [{"status": "pending"}]}, "lacks the key 'order_item_id'"),
    ],
)
def test_bad_scenarios_are_refused(change: dict[str, object], message: str) -> None:
    order = {"order_id": "1", "created_at": 0, "items": [], **change}
    raw = {
        "app_key": "1",
        "app_secret": "s",
        "sellers": {"d": {"access_token": "t"}},
        "orders": [order],
    }
    with pytest.raises(ValueError, match=message):
        Scenario.from_dict(raw)


def test_sandbox_imports_nothing_from_the_client() -> None:
    package = Path(__file__).resolve().parents[1] / "lazada_sandbox"
    forbidden = {"lazcancel", "jobs", "worker"}
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & forbidden, path.name


def test_documented_example_scenario_loads() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "sandbox.md").read_text()
    section = doc[doc.index("## Scenario file") :]
    raw = section[section.index("```json") + len("```json") : section.index("```\n\n")]
    scenario = Scenario.from_dict(json.loads(raw))
    assert set(scenario.sellers) == {"default", "thai"}
    assert scenario.orders[2].seller == "thai" and scenario.orders[2].country == "TH"
    assert [r.reason_id for r in scenario.reason_options["TH"]] == ["10000121"]
    assert scenario.reason_options["VN"][1].reason_id == "10000221"
    assert scenario.reasons_for(scenario.orders[1])[0].reason_id == "1000017"
