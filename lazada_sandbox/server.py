"""The sandbox as an aiohttp server: ``/rest/...`` for the APIs, ``/_sandbox/...`` for control.

Parameters are decoded here from the raw query string and form body, with ``+`` read as a space
and ``%2B`` as a plus, exactly as the real gateway reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from email.utils import formatdate
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from lazada_sandbox.clock import Clock
from lazada_sandbox.faults import FaultPlan
from lazada_sandbox.gateway import Gateway, Reply
from lazada_sandbox.ledger import LedgerEntry
from lazada_sandbox.model import Item
from lazada_sandbox.ratelimit import SlidingWindowLimiter
from lazada_sandbox.scenario import Scenario
from lazada_sandbox.state import SandboxState

log = structlog.get_logger("lazada_sandbox")

_FORM = "application/x-www-form-urlencoded"


async def read_params(request: web.Request) -> dict[str, str]:
    """Query and form parameters, URL-decoded; the first occurrence of a key wins."""
    pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True, errors="replace")
    if request.method == "POST" and request.content_type == _FORM:
        body = (await request.read()).decode("utf-8", errors="replace")
        pairs += parse_qsl(body, keep_blank_values=True, errors="replace")
    elif request.method == "POST" and request.content_type.startswith("multipart/"):
        form = await request.post()
        pairs += [(k, v) for k, v in form.items() if isinstance(v, str)]
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key, value)
    return params


class SandboxServer:
    """A running imitation of the Lazada gateway for one scenario, on a loopback port."""

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario
        self.host = host
        self.port = port
        self.clock = Clock()
        self.ledger: list[LedgerEntry] = []
        self.faults = FaultPlan(scenario.faults)
        self.state = SandboxState(scenario, self.clock)
        self.limiter = SlidingWindowLimiter(scenario.rate_limit, scenario.rate_limit_per_api)
        self.gateway = Gateway(
            state=self.state,
            clock=self.clock,
            faults=self.faults,
            limiter=self.limiter,
            ledger=self.ledger,
        )
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL a client uses, e.g. ``http://127.0.0.1:8765/rest``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/rest"

    async def start(self) -> SandboxServer:
        app = web.Application()
        app.on_response_prepare.append(self._date_header)
        app.router.add_route("GET", "/rest/{api:.+}", self._rest)
        app.router.add_route("POST", "/rest/{api:.+}", self._rest)
        app.router.add_get("/_sandbox/ledger", self._get_ledger)
        app.router.add_get("/_sandbox/state", self._get_state)
        app.router.add_post("/_sandbox/reset", self._post_reset)
        app.router.add_post("/_sandbox/faults", self._post_faults)
        app.router.add_post("/_sandbox/clock", self._post_clock)
        app.router.add_post("/_sandbox/expire-token", self._post_expire)
        # A short shutdown timeout: slow-response faults must not hold a test's teardown.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("sandbox_started", url=self.url, orders=len(self.scenario.orders))
        return self

    async def stop(self) -> None:
        self.state.cancel_timers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("sandbox_stopped", url=self.url, calls=len(self.ledger))

    async def __aenter__(self) -> SandboxServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Inspection and control from the same process

    def item(self, order_item_id: str | int) -> Item:
        """The live item (attributes, or ``item["status"]``); KeyError if unknown."""
        return self.state.items[str(order_item_id)]

    def creates_for(self, order_item_id: str | int) -> int:
        """How many accepted create calls covered this item (package mates included)."""
        return self.state.creates[str(order_item_id)]

    def reset(self, scenario: Scenario | None = None) -> None:
        """Back to the scenario's start (or a new scenario): state, ledger, faults, limits."""
        self.state.cancel_timers()
        self.scenario = scenario or self.scenario
        self.state = SandboxState(self.scenario, self.clock)
        self.gateway.state = self.state
        self.ledger.clear()
        self.faults.set(self.scenario.faults or {})
        self.limiter.default = self.scenario.rate_limit
        self.limiter.per_api = dict(self.scenario.rate_limit_per_api)
        self.limiter.reset()

    def expire_token(self, seller: str = "default", which: str = "access") -> None:
        self.state.expire_tokens(seller, which)

    # HTTP handlers

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        params = await read_params(request)
        api = "/" + request.match_info["api"]
        reply = await self.gateway.handle(api, request.method, params)
        return self._to_response(request, reply)

    def _to_response(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        if reply.kind == "drop":
            # Closing the transport makes the client see a dropped connection, no answer.
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        if reply.kind == "html":
            return web.Response(text=reply.body, status=reply.status, content_type="text/html")
        return web.Response(
            text=json.dumps(reply.body, ensure_ascii=False),
            status=reply.status,
            content_type="application/json",
        )

    async def _date_header(self, _request: web.Request, response: web.StreamResponse) -> None:
        # A real gateway's Date header tells its clock; every answer here tells the sandbox's.
        response.headers["Date"] = formatdate(self.clock.now(), usegmt=True)

    async def _get_ledger(self, request: web.Request) -> web.Response:
        return web.json_response({"entries": [e.to_dict() for e in self.ledger]})

    async def _get_state(self, request: web.Request) -> web.Response:
        snapshot = self.state.snapshot()
        snapshot["faults"] = self.faults.to_dict()
        snapshot["calls"] = len(self.ledger)
        return web.json_response(snapshot)

    async def _post_reset(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            scenario = Scenario.from_dict(body["scenario"]) if "scenario" in body else None
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad_request(f"scenario not usable: {exc}") from exc
        self.reset(scenario)
        return web.json_response({"reset": True, "orders": len(self.scenario.orders)})

    async def _post_faults(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            self.faults.set(body)
        except (TypeError, ValueError) as exc:
            raise _bad_request(str(exc)) from exc
        return web.json_response({"faults": self.faults.to_dict()})

    async def _post_clock(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        frozen = body.get("frozen_at")
        if frozen is None and body.get("frozen_ms") is not None:
            frozen = float(body["frozen_ms"]) / 1000.0
        try:
            self.clock.set(
                offset_s=float(body.get("offset_s", 0.0)),
                frozen_at=None if frozen is None else float(frozen),
            )
        except (TypeError, ValueError) as exc:
            raise _bad_request(f"clock: {exc}") from exc
        return web.json_response({"clock": self.clock.to_dict()})

    async def _post_expire(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        seller = str(body.get("seller", "default"))
        which = str(body.get("which", "access"))
        if seller not in self.state.sellers or which not in ("access", "refresh", "both"):
            raise _bad_request(f"unknown seller {seller!r} or which {which!r}")
        self.expire_token(seller, which)
        return web.json_response({"expired": which, "seller": seller})


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise _bad_request(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _bad_request("body must be a JSON object")
    return body


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def serve_forever(scenario: Scenario, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the sandbox until cancelled or until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with SandboxServer(scenario, host=host, port=port):
        await stop.wait()


def serve(scenario: Scenario, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Blocking entry point for ``lazcancel sandbox``: serve until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(scenario, host, port))
