"""The Lazada Open Platform client: signing, transport, error classes, retries and the order APIs.

It knows nothing of batches, Redis or results; callers get typed values from lazcancel.models
or an exception from lazcancel.errors.

How answers map to errors (lazada-api.md §7): the codes listed below keep their documented
class. A code not listed is judged by its envelope: ``type`` ISP or SYSTEM (Lazada's side:
"try again later") is transient; a numeric code is a business refusal of this order, since
Lazada's business codes are numbers (``E0102``) and a per-order record is the safe reading of one
we do not know; any other unknown code (ISV, or no type) is a configuration error, so that the
run stops instead of failing every item the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn, Protocol
from urllib.parse import urlencode

import aiohttp
import structlog
from yarl import URL

from lazcancel.errors import (
    AuthError,
    BusinessError,
    ConfigurationError,
    LazadaError,
    OutcomeUnknownError,
    RateLimitedError,
    TransientError,
)
from lazcancel.models import CancelTip, OrderItem, OrderSummary, ReasonOption, TokenSet
from lazcancel.ratelimit import Limiter

UPSTREAM_ERROR = "upstream_error"
MAX_ORDERS_PER_MULTI = 50
# Fifty orders' items are well under a megabyte; anything far larger is not a real answer.
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_PAGE_SIZE = 100
MAX_OFFSET = 5000
# UnknownRuntimeException is transient but rarely cured by waiting: give it few attempts.
FEW_ATTEMPTS = 3

RATE_LIMIT_CODES = frozenset({"ApiCallLimit", "901"})
AUTH_CODES = frozenset({"IllegalAccessToken"})
TRANSIENT_CODES = frozenset(
    {"ServiceTimeout", "UnknownRuntimeException", "HttpConnectError", "6", "15", "106"}
)
BUSINESS_CODES = frozenset({"16", "37", "38", "39", "56", "102", "104", "122", "123", "124"})
CONFIGURATION_CODES = frozenset(
    {
        "IllegalRefreshToken",
        "AUTH_TYPE_UNSUPPORTED",
        "InvalidCode",
        "MissingParameter",
        "IncompleteSignature",
        "InvalidParameter",
        "SellerNotVerified",
        "SellerNotActive",
        "InsufficientPermission",
        "InvalidApiPath",
        "5",
        "115",
        "116",
        "117",
        "118",
        # GetOrders refusing our own offset, date, limit, status or sort parameters.
        "14",
        "17",
        "19",
        "36",
        "74",
        "75",
    }
)
ITEM_ID_CODES = frozenset({"123", "124"})

_BAN_RE = re.compile(r"ban will last\s+(\d+(?:\.\d+)?)\s*second", re.IGNORECASE)
_E_PREFIX_RE = re.compile(r"^\s*E\d+\s*:")
_DIGITS_RE = re.compile(r"[0-9]+")
_AUTH_PREFIX = "/auth/token/"

log = structlog.get_logger("lazcancel.client")


def sign(secret: str, api_path: str, params: Mapping[str, str]) -> str:
    """Lazada's request signature (§4): HMAC-SHA256 over the path and sorted key-value pairs."""
    message = api_path + "".join(key + params[key] for key in sorted(params))
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256)
    return digest.hexdigest().upper()


class TokenSource(Protocol):
    """Where the seller's access token comes from; a refresh may be shared between workers."""

    async def access_token(self) -> str:
        """The token to send now."""

    async def refresh(self, stale_token: str) -> str:
        """Replace ``stale_token`` (which Lazada rejected); return the fresh token or raise."""


class StaticToken:
    """One fixed access token; nothing to refresh it with."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(token=<redacted>)"

    async def access_token(self) -> str:
        return self._token

    async def refresh(self, stale_token: str) -> str:
        raise AuthError(
            "the access token is invalid or expired and no refresh token is configured",
            code="IllegalAccessToken",
        )


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently ``call()`` retries transient and rate-limited failures."""

    attempts: int = 6
    backoff_base: float = 0.25
    backoff_cap: float = 20.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be at least 1, got {self.attempts}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"retry jitter is a fraction between 0 and 1, got {self.jitter}")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = min(self.backoff_cap, self.backoff_base * 2.0 ** (attempt - 1))
        return min(self.backoff_cap, delay * (1 + rng.uniform(-self.jitter, self.jitter)))

    def ban_wait(self, ban_seconds: float, rng: random.Random) -> float:
        """Seconds to wait after an ApiCallLimit ban, spread so that waiters do not align."""
        return ban_seconds * (1 + rng.uniform(0, self.jitter))


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A successful answer: ``data`` (list, dict or None) and the whole decoded ``body``."""

    data: Any = field(repr=False)
    request_id: str | None
    attempts: int
    # The body of /auth/token/* holds tokens: never shown.
    body: Mapping[str, Any] = field(repr=False)


class HttpSettings(Protocol):
    @property
    def connect_timeout(self) -> float: ...
    @property
    def read_timeout(self) -> float: ...
    @property
    def connection_limit(self) -> int: ...


def session_for(settings: HttpSettings) -> aiohttp.ClientSession:
    """The process's one HTTP session; create it at start-up, inside the running event loop."""
    # No total or pool timeout: waiting for a free pooled connection is our own queue, not a
    # slow server. Connecting and each read are bounded separately.
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=None,
        sock_connect=settings.connect_timeout,
        sock_read=settings.read_timeout,
    )
    connector = aiohttp.TCPConnector(limit=settings.connection_limit)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


class _NotSentError(TransientError):
    """The connection failed before the request went out: safe to repeat even a create."""


class _RequestLostError(aiohttp.ClientConnectionError):
    """The connection broke after the request may have been sent."""


async def _no_silent_resend(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Stop aiohttp from re-sending a GET on a broken connection: a create must not repeat."""
    try:
        return await handler(request)
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
        raise
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        # aiohttp retries only these two types; any other ClientError propagates as is.
        raise _RequestLostError(type(exc).__name__) from None


class LazadaClient:
    """One seller's view of the Lazada API, with its token, its limiter and its retry policy."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_url: str,
        app_key: str,
        app_secret: str,
        tokens: TokenSource,
        limiter: Limiter,
        retry: RetryPolicy = RetryPolicy(),
        auth_url: str | None = None,
        clock: Callable[[], float] = time.time,
        seller: str = "default",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._api_url = api_url.rstrip("/")
        self._auth_url = (auth_url or api_url).rstrip("/")
        self._app_key = app_key
        self._app_secret = app_secret
        self._tokens = tokens
        self._limiter = limiter
        self._retry = retry
        self._clock = clock
        self._seller = seller
        self._sleep = sleep
        self._rng = random.Random()
        self._log = log.bind(seller=seller)

    def __repr__(self) -> str:
        return (
            f"LazadaClient(seller={self._seller!r}, api_url={self._api_url!r}, "
            f"app_key={self._app_key!r})"
        )

    async def call(
        self,
        api_path: str,
        params: Mapping[str, str],
        *,
        idempotent: bool = True,
        authenticated: bool = True,
    ) -> ApiResponse:
        """Call one API, retrying what the retry policy allows; raise a LazadaError otherwise.

        ``idempotent=False`` (a create) repeats only failures that certainly did not execute;
        any other transient failure becomes OutcomeUnknownError.
        """
        attempt = runtime_failures = 0
        refreshed = False
        while True:
            attempt += 1
            await self._limiter.acquire(api_path)
            token = await self._tokens.access_token() if authenticated else None
            try:
                return await self._attempt(api_path, params, token=token, attempt=attempt)
            except LazadaError as exc:
                exc.attempts = attempt
                if isinstance(exc, AuthError) and token is not None and not refreshed:
                    refreshed = True
                    await self._refresh(token, exc)
                    continue
                if exc.code == "UnknownRuntimeException":
                    runtime_failures += 1
                exhausted = (
                    attempt >= self._retry.attempts + int(refreshed)
                    or runtime_failures >= FEW_ATTEMPTS
                )
                await self._before_retry(exc, attempt, exhausted=exhausted, idempotent=idempotent)

    async def _before_retry(
        self, exc: LazadaError, attempt: int, *, exhausted: bool, idempotent: bool
    ) -> None:
        """Wait before the next attempt, or raise when ``exc`` must not be retried."""
        if not isinstance(exc, TransientError):
            self._give_up(exc)
        if not idempotent and not isinstance(exc, RateLimitedError | _NotSentError):
            self._give_up(_outcome_unknown(exc))
        if exhausted:
            self._give_up(exc)

        event = dict(api=exc.api, request_id=exc.request_id, attempt=attempt, code=exc.code)
        if isinstance(exc, RateLimitedError):
            await self._limiter.ban(exc.api, exc.ban_seconds)
            delay = self._retry.ban_wait(exc.ban_seconds, self._rng)
            self._log.warning("api_rate_limited", ban_seconds=exc.ban_seconds, **event)
        else:
            delay = self._retry.backoff(attempt, self._rng)
        self._log.warning("api_retry", delay=round(delay, 3), message=exc.message, **event)
        await self._sleep(delay)

    def _give_up(self, exc: LazadaError) -> NoReturn:
        if isinstance(exc, _NotSentError):
            exc = TransientError(
                exc.message,
                code=exc.code,
                api=exc.api,
                request_id=exc.request_id,
                attempts=exc.attempts,
            )
        # A business refusal is an expected per-order outcome; anything else needs attention.
        emit = self._log.warning if isinstance(exc, BusinessError) else self._log.error
        emit(
            "api_error",
            api=exc.api,
            request_id=exc.request_id,
            attempt=exc.attempts,
            code=exc.code,
            error=type(exc).__name__,
            message=exc.message,
        )
        raise exc

    async def _refresh(self, stale_token: str, exc: AuthError) -> None:
        self._log.warning(
            "api_token_rejected", api=exc.api, request_id=exc.request_id, attempt=exc.attempts
        )
        try:
            await self._tokens.refresh(stale_token)
        except LazadaError as refresh_exc:
            refresh_exc.attempts = max(refresh_exc.attempts, exc.attempts)
            refresh_exc.api = refresh_exc.api or exc.api
            refresh_exc.request_id = refresh_exc.request_id or exc.request_id
            self._give_up(refresh_exc)

    async def _attempt(
        self, api_path: str, params: Mapping[str, str], *, token: str | None, attempt: int
    ) -> ApiResponse:
        query = self._signed(api_path, params, token)
        secrets = tuple(s for s in (token, self._app_secret, query["sign"]) if s)
        started = time.perf_counter()
        request_id: str | None = None
        code = UPSTREAM_ERROR
        try:
            status, raw = await self._fetch(self._url(api_path, query), api_path)
            body = _decode(status, raw, api_path, secrets)
            request_id = _optional_text(body.get("request_id"))
            code = str(body.get("code"))
            if code != "0":
                raise _classify(api_path, body, secrets)
            return ApiResponse(body.get("data"), request_id, attempt, body)
        except LazadaError as exc:
            code = exc.code
            raise
        finally:
            self._log.debug(
                "api_call",
                api=api_path,
                request_id=request_id,
                attempt=attempt,
                elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
                code=code,
            )

    def _signed(
        self, api_path: str, params: Mapping[str, str], token: str | None
    ) -> dict[str, str]:
        # An empty value would be signed differently by different Lazada samples: never send one.
        query = {key: value for key, value in params.items() if value != ""}
        query.update(
            app_key=self._app_key,
            sign_method="sha256",
            timestamp=str(int(self._clock() * 1000)),
        )
        if token is not None:
            query["access_token"] = token
        query["sign"] = sign(self._app_secret, api_path, query)
        return query

    def _url(self, api_path: str, query: Mapping[str, str]) -> URL:
        base = self._auth_url if api_path.startswith(_AUTH_PREFIX) else self._api_url
        # urlencode writes "+" in a value as %2B; yarl must not touch the encoded query.
        return URL(f"{base}{api_path}?{urlencode(query)}", encoded=True)

    async def _fetch(self, url: URL, api_path: str) -> tuple[int, bytes]:
        # Exception texts can hold the URL, hence the token: messages name only the type.
        try:
            async with self._session.get(
                url, allow_redirects=False, middlewares=(_no_silent_resend,)
            ) as response:
                return response.status, await _read_capped(response, api_path)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            failure: LazadaError = _NotSentError(
                f"could not connect ({type(exc).__name__})", code=UPSTREAM_ERROR, api=api_path
            )
        except _RequestLostError as exc:
            failure = TransientError(
                f"connection lost after sending ({exc})", code=UPSTREAM_ERROR, api=api_path
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failure = TransientError(
                f"no complete answer ({type(exc).__name__})", code=UPSTREAM_ERROR, api=api_path
            )
        raise failure

    async def get_order_items(self, order_id: str) -> list[OrderItem]:
        """The items of one order; BusinessError code "16" when the seller has no such order."""
        api = "/order/items/get"
        order_id = _digit_string(order_id, "order_id")
        response = await self.call(api, {"order_id": order_id})
        if not isinstance(response.data, list):
            _malformed(api, "data is not a list", response.request_id)
        return [_item(raw, api, order_id, response.request_id) for raw in response.data]

    async def get_multiple_order_items(
        self, order_ids: Sequence[str]
    ) -> dict[str, list[OrderItem]]:
        """Items per order, 50 orders a call; an order Lazada does not return is absent."""
        ids = list(dict.fromkeys(_digit_string(oid, "order_id") for oid in order_ids))
        found: dict[str, list[OrderItem]] = {}
        for start in range(0, len(ids), MAX_ORDERS_PER_MULTI):
            found.update(await self._items_chunk(ids[start : start + MAX_ORDERS_PER_MULTI]))
        return found

    async def _items_chunk(self, order_ids: list[str]) -> dict[str, list[OrderItem]]:
        api = "/orders/items/get"
        # Declared Number[]: a bracketed list of bare numbers, no quotes (E056 shows "[1,2]").
        try:
            response = await self.call(api, {"order_ids": "[" + ",".join(order_ids) + "]"})
        except BusinessError as exc:
            if exc.code == "39":
                return {}
            if exc.code == "37":
                return await self._items_one_by_one(order_ids)
            raise
        return _multi_items(response, api, set(order_ids))

    async def _items_one_by_one(self, order_ids: list[str]) -> dict[str, list[OrderItem]]:
        """Code 37 names no order: isolate the bad ones with GetOrderItems."""
        found: dict[str, list[OrderItem]] = {}
        for order_id in order_ids:
            try:
                found[order_id] = await self.get_order_items(order_id)
            except BusinessError as exc:
                if exc.code != "16":
                    raise
        return found

    async def get_orders(
        self,
        *,
        created_after: datetime,
        created_before: datetime | None = None,
        status: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[OrderSummary]:
        """Orders created in the window, oldest first, each once, past the 5000 offset cap."""
        limit = max(1, min(page_size, MAX_PAGE_SIZE))
        after, offset = created_after, 0
        seen: dict[str, datetime] = {}
        while True:
            page = await self._orders_page(after, created_before, status, offset, limit)
            for order in page:
                if order.order_id not in seen:
                    seen[order.order_id] = order.created_at
                    yield order
            if len(page) < limit:
                return
            offset += limit
            if offset > MAX_OFFSET:
                after, offset = _next_window(after, page[-1], offset), 0
                # Orders before the new start cannot come back; those at it can.
                seen = {oid: at for oid, at in seen.items() if at >= after}

    async def _orders_page(
        self,
        after: datetime,
        before: datetime | None,
        status: str | None,
        offset: int,
        limit: int,
    ) -> list[OrderSummary]:
        api = "/orders/get"
        params = {
            "created_after": _lazada_time(after, "created_after"),
            "created_before": _lazada_time(before, "created_before") if before else "",
            "status": status or "",
            "offset": str(offset),
            "limit": str(limit),
            "sort_by": "created_at",
            "sort_direction": "ASC",
        }
        response = await self.call(api, params)
        data = response.data if isinstance(response.data, dict) else {}
        orders = data.get("orders") or []
        if not isinstance(orders, list):
            _malformed(api, "data.orders is not a list", response.request_id)
        return [_order_summary(raw, api, response.request_id) for raw in orders]

    async def validate_cancel(self, order_id: str, item_ids: Sequence[str]) -> CancelTip:
        """Ask whether these items may be cancelled, and with which reasons."""
        params = _cancel_params(order_id, item_ids)
        response = await self.call("/order/reverse/cancel/validate", params)
        return _tip(response)

    async def create_cancel(
        self, order_id: str, item_ids: Sequence[str], reason_id: str
    ) -> CancelTip:
        """Cancel these items; never repeated after a failure that may have executed."""
        params = _cancel_params(order_id, item_ids)
        if not isinstance(reason_id, str) or not reason_id.strip():
            raise ValueError(f"order {order_id}: reason_id must be a non-empty string")
        params["reason_id"] = reason_id.strip()
        response = await self.call("/order/reverse/cancel/create", params, idempotent=False)
        return _tip(response)

    async def refresh_token(self, refresh_token: str) -> TokenSet:
        """Exchange a refresh token for a new token pair (on the auth gateway)."""
        if not refresh_token:
            raise ValueError("refresh_token is empty")
        api = "/auth/token/refresh"
        response = await self.call(api, {"refresh_token": refresh_token}, authenticated=False)
        body = response.body
        try:
            return TokenSet(
                access_token=_required_text(body["access_token"]),
                refresh_token=_required_text(body["refresh_token"]),
                expires_in=int(body["expires_in"]),
                refresh_expires_in=int(body["refresh_expires_in"]),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError):
            _malformed(api, "token fields missing or malformed", response.request_id)


def _outcome_unknown(exc: LazadaError) -> OutcomeUnknownError:
    return OutcomeUnknownError(
        f"may or may not have been applied ({exc.message}); re-read the items before retrying",
        code=exc.code,
        api=exc.api,
        request_id=exc.request_id,
        attempts=exc.attempts,
    )


async def _read_capped(response: aiohttp.ClientResponse, api: str) -> bytes:
    declared = response.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        _upstream(api, f"answer of {declared} bytes is over the {MAX_BODY_BYTES} byte cap")
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            _upstream(api, f"answer is over the {MAX_BODY_BYTES} byte cap")
    return bytes(body)


def _decode(status: int, raw: bytes, api: str, secrets: tuple[str, ...]) -> dict[str, Any]:
    """The JSON envelope, or TransientError for anything a gateway in trouble might send."""
    if status != 200:
        _upstream(api, f"HTTP {status}: {_excerpt(raw, secrets)}")
    try:
        # Decimal keeps a float-typed id visible as such instead of rounding it to an integer.
        body = json.loads(raw.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError):
        _upstream(api, f"answer is not JSON: {_excerpt(raw, secrets)}")
    except RecursionError:
        _upstream(api, "answer is nested too deeply to be a Lazada envelope")
    if not isinstance(body, dict) or "code" not in body:
        _upstream(api, f"answer is not a Lazada envelope: {_excerpt(raw, secrets)}")
    return body


def _upstream(api: str, message: str) -> NoReturn:
    raise TransientError(message, code=UPSTREAM_ERROR, api=api)


def _excerpt(raw: bytes, secrets: tuple[str, ...], limit: int = 120) -> str:
    text = " ".join(raw[: limit * 4].decode("utf-8", "replace").split())
    return _scrub(text[:limit] + ("..." if len(text) > limit else ""), secrets) or "(empty)"


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


def _classify(api: str, body: Mapping[str, Any], secrets: tuple[str, ...]) -> LazadaError:
    """The exception for one non-zero ``code`` (§7); see the module docstring for unknowns."""
    code = str(body.get("code"))
    message = _scrub(str(body.get("message") or "")[:500], secrets)
    common: dict[str, Any] = dict(
        code=code, api=api, request_id=_optional_text(body.get("request_id"))
    )
    if code in RATE_LIMIT_CODES:
        return RateLimitedError(message, ban_seconds=_ban_seconds(message), **common)
    if code in AUTH_CODES:
        return AuthError(message, **common)
    if code == "6" and api == "/orders/get" and "status filter" in message.lower():
        return ConfigurationError(message, **common)
    if code in TRANSIENT_CODES:
        return TransientError(message, **common)
    if code in BUSINESS_CODES:
        item_ids = _offending_ids(message) if code in ITEM_ID_CODES else ()
        return BusinessError(message, item_ids=item_ids, **common)
    if code in CONFIGURATION_CODES:
        return ConfigurationError(message, **common)
    return _classify_unknown(str(body.get("type") or "").upper(), message, common)


def _classify_unknown(kind: str, message: str, common: dict[str, Any]) -> LazadaError:
    if kind in {"ISP", "SYSTEM"}:
        return TransientError(message, **common)
    if _DIGITS_RE.fullmatch(common["code"]):
        return BusinessError(message, **common)
    return ConfigurationError(message, **common)


def _ban_seconds(message: str) -> float:
    match = _BAN_RE.search(message)
    return max(1.0, float(match.group(1))) if match else 1.0


def _offending_ids(message: str) -> tuple[str, ...]:
    """The item ids in "E0123: invalid trade order lines [1, 2]", whatever their brackets."""
    return tuple(dict.fromkeys(_DIGITS_RE.findall(_E_PREFIX_RE.sub("", message, count=1))))


def _malformed(api: str, what: str, request_id: str | None) -> NoReturn:
    raise TransientError(
        f"unexpected answer: {what}", code=UPSTREAM_ERROR, api=api, request_id=request_id
    )


def _as_id(value: Any, name: str, api: str, request_id: str | None) -> str:
    """A Lazada id as a digit string, from a JSON number or string; anything else is refused."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value.strip()):
        return value.strip()
    _malformed(api, f"{name} is not a whole number: {str(value)[:40]!r}", request_id)


def _item(raw: Any, api: str, order_id: str, request_id: str | None) -> OrderItem:
    if not isinstance(raw, dict):
        _malformed(api, "an order item is not an object", request_id)
    return OrderItem(
        order_id=_as_id(raw.get("order_id", order_id), "order_id", api, request_id),
        order_item_id=_as_id(raw.get("order_item_id"), "order_item_id", api, request_id),
        status=str(raw.get("status") or "").strip(),
        package_id=_optional_text(raw.get("package_id")) or "",
        sku=_optional_text(raw.get("sku")),
        shop_sku=_optional_text(raw.get("shop_sku")),
        name=_optional_text(raw.get("name")),
        cancel_return_initiator=_optional_text(raw.get("cancel_return_initiator")),
    )


def _multi_items(response: ApiResponse, api: str, wanted: set[str]) -> dict[str, list[OrderItem]]:
    if not isinstance(response.data, list):
        _malformed(api, "data is not a list", response.request_id)
    found: dict[str, list[OrderItem]] = {}
    for entry in response.data:
        if not isinstance(entry, dict):
            _malformed(api, "an order entry is not an object", response.request_id)
        order_id = _as_id(entry.get("order_id"), "order_id", api, response.request_id)
        if order_id in wanted:
            raws = entry.get("order_items") or []
            items = [_item(raw, api, order_id, response.request_id) for raw in raws]
            found.setdefault(order_id, []).extend(items)
    return found


def _order_summary(raw: Any, api: str, request_id: str | None) -> OrderSummary:
    if not isinstance(raw, dict):
        _malformed(api, "an order is not an object", request_id)
    updated = raw.get("updated_at")
    statuses = raw.get("statuses") or []
    return OrderSummary(
        order_id=_as_id(raw.get("order_id"), "order_id", api, request_id),
        created_at=_parse_time(raw.get("created_at"), "created_at", api, request_id),
        updated_at=_parse_time(updated, "updated_at", api, request_id) if updated else None,
        statuses=tuple(str(s) for s in statuses) if isinstance(statuses, list) else (),
    )


def _parse_time(value: Any, name: str, api: str, request_id: str | None) -> datetime:
    """Both documented forms: "2018-02-09T22:44:30+08:00" and "2014-10-15 18:36:05 +0800"."""
    text = str(value or "").strip()
    for parse in (datetime.fromisoformat, _spaced_time):
        try:
            parsed = parse(text)
        except ValueError:
            continue
        if parsed.tzinfo is not None:
            return parsed
    _malformed(api, f"{name} is not a time with a UTC offset: {text[:40]!r}", request_id)


def _spaced_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")


def _lazada_time(value: datetime, name: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a UTC offset, got naive {value.isoformat()}")
    return value.isoformat(timespec="seconds")


def _next_window(after: datetime, last: OrderSummary, offset: int) -> datetime:
    """GetOrders stops at offset 5000: restart the window at the last order seen."""
    if last.created_at <= after:
        raise ConfigurationError(
            f"more than {offset} orders share created_at {last.created_at.isoformat()}; "
            "GetOrders cannot page past them",
            code="window_exhausted",
            api="/orders/get",
        )
    return last.created_at


def _tip(response: ApiResponse) -> CancelTip:
    data = response.data if isinstance(response.data, dict) else {}
    options = data.get("reason_options") or []
    return CancelTip(
        tip_type=_optional_text(data.get("tip_type")),
        tip_content=str(data.get("tip_content") or ""),
        reason_options=tuple(
            ReasonOption(str(option.get("reason_id", "")), str(option.get("reason_name", "")))
            for option in (options if isinstance(options, list) else [])
            if isinstance(option, dict)
        ),
        request_id=response.request_id,
        attempts=response.attempts,
    )


def _cancel_params(order_id: str, item_ids: Sequence[str]) -> dict[str, str]:
    if isinstance(item_ids, str) or not item_ids:
        raise ValueError(f"order {order_id}: item_ids must be a non-empty list of item ids")
    ids = [_digit_string(item_id, "order_item_id") for item_id in item_ids]
    return {
        "order_id": _digit_string(order_id, "order_id"),
        "order_item_id_list": json.dumps(ids, separators=(",", ":")),
    }


def _digit_string(value: str, name: str) -> str:
    if not isinstance(value, str) or not _DIGITS_RE.fullmatch(value):
        raise ValueError(f"{name} must be a digit string, got {value!r}")
    return value


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def _required_text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value
