"""Request signature and timestamp checks of the imitated gateway.

Deliberately independent of any client code: it rebuilds the signed string from the
form-decoded parameters exactly as the Lazada "Signature Algorithm" guide describes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

EmptyValueRule = Literal["sdk", "skip", "either"]

_MS_EPOCH = re.compile(r"\d{10,16}")


def string_to_sign(api_path: str, params: Mapping[str, str], *, keep_empty: bool = True) -> str:
    """The text that gets signed: the API path, then every key and value sorted by key."""
    keys = sorted(k for k in params if k != "sign" and (keep_empty or params[k] != ""))
    return api_path + "".join(k + params[k] for k in keys)


def compute_sign(
    secret: str, api_path: str, params: Mapping[str, str], *, keep_empty: bool = True
) -> str:
    """Upper-case hex HMAC-SHA256 of the string to sign, keyed by the app secret."""
    text = string_to_sign(api_path, params, keep_empty=keep_empty)
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256)
    return digest.hexdigest().upper()


def signature_ok(
    secret: str, api_path: str, params: Mapping[str, str], *, rule: EmptyValueRule = "sdk"
) -> bool:
    """Whether ``params["sign"]`` matches under the configured rule for empty values."""
    sent = params.get("sign", "")
    choices = {"sdk": (True,), "skip": (False,), "either": (True, False)}[rule]
    return any(
        hmac.compare_digest(sent, compute_sign(secret, api_path, params, keep_empty=keep))
        for keep in choices
    )


def parse_timestamp(raw: str) -> float | None:
    """Seconds since the epoch from ms digits or UTC text (``2017-11-11T12:00:00Z``)."""
    if _MS_EPOCH.fullmatch(raw):
        return int(raw) / 1000.0
    try:
        when = datetime.fromisoformat(raw.replace(" ", "T", 1) if "T" not in raw else raw)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
