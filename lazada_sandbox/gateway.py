"""The request pipeline of the imitated gateway, independent of HTTP.

Order of checks: API path, mandatory parameters, app key, signature, timestamp window, token,
rate limit, then the fault plan, then the API itself. Every call lands in the ledger.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from lazada_sandbox import auth, cancel, orders
from lazada_sandbox.call import Call, Handler
from lazada_sandbox.clock import Clock
from lazada_sandbox.envelope import (
    HTML_502,
    INJECTABLE,
    ApiError,
    RequestIds,
    TopLevel,
    api_call_limit,
    bad_signature,
    error_body,
    illegal_access_token,
    illegal_refresh_token,
    invalid_api_path,
    invalid_parameter,
    missing_parameter,
    stale_timestamp,
    success,
)
from lazada_sandbox.faults import FaultPlan
from lazada_sandbox.ledger import LedgerEntry, public_params
from lazada_sandbox.ratelimit import SlidingWindowLimiter
from lazada_sandbox.signing import parse_timestamp, signature_ok
from lazada_sandbox.state import SandboxState

log = structlog.get_logger("lazada_sandbox")

ROUTES: dict[str, Handler] = {
    "/orders/get": orders.get_orders,
    "/order/get": orders.get_order,
    "/order/items/get": orders.get_order_items,
    "/orders/items/get": orders.get_multiple_order_items,
    "/order/reverse/cancel/validate": cancel.validate,
    "/order/reverse/cancel/create": cancel.create,
    "/auth/token/refresh": auth.refresh,
}
AUTH_ROUTES = frozenset({"/auth/token/refresh"})
_MANDATORY = ("app_key", "timestamp", "sign_method", "sign")


@dataclass
class Reply:
    """What to send back: a JSON body, an HTML page, or nothing (drop the connection)."""

    kind: Literal["json", "html", "drop"]
    body: Any = None
    status: int = 200


TIP_ERROR = {"tip_type": "error", "tip_content": "stock will be set as 0"}


class Gateway:
    """Checks, meters, faults and dispatches one call; owns nothing it does not record."""

    def __init__(
        self,
        *,
        state: SandboxState,
        clock: Clock,
        faults: FaultPlan,
        limiter: SlidingWindowLimiter,
        ledger: list[LedgerEntry],
    ) -> None:
        self.state = state
        self.clock = clock
        self.faults = faults
        self.limiter = limiter
        self.ledger = ledger
        self.request_ids = RequestIds()

    async def handle(self, api: str, method: str, params: dict[str, str]) -> Reply:
        entry = LedgerEntry(
            time=time.time(),
            monotonic=time.monotonic(),
            route=api,
            method=method,
            seller=None,
            params=public_params(params),
            signature_ok=None,
            code=None,
            request_id=self.request_ids.next(),
            http_status=None,
        )
        self.ledger.append(entry)
        reply = await self._process(api, params, entry)
        log.debug(
            "sandbox_call",
            api=api,
            seller=entry.seller,
            code=entry.code,
            fault=entry.fault,
            request_id=entry.request_id,
        )
        return reply

    async def _process(self, api: str, params: dict[str, str], entry: LedgerEntry) -> Reply:
        try:
            call = self._admit(api, params, entry)
        except ApiError as err:
            return self._json(entry, error_body(err, entry.request_id))
        entry.fault = self.faults.next_fault(api)
        return await self._run(call, entry)

    def _admit(self, api: str, params: dict[str, str], entry: LedgerEntry) -> Call:
        if api not in ROUTES:
            raise invalid_api_path()
        for name in _MANDATORY:
            if not params.get(name):
                raise missing_parameter(name)
        scenario = self.state.scenario
        if params["app_key"] != scenario.app_key:
            raise invalid_parameter("app_key")
        if params["sign_method"].lower() != "sha256":
            raise invalid_parameter("sign_method")
        entry.signature_ok = signature_ok(
            scenario.app_secret, api, params, rule=scenario.empty_value_rule
        )
        if not entry.signature_ok:
            raise bad_signature()
        self._check_timestamp(params["timestamp"])
        seller = self._authenticate(api, params)
        entry.seller = seller
        if not self.limiter.admit(seller, api, entry.monotonic):
            raise api_call_limit()
        return Call(api=api, seller=seller, params=params, state=self.state)

    def _check_timestamp(self, raw: str) -> None:
        sent = parse_timestamp(raw)
        if sent is None:
            raise invalid_parameter("timestamp")
        window = self.state.scenario.timestamp_window_s
        if abs(sent - self.clock.now()) > window:
            raise stale_timestamp(window)

    def _authenticate(self, api: str, params: dict[str, str]) -> str:
        if api in AUTH_ROUTES:
            token = params.get("refresh_token", "")
            if not token:
                raise missing_parameter("refresh_token")
            seller = self.state.seller_for_refresh(token)
            if seller is None:
                raise illegal_refresh_token()
            return seller
        token = params.get("access_token", "")
        if not token:
            raise missing_parameter("access_token")
        seller = self.state.seller_for_access(token)
        if seller is None:
            raise illegal_access_token()
        return seller

    async def _run(self, call: Call, entry: LedgerEntry) -> Reply:
        fault = entry.fault
        if fault in INJECTABLE:
            return self._json(entry, error_body(INJECTABLE[fault], entry.request_id))
        if fault == "html502":
            entry.http_status = 502
            return Reply("html", HTML_502, 502)
        if fault == "drop":
            return Reply("drop")
        if fault == "tip_error":
            return self._json(entry, success(TIP_ERROR, entry.request_id))
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
        body = self._apply(call, entry)
        if fault == "tip_error_after_apply":
            body = success(TIP_ERROR, entry.request_id)
        if fault == "drop_after_apply":
            return Reply("drop")
        if fault == "late_after_apply":
            await asyncio.sleep(self.faults.slow_seconds)
        return self._json(entry, body)

    def _apply(self, call: Call, entry: LedgerEntry) -> dict[str, Any]:
        entry.applied = True
        try:
            result = ROUTES[call.api](call)
        except ApiError as err:
            body = error_body(err, entry.request_id)
        else:
            if isinstance(result, TopLevel):
                body = {**result.fields, "code": "0", "request_id": entry.request_id}
            else:
                body = success(result, entry.request_id)
        entry.result_code = body["code"]
        return body

    @staticmethod
    def _json(entry: LedgerEntry, body: dict[str, Any]) -> Reply:
        entry.code = body["code"]
        entry.http_status = 200
        return Reply("json", body, 200)
