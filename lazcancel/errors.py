"""The exception tree: each class tells the caller what to do next.

Callers decide retries by type, never by reading message text. Nothing here may carry an
access token, an app secret or a signature in its message.
"""

from __future__ import annotations


class LazcancelError(Exception):
    """Base of every error lazcancel raises on purpose."""


class InputError(LazcancelError):
    """Bad user input (a file, an option, a configuration value): fix it and run again."""


class SettingsError(InputError):
    """A missing or malformed setting; the message names the variable or TOML key."""


class LazadaError(LazcancelError):
    """An answer from the Lazada gateway that was not a success.

    ``code`` is Lazada's code as text (``"ApiCallLimit"``, ``"123"``), or one of lazcancel's own
    (``"upstream_error"`` for non-JSON bodies, HTTP errors and broken connections).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        api: str = "",
        request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.api = api
        self.request_id = request_id
        self.attempts = attempts

    def __str__(self) -> str:
        return (
            f"{self.api} {self.code}: {self.message}"
            if self.api
            else f"{self.code}: {self.message}"
        )


class TransientError(LazadaError):
    """Upstream trouble (timeouts, 5xx, HTML pages, system errors): retry later with back-off."""


class OutcomeUnknownError(TransientError):
    """A state-changing call failed in transit: it may or may not have been applied.

    Never repeat the call blindly; re-read the affected items first.
    """


class RateLimitedError(TransientError):
    """ApiCallLimit: wait ``ban_seconds`` (plus jitter) before calling this API again."""

    def __init__(self, message: str, *, ban_seconds: float, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.ban_seconds = ban_seconds


class AuthError(LazadaError):
    """The access token is invalid or expired: refresh it, then retry once."""


class ConfigurationError(LazadaError):
    """Signature, credentials, clock or permissions are wrong: stop and fix configuration.

    Retrying cannot help, and every further call for this seller would fail the same way.
    """


class BusinessError(LazadaError):
    """A per-order or per-item refusal (codes 16, 37, 102, 122, 123, 124 ...): record it, move on.

    ``item_ids`` holds the offending order item ids when Lazada names them (code 123, 124).
    """

    def __init__(self, message: str, *, item_ids: tuple[str, ...] = (), **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.item_ids = item_ids
