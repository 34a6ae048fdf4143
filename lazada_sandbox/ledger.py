"""The record of every call the gateway received, for tests to assert on.

Entries never hold an access token, a refresh token or a signature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SECRET_PARAMS = frozenset({"access_token", "refresh_token", "sign"})


@dataclass
class LedgerEntry:
    """One call. ``code`` is what the client got in a JSON body (None: no JSON answer).

    ``time`` is wall-clock epoch seconds; ``monotonic`` is the clock the rate limiter uses.
    ``applied`` says whether the API itself ran (and so may have changed state), which
    matters for faults that drop the connection after applying a create; ``result_code`` is
    the code the API produced, delivered or not.
    """

    time: float
    monotonic: float
    route: str
    method: str
    seller: str | None
    params: dict[str, str]
    signature_ok: bool | None
    code: str | None
    request_id: str
    http_status: int | None
    fault: str | None = None
    applied: bool = False
    result_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def public_params(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in SECRET_PARAMS}
