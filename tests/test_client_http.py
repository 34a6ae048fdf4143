"""The client over real loopback HTTP against a scripted server that sends exactly what we say.

These cover answers the sandbox does not produce on purpose (odd ids, unknown codes, truncated
bodies, redirects); tests/test_client_sandbox.py covers the realistic gateway.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from structlog.testing import capture_logs

from lazcancel.client import (
    ApiResponse,
    LazadaClient,
    RetryPolicy,
    StaticToken,
    session_for,
    sign,
)
from lazcancel.errors import (
    AuthError,
    BusinessError,
    ConfigurationError,
    OutcomeUnknownError,
    RateLimitedError,
    TransientError,
)
from lazcancel.models import Verdict
from lazcancel.ratelimit import LocalLimiter

TOKEN = "tok-SECRET-50000601c30atpedfgu3"
APP_SECRET = "app-SECRET-4Ln7zVbLmZ3pQ8rT2xY6"
VALIDATE = "/order/reverse/cancel/validate"
CREATE = "/order/reverse/cancel/create"


@dataclass
class Reply:
    body: bytes = b'{"code":"0","data":{},"request_id":"rid-ok"}'
    status: int = 200
    content_type: str = "application/json"
    drop: bool = False
    truncate: bool = False
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def ok(data: Any, request_id: str = "rid-ok") -> Reply:
    return Reply(json.dumps({"code": "0", "data": data, "request_id": request_id}).encode())


def err(code: str, message: str, kind: str = "ISV", request_id: str = "rid-err") -> Reply:
    body = {"type": kind, "code": code, "message": message, "request_id": request_id}
    return Reply(json.dumps(body).encode())


@dataclass
class Seen:
    path: str
    raw_query: str
    params: dict[str, str]


Answer = Reply | Callable[[Seen], Reply]


class ScriptedServer:
    """A minimal HTTP/1.1 server: one scripted answer per request, per path, in order."""

    def __init__(self) -> None:
        self.script: dict[str, deque[Answer]] = defaultdict(deque)
        self.seen: list[Seen] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def answer(self, path: str, *answers: Answer) -> None:
        self.script[path].extend(answers)

    def calls(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/rest"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].decode()
        parts = urlsplit(target)
        seen = Seen(parts.path.removeprefix("/rest"), parts.query, dict(parse_qsl(parts.query)))
        self.seen.append(seen)
        queue = self.script[seen.path]
        answer = queue.popleft() if queue else Reply()
        reply = answer(seen) if callable(answer) else answer
        await asyncio.sleep(reply.delay)
        if reply.drop:
            return False
        length = len(reply.body) + (50 if reply.truncate else 0)
        lines = [
            f"HTTP/1.1 {reply.status} X",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {length}",
            *(f"{k}: {v}" for k, v in reply.headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + reply.body)
        await writer.drain()
        return not reply.truncate


class RecordingLimiter:
    """LocalLimiter that also records what the client asked of it."""

    def __init__(self) -> None:
        self.inner = LocalLimiter(rate_for=lambda api: 1000.0)
        self.acquired: list[str] = []
        self.bans: list[tuple[str, float]] = []

    async def acquire(self, api: str) -> None:
        self.acquired.append(api)
        await self.inner.acquire(api)

    async def ban(self, api: str, seconds: float) -> None:
        self.bans.append((api, seconds))


class RotatingTokens:
    """Hands out tok-1, and tok-2 after a refresh of tok-1."""

    def __init__(self) -> None:
        self.current = "tok-1"
        self.refreshed: list[str] = []

    async def access_token(self) -> str:
        return self.current

    async def refresh(self, stale_token: str) -> str:
        self.refreshed.append(stale_token)
        self.current = f"tok-{len(self.refreshed) + 1}"
        return self.current


@dataclass
class Http:
    server: ScriptedServer
    session: aiohttp.ClientSession
    limiter: RecordingLimiter
    sleeps: list[float]

    def client(self, **overrides: Any) -> LazadaClient:
        ticks = iter(range(10**6))

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        options: dict[str, Any] = dict(
            session=self.session,
            api_url=self.server.url,
            app_key="123456",
            app_secret=APP_SECRET,
            tokens=StaticToken(TOKEN),
            limiter=self.limiter,
            retry=RetryPolicy(attempts=4, backoff_base=0.5, backoff_cap=3.0, jitter=0.25),
            clock=lambda: 1_700_000_000 + next(ticks),
            seller="shop-a",
            sleep=sleep,
        )
        options.update(overrides)
        return LazadaClient(**options)


@dataclass
class HttpSettings:
    connect_timeout: float = 1.0
    read_timeout: float = 0.5
    connection_limit: int = 4


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    server = ScriptedServer()
    await server.start()
    session = session_for(HttpSettings())
    try:
        yield Http(server, session, RecordingLimiter(), [])
    finally:
        await session.close()
        await server.close()


def _items(order_id: int, *item_ids: int, as_strings: bool = False) -> list[dict[str, Any]]:
    def ident(value: int) -> int | str:
        return str(value) if as_strings else value

    return [
        {"order_id": ident(order_id), "order_item_id": ident(i), "status": "pending"}
        for i in item_ids
    ]


# --- requests on the wire ---------------------------------------------------------------------


async def test_every_request_is_signed_with_a_fresh_ms_timestamp(http: Http) -> None:
    http.server.answer("/order/items/get", err("ServiceTimeout", "timeout"), ok([]))
    await http.client().get_order_items("1001")

    first, second = http.server.seen
    assert first.params["timestamp"] == "1700000000000"
    assert second.params["timestamp"] == "1700000001000"
    for seen in (first, second):
        params = dict(seen.params)
        signature = params.pop("sign")
        assert signature == sign(APP_SECRET, "/order/items/get", params)
        assert params["sign_method"] == "sha256"
        assert params["app_key"] == "123456"
        assert params["access_token"] == TOKEN
    assert http.limiter.acquired == ["/order/items/get", "/order/items/get"]


async def test_plus_goes_out_as_percent_2b_and_empty_values_are_not_sent(http: Http) -> None:
    http.server.answer("/orders/get", ok({"count": 0, "orders": []}))
    after = datetime(2023, 11, 1, tzinfo=timezone(timedelta(hours=8)))
    orders = [o async for o in http.client().get_orders(created_after=after)]

    assert orders == []
    (seen,) = http.server.seen
    assert "created_after=2023-11-01T00%3A00%3A00%2B08%3A00" in seen.raw_query
    assert seen.params["created_after"] == "2023-11-01T00:00:00+08:00"
    assert "status" not in seen.params
    assert "created_before" not in seen.params
    assert seen.params["sort_direction"] == "ASC"
    assert seen.params["limit"] == "100"


async def test_id_lists_compact_json_strings_and_bare_numbers(http: Http) -> None:
    http.server.answer(
        VALIDATE, ok({"tip_type": "warning", "tip_content": "", "reason_options": []})
    )
    http.server.answer("/orders/items/get", ok([]))
    client = http.client()
    await client.validate_cancel("1001", ["2001", "2002"])
    await client.get_multiple_order_items(["1001", "1002"])

    assert http.server.calls(VALIDATE)[0].params["order_item_id_list"] == '["2001","2002"]'
    assert http.server.calls("/orders/items/get")[0].params["order_ids"] == "[1001,1002]"


async def test_empty_or_malformed_ids_are_refused_before_any_call(http: Http) -> None:
    client = http.client()
    with pytest.raises(ValueError, match="non-empty list"):
        await client.validate_cancel("1001", [])
    with pytest.raises(ValueError, match="non-empty list"):
        await client.create_cancel("1001", [], "10000021")
    with pytest.raises(ValueError, match=r"order_item_id must be a digit string, got '2\.8E\+14'"):
        await client.create_cancel("1001", ["2.8E+14"], "10000021")
    with pytest.raises(ValueError, match="reason_id"):
        await client.create_cancel("1001", ["2001"], "")
    with pytest.raises(ValueError, match="order_id must be a digit string"):
        await client.get_order_items("1001.0")
    with pytest.raises(ValueError, match="UTC offset"):
        [o async for o in client.get_orders(created_after=datetime(2024, 1, 1))]
    assert http.server.seen == []
    assert await client.get_multiple_order_items([]) == {}


async def test_auth_endpoint_gets_no_access_token(http: Http) -> None:
    body = {
        "code": "0",
        "request_id": "rid-auth",
        "access_token": "new-access",
        "refresh_token": "new-refresh",
        "expires_in": 604800,
        "refresh_expires_in": 2592000,
        "country_user_info_list": [],
    }
    http.server.answer("/auth/token/refresh", Reply(json.dumps(body).encode()))
    tokens = await http.client().refresh_token("old-refresh")

    (seen,) = http.server.seen
    assert "access_token" not in seen.params
    assert seen.params["refresh_token"] == "old-refresh"
    assert (tokens.access_token, tokens.refresh_token) == ("new-access", "new-refresh")
    assert tokens.expires_in == 604800
    assert "new-access" not in repr(tokens)


# --- answers ----------------------------------------------------------------------------------


async def test_ids_as_numbers_or_strings_become_digit_strings(http: Http) -> None:
    big = 9007199254740991
    http.server.answer("/order/items/get", ok(_items(1381129206325020, big, 1381129206425020)))
    http.server.answer(
        "/order/items/get", ok(_items(1381129206325020, 1381129206425020, as_strings=True))
    )
    client = http.client()
    as_numbers = await client.get_order_items("1381129206325020")
    as_strings = await client.get_order_items("1381129206325020")

    assert [i.order_item_id for i in as_numbers] == [str(big), "1381129206425020"]
    assert as_strings[0].order_item_id == "1381129206425020"
    assert as_strings[0].order_id == "1381129206325020"
    assert as_strings[0].status == "pending"


@pytest.mark.parametrize("bad", ["1.381129206425020e15", "1381129206425020.0", "-5", "true"])
async def test_non_integral_ids_are_refused_not_altered(http: Http, bad: str) -> None:
    body = f'{{"code":"0","request_id":"r","data":[{{"order_id":1,"order_item_id":{bad}}}]}}'
    http.server.answer("/order/items/get", Reply(body.encode()))
    with pytest.raises(TransientError) as info:
        await http.client().get_order_items("1")
    assert info.value.code == "upstream_error"
    assert "order_item_id is not a whole number" in info.value.message
    assert len(http.server.seen) == 1


async def test_validate_tip_and_reason_options(http: Http) -> None:
    data = {
        "tip_type": "warning",
        "tip_content": "SKU stock may be set to 0",
        "reason_options": [
            {"reason_id": "10000019", "reason_name": "Sourcing Delay"},
            {"reason_id": 10000021, "reason_name": "Out of Stock"},
        ],
    }
    http.server.answer(VALIDATE, ok(data, request_id="rid-v"))
    http.server.answer(VALIDATE, ok(None, request_id="rid-v2"))
    client = http.client()
    tip = await client.validate_cancel("1001", ["2001"])
    empty = await client.validate_cancel("1001", ["2001"])

    assert tip.verdict is Verdict.ACCEPTED
    assert [(o.reason_id, o.reason_name) for o in tip.reason_options] == [
        ("10000019", "Sourcing Delay"),
        ("10000021", "Out of Stock"),
    ]
    assert (tip.request_id, tip.attempts) == ("rid-v", 1)
    assert empty.verdict is Verdict.UNKNOWN


async def test_multi_items_absent_orders_and_numbers(http: Http) -> None:
    data = [
        {"order_id": 1001, "order_number": 1001, "order_items": _items(1001, 2001, 2002)},
        {"order_id": "1003", "order_number": "1003", "order_items": []},
    ]
    http.server.answer("/orders/items/get", ok(data))
    found = await http.client().get_multiple_order_items(["1001", "1002", "1003", "1001"])

    assert set(found) == {"1001", "1003"}
    assert [i.order_item_id for i in found["1001"]] == ["2001", "2002"]
    assert found["1003"] == []
    assert http.server.seen[0].params["order_ids"] == "[1001,1002,1003]"


async def test_multi_items_chunks_of_50_and_falls_back_on_37(http: Http) -> None:
    ids = [str(1000 + n) for n in range(120)]

    def chunk_answer(seen: Seen) -> Reply:
        wanted = json.loads(seen.params["order_ids"])
        if 1060 in wanted:
            return err("37", "E037: One or more order id in the list are incorrect")
        entries = [{"order_id": o, "order_items": _items(o, o * 10)} for o in wanted]
        return ok(entries)

    def one_answer(seen: Seen) -> Reply:
        order_id = int(seen.params["order_id"])
        if order_id == 1060:
            return err("16", 'E016: "1060" Invalid Order ID')
        return ok(_items(order_id, order_id * 10))

    http.server.answer("/orders/items/get", *[chunk_answer] * 3)
    http.server.answer("/order/items/get", *[one_answer] * 50)
    found = await http.client().get_multiple_order_items(ids)

    sizes = [len(json.loads(s.params["order_ids"])) for s in http.server.calls("/orders/items/get")]
    assert sizes == [50, 50, 20]
    assert len(http.server.calls("/order/items/get")) == 50
    assert "1060" not in found
    assert len(found) == 119
    assert found["1061"][0].order_item_id == "10610"


async def test_multi_items_39_means_none_found(http: Http) -> None:
    http.server.answer("/orders/items/get", err("39", "E039: No orders were found"))
    assert await http.client().get_multiple_order_items(["1001"]) == {}


# --- error classes ----------------------------------------------------------------------------


async def test_html_502_is_transient_retried_with_backoff(http: Http) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 5000 + b"</body>"
    bad = Reply(page, status=502, content_type="text/html")
    http.server.answer("/order/items/get", bad, bad, bad, bad)
    with capture_logs() as logs, pytest.raises(TransientError) as info:
        await http.client().get_order_items("1001")

    exc = info.value
    assert (exc.code, exc.attempts, exc.api) == ("upstream_error", 4, "/order/items/get")
    assert "HTTP 502" in exc.message
    assert len(exc.message) < 200
    assert len(http.server.seen) == 4
    assert len(http.sleeps) == 3
    for n, delay in enumerate(http.sleeps):
        nominal = min(3.0, 0.5 * 2**n)
        assert nominal * 0.75 - 1e-9 <= delay <= min(3.0, nominal * 1.25) + 1e-9
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["api_retry"] * 3
    assert logs[-1]["event"] == "api_error"
    assert logs[-1]["attempt"] == 4


@pytest.mark.parametrize(
    "reply",
    [
        Reply(b"<html>punish</html>", content_type="text/html"),
        Reply(b'{"code":"0","data":[', truncate=False),
        Reply(b'{"code":"0","data":[]}', truncate=True),
        Reply(drop=True),
        Reply(b"[1,2]"),
        Reply(status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"}),
    ],
    ids=["html-200", "broken-json", "truncated", "dropped", "not-envelope", "redirect"],
)
async def test_broken_answers_are_transient_upstream_errors(http: Http, reply: Reply) -> None:
    http.server.answer("/order/items/get", reply, ok(_items(1, 2)))
    items = await http.client().get_order_items("1")
    assert [i.order_item_id for i in items] == ["2"]
    assert len(http.server.seen) == 2
    assert len(http.sleeps) == 1


async def test_read_timeout_is_transient(http: Http) -> None:
    http.server.answer("/order/items/get", Reply(delay=0.8), ok([]))
    assert await http.client().get_order_items("1") == []
    assert len(http.server.seen) == 2


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ServiceTimeout", "ISP"),
        ("UnknownRuntimeException", "ISP"),
        ("HttpConnectError", "ISP"),
        ("6", "ISP"),
        ("15", "ISP"),
        ("106", "ISV"),
        ("SomethingNew", "SYSTEM"),
        ("SomethingElse", "ISP"),
    ],
)
async def test_transient_codes_are_retried(http: Http, code: str, kind: str) -> None:
    http.server.answer(VALIDATE, err(code, "trouble", kind=kind))
    tip = await http.client().validate_cancel("1001", ["2001"])
    assert tip.attempts == 2
    assert len(http.server.seen) == 2


async def test_unknown_runtime_exception_gets_few_attempts(http: Http) -> None:
    http.server.answer(VALIDATE, *[err("UnknownRuntimeException", "rpc", "ISP")] * 6)
    with pytest.raises(TransientError) as info:
        await http.client(retry=RetryPolicy(attempts=6)).validate_cancel("1001", ["2001"])
    assert info.value.attempts == 3


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("IllegalRefreshToken", "The specified refresh token is invalid or expired"),
        ("MissingParameter", 'the input parameter "sign" is not supplied'),
        ("IncompleteSignature", "The request signature does not conform to lazop standards"),
        ("InvalidParameter", 'The specified parameter "order_id" is not valid'),
        ("SellerNotActive", "Seller not active"),
        ("InsufficientPermission", "App does not have permission to call this API"),
        ("InvalidApiPath", "The specified API Path is invalid"),
        ("5", "E005: Invalid Request Format"),
        ("117", "E0117: no user id"),
        ("BrandNewIsvCode", "something"),
    ],
)
async def test_configuration_codes_are_not_retried(http: Http, code: str, message: str) -> None:
    http.server.answer(VALIDATE, err(code, message))
    with pytest.raises(ConfigurationError) as info:
        await http.client().validate_cancel("1001", ["2001"])
    assert (info.value.code, info.value.attempts, info.value.request_id) == (code, 1, "rid-err")
    assert len(http.server.seen) == 1


async def test_error_6_invalid_status_filter_on_get_orders_is_configuration(http: Http) -> None:
    http.server.answer("/orders/get", err("6", "Invalid status filter: pending, canceled ..."))
    after = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigurationError):
        [o async for o in http.client().get_orders(created_after=after, status="bogus")]
    assert http.server.seen[0].params["status"] == "bogus"


@pytest.mark.parametrize(
    ("code", "message", "item_ids"),
    [
        ("123", "E0123: invalid trade order lines [2001, 2003]", ("2001", "2003")),
        ("123", "E0123: invalid trade order lines 2001,2003", ("2001", "2003")),
        ("124", "E0124: invalid seller id for this order line 2002", ("2002",)),
        ("102", "E0102: trade order line id is empty or invalid", ()),
        ("104", "E0104: reason is empty or invalid", ()),
        ("122", "E0122: invalid trade order", ()),
        ("777", "E0777: an undocumented refusal", ()),
    ],
)
async def test_business_codes_carry_offending_item_ids(
    http: Http, code: str, message: str, item_ids: tuple[str, ...]
) -> None:
    http.server.answer(CREATE, err(code, message))
    with pytest.raises(BusinessError) as info:
        await http.client().create_cancel("1001", ["2001", "2002", "2003"], "10000021")
    assert info.value.code == code
    assert info.value.item_ids == item_ids
    assert len(http.server.seen) == 1


async def test_rate_limit_bans_the_api_then_retries(http: Http) -> None:
    limit = err(
        "ApiCallLimit", "Api access frequency exceeds the limit. this ban will last 3 seconds."
    )
    http.server.answer(VALIDATE, limit, err("901", "Limit service request speed"), ok({}))
    with capture_logs() as logs:
        tip = await http.client().validate_cancel("1001", ["2001"])

    assert tip.attempts == 3
    assert http.limiter.bans == [(VALIDATE, 3.0), (VALIDATE, 1.0)]
    assert 3.0 <= http.sleeps[0] <= 3.75
    assert 1.0 <= http.sleeps[1] <= 1.25
    limited = [e for e in logs if e["event"] == "api_rate_limited"]
    assert [e["ban_seconds"] for e in limited] == [3.0, 1.0]
    assert limited[0]["seller"] == "shop-a"


async def test_rate_limit_exhausts_attempts(http: Http) -> None:
    http.server.answer(VALIDATE, *[err("ApiCallLimit", "ban will last 0 seconds")] * 2)
    with pytest.raises(RateLimitedError) as info:
        await http.client(retry=RetryPolicy(attempts=2)).validate_cancel("1001", ["2001"])
    assert (info.value.attempts, info.value.ban_seconds) == (2, 1.0)


async def test_auth_error_refreshes_once_then_retries_once(http: Http) -> None:
    tokens = RotatingTokens()
    http.server.answer(VALIDATE, err("IllegalAccessToken", "invalid or expired"), ok({}))
    tip = await http.client(tokens=tokens).validate_cancel("1001", ["2001"])

    assert tokens.refreshed == ["tok-1"]
    assert [s.params["access_token"] for s in http.server.seen] == ["tok-1", "tok-2"]
    assert tip.attempts == 2


async def test_second_auth_error_propagates(http: Http) -> None:
    tokens = RotatingTokens()
    http.server.answer(VALIDATE, *[err("IllegalAccessToken", "invalid or expired")] * 3)
    with pytest.raises(AuthError) as info:
        await http.client(tokens=tokens).validate_cancel("1001", ["2001"])
    assert tokens.refreshed == ["tok-1"]
    assert info.value.attempts == 2
    assert len(http.server.seen) == 2


async def test_static_token_cannot_refresh(http: Http) -> None:
    http.server.answer(VALIDATE, err("IllegalAccessToken", "invalid or expired"))
    with pytest.raises(AuthError) as info:
        await http.client().validate_cancel("1001", ["2001"])
    assert info.value.request_id == "rid-err"
    assert info.value.api == VALIDATE
    assert len(http.server.seen) == 1


# --- create is never repeated blindly ---------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        err("ServiceTimeout", "The request has failed due to service timeout", "ISP"),
        err("106", "E0106: ROC internal error"),
        err("6", "E006: System Error"),
        Reply(b"<html>502</html>", status=502, content_type="text/html"),
        Reply(drop=True),
        Reply(b'{"code":"0"', truncate=True),
        Reply(delay=0.8),
    ],
    ids=["ServiceTimeout", "106", "6", "html502", "dropped", "truncated", "read-timeout"],
)
async def test_create_failure_that_may_have_applied_is_outcome_unknown(
    http: Http, reply: Reply
) -> None:
    http.server.answer(CREATE, reply, ok({"tip_type": "success", "tip_content": "done"}))
    with pytest.raises(OutcomeUnknownError) as info:
        await http.client().create_cancel("1001", ["2001"], "10000021")
    assert info.value.attempts == 1
    assert len(http.server.calls(CREATE)) == 1
    assert http.sleeps == []


async def test_create_is_retried_after_rate_limit(http: Http) -> None:
    http.server.answer(
        CREATE,
        err("ApiCallLimit", "this ban will last 1 seconds."),
        ok({"tip_type": "success", "tip_content": "done"}, request_id="rid-c"),
    )
    tip = await http.client().create_cancel("1001", ["2001"], "10000021")
    assert (tip.verdict, tip.attempts, tip.request_id) == (Verdict.ACCEPTED, 2, "rid-c")
    assert http.server.calls(CREATE)[1].params["reason_id"] == "10000021"


async def test_create_is_retried_when_the_connection_was_refused(http: Http) -> None:
    dead = ScriptedServer()
    await dead.start()
    url = dead.url
    await dead.close()
    with pytest.raises(TransientError) as info:
        await http.client(api_url=url).create_cancel("1001", ["2001"], "10000021")
    assert type(info.value) is TransientError
    assert info.value.attempts == 4
    assert len(http.sleeps) == 3


# --- secrets ----------------------------------------------------------------------------------


async def test_no_secret_in_reprs_logs_or_messages(http: Http) -> None:
    echo = f"<html>blocked {TOKEN} {APP_SECRET}</html>".encode()
    http.server.answer(VALIDATE, Reply(echo, status=403, content_type="text/html"))
    http.server.answer(VALIDATE, err("InvalidParameter", f"bad token {TOKEN}"))
    client = http.client()
    with capture_logs() as logs, pytest.raises(ConfigurationError) as info:
        await client.validate_cancel("1001", ["2001"])

    response = ApiResponse({"x": 1}, "rid", 1, {"access_token": TOKEN})
    texts = [repr(client), repr(StaticToken(TOKEN)), repr(response), str(info.value)]
    texts += [json.dumps(e, default=str) for e in logs]
    assert any(e["event"] == "api_retry" for e in logs)
    signature = http.server.seen[0].params["sign"]
    for text in texts:
        for secret in (TOKEN, APP_SECRET, signature):
            assert secret not in text
    assert "<redacted>" in str(info.value)


async def test_session_for_separates_connect_and_read_timeouts() -> None:
    session = session_for(HttpSettings(connect_timeout=2.0, read_timeout=7.0, connection_limit=9))
    try:
        assert session.timeout.sock_connect == 2.0
        assert session.timeout.sock_read == 7.0
        assert session.timeout.total is None
        assert session.timeout.connect is None
        assert session.connector is not None
        assert session.connector.limit == 9
    finally:
        await session.close()


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="fraction"):
        RetryPolicy(jitter=2.0)


# --- GetOrders paging -------------------------------------------------------------------------

BASE = datetime(2024, 3, 1, tzinfo=timezone(timedelta(hours=8)))


def _orders_gateway(created: list[datetime]) -> Callable[[Seen], Reply]:
    """GetOrders over ``created`` (ASC), with the gateway's offset and limit caps."""

    def answer(seen: Seen) -> Reply:
        after = datetime.fromisoformat(seen.params["created_after"])
        offset, limit = int(seen.params["offset"]), int(seen.params["limit"])
        if offset > 5000:
            return err("14", "E014: Invalid Offset")
        if limit > 100:
            return err("19", "E019: Invalid Limit")
        matches = [(n, at) for n, at in enumerate(created) if at >= after]
        page = matches[offset : offset + limit]
        orders = [
            {
                "order_id": 10**14 + n,
                "created_at": at.isoformat(),
                "updated_at": "2024-03-02 10:00:00 +0800",
                "statuses": ["pending"],
            }
            for n, at in page
        ]
        return ok({"count": len(orders), "countTotal": len(matches), "orders": orders})

    return answer


async def test_get_orders_pages_past_offset_5000_without_duplicates(http: Http) -> None:
    created = [BASE + timedelta(seconds=n // 3) for n in range(5300)]
    http.server.answer("/orders/get", *[_orders_gateway(created)] * 60)
    orders = [o async for o in http.client().get_orders(created_after=BASE, page_size=500)]

    assert [o.order_id for o in orders] == [str(10**14 + n) for n in range(5300)]
    assert orders[0].statuses == ("pending",)
    assert orders[0].updated_at == datetime(2024, 3, 2, 2, tzinfo=UTC)
    params = [s.params for s in http.server.calls("/orders/get")]
    assert max(int(p["offset"]) for p in params) == 5000
    assert {p["limit"] for p in params} == {"100"}
    windows = sorted({p["created_after"] for p in params})
    assert windows == [BASE.isoformat(), created[5099].isoformat()]


async def test_get_orders_refuses_to_loop_when_one_second_holds_too_many(http: Http) -> None:
    http.server.answer("/orders/get", *[_orders_gateway([BASE] * 5200)] * 60)
    with pytest.raises(ConfigurationError) as info:
        [o async for o in http.client().get_orders(created_after=BASE)]
    assert info.value.code == "window_exhausted"
    assert len(http.server.calls("/orders/get")) == 51
