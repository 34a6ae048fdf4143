"""Per-API, per-seller calls-per-second limit over a sliding one-second window.

Only admitted calls take a place in the window, so a client that keeps retrying into a full
window is refused without pushing the window further out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping


class SlidingWindowLimiter:
    """Admits at most ``limit`` calls per (seller, API) within any one-second span."""

    WINDOW_S = 1.0

    def __init__(self, default: int | None, per_api: Mapping[str, int] | None = None) -> None:
        self.default = default
        self.per_api = dict(per_api or {})
        self._calls: dict[tuple[str, str], deque[float]] = {}

    def limit_for(self, api: str) -> int | None:
        return self.per_api.get(api, self.default)

    def admit(self, seller: str, api: str, now: float) -> bool:
        """Record and admit the call at monotonic time ``now``, or refuse it."""
        limit = self.limit_for(api)
        if limit is None:
            return True
        calls = self._calls.setdefault((seller, api), deque())
        while calls and calls[0] <= now - self.WINDOW_S:
            calls.popleft()
        if len(calls) >= limit:
            return False
        calls.append(now)
        return True

    def reset(self) -> None:
        self._calls.clear()
