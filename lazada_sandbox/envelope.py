"""The gateway's answer shapes: success and error envelopes, codes and request ids.

Every business and platform error the sandbox can give is named here once.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An error answer: raised by checks and handlers, turned into an envelope by the gateway."""

    def __init__(self, code: str, message: str, *, kind: str = "ISV") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.kind = kind


@dataclass
class TopLevel:
    """A success whose fields sit at the top level, as ``/auth/token/*`` answers do."""

    fields: dict[str, Any]


class RequestIds:
    """25-character request ids like the gateway's: host part, ms clock, sequence."""

    def __init__(self, seed: int | None = None) -> None:
        self._host = f"{random.Random(seed).getrandbits(32):08x}"
        self._seq = itertools.count(1)

    def next(self) -> str:
        return f"{self._host}{int(time.time() * 1000):013d}{next(self._seq) % 10000:04d}"


def success(data: Any, request_id: str) -> dict[str, Any]:
    return {"code": "0", "data": data, "request_id": request_id}


def error_body(err: ApiError, request_id: str) -> dict[str, Any]:
    return {"type": err.kind, "code": err.code, "message": err.message, "request_id": request_id}


def missing_parameter(name: str) -> ApiError:
    return ApiError(
        "MissingParameter",
        f'The input parameter "{name}" that is mandatory for processing this request '
        "is not supplied",
    )


def invalid_parameter(name: str) -> ApiError:
    return ApiError("InvalidParameter", f'The specified parameter "{name}" is not valid')


def bad_signature() -> ApiError:
    return ApiError(
        "IncompleteSignature", "The request signature does not conform to lazop standards"
    )


def stale_timestamp(window_s: int) -> ApiError:
    return ApiError(
        "IncompleteSignature",
        "The request signature does not conform to lazop standards: the timestamp is outside "
        f"the {window_s} s window around the server time",
    )


def illegal_access_token() -> ApiError:
    return ApiError("IllegalAccessToken", "The specified access token is invalid or expired")


def illegal_refresh_token() -> ApiError:
    return ApiError("IllegalRefreshToken", "The specified refresh token is invalid or expired")


def api_call_limit() -> ApiError:
    return ApiError(
        "ApiCallLimit", "Api access frequency exceeds the limit. this ban will last 1 seconds."
    )


def invalid_api_path() -> ApiError:
    return ApiError("InvalidApiPath", "The specified API Path is invalid")


def business(code: str, detail: str = "") -> ApiError:
    """A numbered business error; ``detail`` fills the message's ``%s`` where it has one."""
    template = BUSINESS_MESSAGES[code]
    return ApiError(code, template.replace("%s", detail) if "%s" in template else template)


BUSINESS_MESSAGES = {
    "6": "E006: System Error",
    "14": "E014: Invalid Offset",
    "16": 'E016: "%s" Invalid Order ID',
    "17": "E017: Invalid Date Format",
    "19": "E019: Invalid Limit",
    "36": "E036: Invalid status filter",
    "37": "E037: One or more order id in the list are incorrect",
    "38": "E038: Too many orders were requested",
    "39": "E039: No orders were found",
    "56": "E056: Invalid OrdersIdList format. Must use array format [1,2]",
    "74": "E074: Invalid sort direction",
    "75": "E075: Invalid sort filter",
    "102": "E0102: trade order line id is empty or invalid",
    "104": "E0104: reason is empty or invalid",
    "106": "E0106: ROC internal error",
    "115": "E0115: order id is null",
    "122": "E0122: invalid trade order",
    "123": "E0123: invalid trade order lines %s",
    "124": "E0124: invalid seller id for this order line %s",
}

# Errors the fault plan can inject, with the envelope type each carries.
INJECTABLE: dict[str, ApiError] = {
    "ServiceTimeout": ApiError(
        "ServiceTimeout", "The request has failed due to service timeout", kind="ISP"
    ),
    "UnknownRuntimeException": ApiError(
        "UnknownRuntimeException", "The request has failed due to RPC runtime failure", kind="ISP"
    ),
    "6": ApiError("6", BUSINESS_MESSAGES["6"], kind="ISP"),
    "106": ApiError("106", BUSINESS_MESSAGES["106"], kind="ISP"),
    "ApiCallLimit": api_call_limit(),
    "IllegalAccessToken": illegal_access_token(),
}

HTML_502 = """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>Tengine</center>
</body>
</html>
"""
