"""What an API handler gets: the authenticated seller, the decoded parameters, the state."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lazada_sandbox.envelope import ApiError
from lazada_sandbox.state import SandboxState


@dataclass
class Call:
    api: str
    seller: str
    params: dict[str, str]
    state: SandboxState

    @property
    def ids_as_strings(self) -> bool:
        return self.state.scenario.ids_as_strings

    def param(self, name: str) -> str:
        """The parameter's value, with an empty value treated as absent."""
        return self.params.get(name, "").strip()


Handler = Callable[[Call], Any]


def parse_id_array(raw: str, error: Callable[[], ApiError]) -> list[str | None]:
    """Ids from a JSON array sent as text; elements that are not whole ids become None.

    Numbers and digit strings are both accepted, with any spacing (``[1,2]``, ``[1, 2]``,
    ``["1","2"]``). A value that is not a JSON array raises ``error()``.
    """
    try:
        value = json.loads(raw)
    except ValueError:
        raise error() from None
    if not isinstance(value, list):
        raise error()
    return [_as_id(v) for v in value]


def _as_id(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None
