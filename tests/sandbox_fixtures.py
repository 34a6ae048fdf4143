"""Pytest fixtures for the Lazada sandbox, and a small signed caller written for the tests.

The caller signs with its own code (not the sandbox's, not the client's), so tests of the
sandbox check it against an independent reading of the signing guide.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from lazada_sandbox import SandboxServer, Scenario

MakeSandbox = Callable[..., Awaitable[SandboxServer]]


def lazada_sign(secret: str, api: str, params: Mapping[str, str]) -> str:
    text = api + "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


class Caller:
    """Signed calls to a sandbox as one seller, returning (HTTP status, parsed body or text)."""

    def __init__(self, sb: SandboxServer, session: aiohttp.ClientSession, seller: str = "default"):
        self.sb = sb
        self.session = session
        self.seller = seller

    def signed(
        self,
        api: str,
        params: Mapping[str, Any] | None = None,
        *,
        secret: str | None = None,
        token: str | None = None,
        timestamp_ms: int | None = None,
    ) -> dict[str, str]:
        scenario = self.sb.scenario
        out = {
            "app_key": scenario.app_key,
            "sign_method": "sha256",
            "timestamp": str(timestamp_ms or int(time.time() * 1000)),
        }
        if not api.startswith("/auth/"):
            out["access_token"] = token or self.sb.state.sellers[self.seller].access_token
        for key, value in (params or {}).items():
            out[key] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        out["sign"] = lazada_sign(secret or scenario.app_secret, api, out)
        return out

    async def raw(self, api: str, query: str, *, method: str = "GET") -> tuple[int, Any]:
        """Send an already encoded parameter string as the query (GET) or form body (POST)."""
        url = self.sb.url + api
        if method == "GET":
            request = self.session.get(f"{url}?{query}")
        else:
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            request = self.session.post(url, data=query.encode(), headers=headers)
        async with request as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def __call__(
        self, api: str, params: Mapping[str, Any] | None = None, *, method: str = "GET", **kw: Any
    ) -> Any:
        """The JSON body of a signed call (asserting HTTP 200)."""
        status, body = await self.raw(api, urlencode(self.signed(api, params, **kw)), method=method)
        assert status == 200, body
        return body


@pytest.fixture
def sandbox_scenario() -> Scenario:
    """A small deterministic store: 30 orders, seed 1, one seller "default" in SG."""
    return Scenario.generate(n_orders=30, seed=1)


@pytest.fixture
async def sandbox(sandbox_scenario: Scenario) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(sandbox_scenario) as sb:
        yield sb


@pytest.fixture
async def make_sandbox() -> AsyncIterator[MakeSandbox]:
    """``await make_sandbox(scenario)`` starts a server; all are stopped at teardown."""
    started: list[SandboxServer] = []

    async def factory(scenario: Scenario, **kwargs: Any) -> SandboxServer:
        sb = SandboxServer(scenario, **kwargs)
        await sb.start()
        started.append(sb)
        return sb

    yield factory
    for sb in started:
        await sb.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def caller(sandbox: SandboxServer, http: aiohttp.ClientSession) -> Caller:
    return Caller(sandbox, http)
