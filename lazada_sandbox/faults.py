"""The fault plan: which calls get an error, a broken answer or a slow one instead of the API.

Scripted faults are consumed per API path, one per call, before the seeded random rate applies.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from lazada_sandbox.envelope import INJECTABLE

# Faults that are not an error envelope; "ok" is a scripted no-fault placeholder. The two
# tip_error kinds answer code "0" with tip_type "error", as Lazada's own reference example does
# for a create: one without applying the call, one after applying it.
TRANSPORT_KINDS = frozenset(
    {
        "ok",
        "html502",
        "slow",
        "drop",
        "drop_after_apply",
        "late_after_apply",
        "tip_error",
        "tip_error_after_apply",
    }
)
KINDS = TRANSPORT_KINDS | frozenset(INJECTABLE)


class FaultPlan:
    """Mutable plan: ``set`` replaces it, ``next_fault`` draws the fault for one call."""

    def __init__(self, plan: Mapping[str, Any] | None = None) -> None:
        self.set(plan or {})

    def set(self, plan: Mapping[str, Any]) -> None:
        """Replace the plan; unknown fault kinds are refused with the list of known ones."""
        script = {
            str(api): [str(k) for k in kinds] for api, kinds in plan.get("script", {}).items()
        }
        kinds = [str(k) for k in plan.get("kinds", ["ServiceTimeout", "6", "html502", "drop"])]
        for kind in [k for ks in script.values() for k in ks] + kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
        self.script = script
        self.rate = float(plan.get("rate", 0.0))
        self.kinds = kinds
        self.seed = plan.get("seed")
        self.slow_seconds = float(plan.get("slow_seconds", 2.0))
        routes = plan.get("routes")
        self.routes = None if routes is None else {str(r) for r in routes}
        self._rng = random.Random(self.seed)

    def clear(self) -> None:
        self.set({})

    def next_fault(self, api: str) -> str | None:
        """The fault for this call on ``api``, or None to run the API normally."""
        queue = self.script.get(api)
        if queue:
            kind = queue.pop(0)
            return None if kind == "ok" else kind
        if self.rate <= 0 or (self.routes is not None and api not in self.routes):
            return None
        if self._rng.random() >= self.rate:
            return None
        kind = self._rng.choice(self.kinds)
        return None if kind == "ok" else kind

    def to_dict(self) -> dict[str, Any]:
        return {
            "script": {api: list(kinds) for api, kinds in self.script.items()},
            "rate": self.rate,
            "kinds": list(self.kinds),
            "seed": self.seed,
            "slow_seconds": self.slow_seconds,
            "routes": None if self.routes is None else sorted(self.routes),
        }
