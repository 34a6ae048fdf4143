"""Settings from the environment and the optional TOML file named by LAZCANCEL_CONFIG.

A leaf module: it imports nothing else of lazcancel's but the error types, and it does no I/O
beyond reading that one file. Every tunable number has its default here.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from lazcancel.errors import SettingsError

GATEWAYS: dict[str, str] = {
    "sg": "https://api.lazada.sg/rest",
    "my": "https://api.lazada.com.my/rest",
    "th": "https://api.lazada.co.th/rest",
    "vn": "https://api.lazada.vn/rest",
    "ph": "https://api.lazada.com.ph/rest",
    "id": "https://api.lazada.co.id/rest",
}
AUTH_GATEWAY = "https://auth.lazada.com/rest"

# The seller's local day decides the daily cancellation budget.
REGION_UTC_OFFSET_HOURS: dict[str, int] = {"sg": 8, "my": 8, "ph": 8, "th": 7, "vn": 7, "id": 7}

DEFAULT_CANCELLABLE = frozenset(
    {"pending", "repacked", "packed", "ready_to_ship_pending", "ready_to_ship"}
)
DEFAULT_SELLER = "default"
T = TypeVar("T", int, float)


@dataclass(frozen=True, kw_only=True)
class SellerSettings:
    """One seller (one store): its token and the gateway its country uses."""

    name: str
    app_key: str
    app_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    api_url: str
    auth_url: str = AUTH_GATEWAY
    utc_offset_hours: int = 8
    daily_budget: int | None = None


@dataclass(frozen=True, kw_only=True)
class SweepRule:
    """A scheduled clean-up: which orders to look at and what to cancel."""

    name: str
    seller: str = DEFAULT_SELLER
    statuses: tuple[str, ...] = ("pending",)
    skus: tuple[str, ...] = ()
    sku_file: str | None = None
    sku_redis_set: str | None = None
    min_age_hours: float = 0.0
    lookback_days: float = 7.0
    reason: str = "Out of Stock"
    max_items: int = 500
    dry_run: bool = False
    allow_whole_package: bool = False
    schedule: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Settings:
    redis_url: str | None = None
    sellers: Mapping[str, SellerSettings] = field(default_factory=dict)
    rate_limit: float = 10.0
    rate_limit_per_api: Mapping[str, float] = field(default_factory=dict)
    concurrency: int = 16
    cancellable_statuses: frozenset[str] = DEFAULT_CANCELLABLE
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    connection_limit: int = 50
    retry_attempts: int = 6
    retry_backoff_base: float = 0.25
    retry_backoff_cap: float = 20.0
    confirm_delay: float = 0.0
    result_ttl_seconds: int = 30 * 24 * 3600
    max_batch_orders: int = 200_000
    confirm_threshold: int | None = None
    sweeps: tuple[SweepRule, ...] = ()
    # A worker silent this long is taken for dead (after as long again) and its chunks re-run.
    heartbeat_seconds: float = 15.0
    # arq's tries per chunk; shutdowns give theirs back, crashes and errors use them up.
    max_tries: int = 50

    def seller(self, name: str) -> SellerSettings:
        try:
            return self.sellers[name]
        except KeyError:
            known = ", ".join(sorted(self.sellers)) or "none"
            raise SettingsError(
                f"unknown seller {name!r}; configured sellers: {known}. Set LAZADA_ACCESS_TOKEN"
                " for the default seller, or add [sellers.NAME] to the LAZCANCEL_CONFIG file"
            ) from None

    def rate_for(self, api: str) -> float:
        return self.rate_limit_per_api.get(api, self.rate_limit)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default: the process environment) and its TOML file."""
    env = os.environ if env is None else env
    doc: dict[str, Any] = {}
    config_path = env.get("LAZCANCEL_CONFIG")
    if config_path:
        doc = _read_toml(Path(config_path))

    limits = _table(doc, "limits")
    http = _table(doc, "http")
    retry = _table(doc, "retry")
    results = _table(doc, "results")
    worker = _table(doc, "worker")
    _known_keys(doc, TOP_LEVEL_KEYS, "the top level")
    for table, keys in TABLE_KEYS.items():
        _known_keys(_table(doc, table), keys, f"[{table}]")
    rate = _number(env.get("LAZCANCEL_RATE_LIMIT"), "LAZCANCEL_RATE_LIMIT")
    rate = (
        _rate(rate, "LAZCANCEL_RATE_LIMIT")
        if rate is not None
        else _rate(_get(limits, "limits.rate", float, 10.0), "[limits] rate")
    )
    per_api = {
        str(k): _rate(_as_float(v, f"[limits.per_api] {k!r}"), f"[limits.per_api] {k!r}")
        for k, v in _table(limits, "per_api").items()
    }
    statuses = _get(doc, "cancellable_statuses", list, sorted(DEFAULT_CANCELLABLE))
    return Settings(
        redis_url=env.get("REDIS_URL") or _get(doc, "redis_url", str, None),
        sellers=_sellers(env, doc),
        rate_limit=rate,
        rate_limit_per_api=per_api,
        concurrency=_at_least(_get(limits, "limits.concurrency", int, 16), 1, "limits.concurrency"),
        cancellable_statuses=frozenset(str(s).strip().lower() for s in statuses),
        connect_timeout=_positive(
            _get(http, "http.connect_timeout", float, 5.0), "http.connect_timeout"
        ),
        read_timeout=_positive(_get(http, "http.read_timeout", float, 30.0), "http.read_timeout"),
        connection_limit=_at_least(
            _get(http, "http.connection_limit", int, 50), 1, "http.connection_limit"
        ),
        retry_attempts=_at_least(_get(retry, "retry.attempts", int, 6), 1, "retry.attempts"),
        retry_backoff_base=_at_least(
            _get(retry, "retry.backoff_base", float, 0.25), 0, "retry.backoff_base"
        ),
        retry_backoff_cap=_at_least(
            _get(retry, "retry.backoff_cap", float, 20.0), 0, "retry.backoff_cap"
        ),
        confirm_delay=_at_least(
            _get(retry, "retry.confirm_delay", float, 0.0), 0, "retry.confirm_delay"
        ),
        result_ttl_seconds=int(
            _positive(_get(results, "results.ttl_days", float, 30.0), "results.ttl_days") * 86400
        ),
        max_batch_orders=_at_least(
            _get(doc, "max_batch_orders", int, 200_000), 1, "max_batch_orders"
        ),
        confirm_threshold=_optional_at_least(
            _get(doc, "confirm_threshold", int, None), 0, "confirm_threshold"
        ),
        sweeps=tuple(
            _sweep(i, raw, Path(config_path).parent if config_path else None)
            for i, raw in enumerate(_get(doc, "sweeps", list, []))
        ),
        heartbeat_seconds=_positive(
            _get(worker, "worker.heartbeat_seconds", float, 15.0), "worker.heartbeat_seconds"
        ),
        max_tries=int(_positive(_get(worker, "worker.max_tries", int, 50), "worker.max_tries")),
    )


TOP_LEVEL_KEYS = frozenset(
    {
        "redis_url", "cancellable_statuses", "max_batch_orders", "confirm_threshold",
        "app", "limits", "http", "retry", "results", "worker", "sellers", "sweeps",
    }
)  # fmt: skip
TABLE_KEYS = {
    "app": frozenset({"key", "secret"}),
    "limits": frozenset({"rate", "concurrency", "per_api"}),
    "http": frozenset({"connect_timeout", "read_timeout", "connection_limit"}),
    "retry": frozenset({"attempts", "backoff_base", "backoff_cap", "confirm_delay"}),
    "results": frozenset({"ttl_days"}),
    "worker": frozenset({"heartbeat_seconds", "max_tries"}),
}
SELLER_KEYS = frozenset(
    {
        "region", "api_url", "auth_url", "app_key", "app_secret", "access_token",
        "refresh_token", "utc_offset_hours", "daily_budget",
    }
)  # fmt: skip
# One call in 100 s at the slowest: a slower pace is a typo, and would hold Redis keys for years.
MIN_RATE, MAX_RATE = 0.01, 10_000_000.0


def _known_keys(table: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise SettingsError(
            f"LAZCANCEL_CONFIG: unknown key(s) {', '.join(unknown)} in {where}; "
            f"known: {', '.join(sorted(known))}"
        )


def _rate(value: float, name: str) -> float:
    if not (math.isfinite(value) and MIN_RATE <= value <= MAX_RATE):
        raise SettingsError(
            f"{name} must be a number of calls per second from {MIN_RATE} to {MAX_RATE:g}, "
            f"got {value!r}"
        )
    return value


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"{name} must be a number, got {value!r}")
    return float(value)


def _positive(value: float, name: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise SettingsError(f"{name} must be a positive number, got {value!r}")
    return value


def _at_least(value: T, least: float, name: str) -> T:
    if not (math.isfinite(value) and value >= least):
        raise SettingsError(f"{name} must be at least {least}, got {value!r}")
    return value


def _optional_at_least(value: int | None, least: int, name: str) -> int | None:
    return None if value is None else _at_least(value, least, name)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"LAZCANCEL_CONFIG names {path}, which does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"LAZCANCEL_CONFIG file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingsError(
            f"LAZCANCEL_CONFIG names {path}, which cannot be read: {reason}"
        ) from None


def _sellers(env: Mapping[str, str], doc: dict[str, Any]) -> dict[str, SellerSettings]:
    app = _table(doc, "app")
    app_key = env.get("LAZADA_APP_KEY") or _get(app, "app.key", str, "")
    app_secret = env.get("LAZADA_APP_SECRET") or _get(app, "app.secret", str, "")
    env_url = env.get("LAZADA_API_URL")
    env_region = env.get("LAZADA_REGION")

    sellers: dict[str, SellerSettings] = {}
    for name, raw in _table(doc, "sellers").items():
        if not isinstance(raw, dict):
            raise SettingsError(f"[sellers.{name}] must be a table")
        sellers[name] = _seller(
            name,
            raw,
            app_key=app_key,
            app_secret=app_secret,
            fallback_url=env_url,
            fallback_region=env_region,
        )

    token = env.get("LAZADA_ACCESS_TOKEN")
    if token:
        sellers[DEFAULT_SELLER] = _seller(
            DEFAULT_SELLER,
            {"access_token": token, "refresh_token": env.get("LAZADA_REFRESH_TOKEN")},
            app_key=app_key,
            app_secret=app_secret,
            fallback_url=env_url,
            fallback_region=env_region,
        )
    return sellers


def _seller(
    name: str,
    raw: Mapping[str, Any],
    *,
    app_key: str,
    app_secret: str,
    fallback_url: str | None,
    fallback_region: str | None,
) -> SellerSettings:
    where = f"sellers.{name}"
    _known_keys(raw, SELLER_KEYS, f"[{where}]")
    region = str(raw.get("region") or fallback_region or "").strip().lower()
    api_url = raw.get("api_url") or fallback_url
    if api_url:
        source = f"{where}.api_url" if raw.get("api_url") else "LAZADA_API_URL"
        _check_url(str(api_url), source)
    if not api_url:
        if region not in GATEWAYS:
            raise SettingsError(
                f"{where}: set LAZADA_API_URL, or LAZADA_REGION to one of "
                f"{', '.join(GATEWAYS)} (got {region or 'nothing'!r})"
            )
        api_url = GATEWAYS[region]
    key = str(raw.get("app_key") or app_key)
    secret = str(raw.get("app_secret") or app_secret)
    if not key:
        raise SettingsError(f"{where}: no app key; set LAZADA_APP_KEY")
    if not secret:
        raise SettingsError(f"{where}: no app secret; set LAZADA_APP_SECRET")
    token = raw.get("access_token")
    if not token:
        raise SettingsError(f"{where}: no access_token")
    budget = raw.get("daily_budget")
    return SellerSettings(
        name=name,
        app_key=key,
        app_secret=secret,
        access_token=str(token),
        refresh_token=str(raw["refresh_token"]) if raw.get("refresh_token") else None,
        api_url=str(api_url).rstrip("/"),
        auth_url=str(raw.get("auth_url") or _auth_url_for(str(api_url))).rstrip("/"),
        utc_offset_hours=int(raw.get("utc_offset_hours", REGION_UTC_OFFSET_HOURS.get(region, 8))),
        daily_budget=int(budget) if budget is not None else None,
    )


def _check_url(url: str, source: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError(
            f"{source} must be an http(s) URL such as http://127.0.0.1:8765/rest, got {url!r}"
        )


def _auth_url_for(api_url: str) -> str:
    """Official gateways authenticate on auth.lazada.com; any other gateway (a sandbox) itself."""
    return AUTH_GATEWAY if api_url.rstrip("/") in GATEWAYS.values() else api_url


# The type each sweep key must have in TOML (int where a float is expected is fine).
_SWEEP_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "seller": str,
    "statuses": list,
    "skus": list,
    "sku_file": str,
    "sku_redis_set": str,
    "min_age_hours": (int, float),
    "lookback_days": (int, float),
    "reason": str,
    "max_items": int,
    "dry_run": bool,
    "allow_whole_package": bool,
    "schedule": dict,
}


def _sweep(index: int, raw: Any, base_dir: Path | None) -> SweepRule:
    if not isinstance(raw, dict) or not raw.get("name"):
        raise SettingsError(f"sweeps[{index}] must be a table with a name")
    where = f"sweeps[{index}] ({raw['name']})"
    unknown = set(raw) - set(_SWEEP_TYPES)
    if unknown:
        raise SettingsError(f"{where}: unknown keys {sorted(unknown)}")
    for key, value in raw.items():
        kind = _SWEEP_TYPES[key]
        wrong_bool = isinstance(value, bool) and kind is not bool
        if not isinstance(value, kind) or wrong_bool:
            expected = "a list of strings" if kind is list else _type_name(kind)
            raise SettingsError(f"{where}: {key} must be {expected}, got {value!r}")
    values = dict(raw)
    for key in ("statuses", "skus"):
        if key in values:
            values[key] = tuple(str(v) for v in values[key])
    if values.get("sku_file") and base_dir is not None:
        # A relative sku_file is read next to the configuration file, not the working directory.
        values["sku_file"] = str(base_dir / values["sku_file"])
    return SweepRule(**values)


_TYPE_NAMES = {str: "a string", int: "a whole number", bool: "true or false", dict: "a table"}


def _type_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return "a number"
    return _TYPE_NAMES.get(kind, kind.__name__)


def _table(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise SettingsError(f"[{key}] must be a table in the LAZCANCEL_CONFIG file")
    return value


def _get(doc: Mapping[str, Any], dotted: str, kind: type, default: Any) -> Any:
    key = dotted.rsplit(".", 1)[-1]
    if key not in doc:
        return default
    value = doc[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise SettingsError(f"{dotted} must be {kind.__name__}, got {value!r}")
    return value


def _number(raw: str | None, name: str) -> float | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
