"""The sandbox's idea of "now": real time, shifted or frozen so tests can create clock skew."""

from __future__ import annotations

import time


class Clock:
    """Wall-clock seconds plus an offset, or a frozen instant when one is set."""

    def __init__(self) -> None:
        self.offset_s = 0.0
        self.frozen_at: float | None = None

    def now(self) -> float:
        if self.frozen_at is not None:
            return self.frozen_at
        return time.time() + self.offset_s

    def set(self, *, offset_s: float | None = None, frozen_at: float | None = None) -> None:
        """Shift the clock by ``offset_s`` and/or freeze it at ``frozen_at`` (epoch seconds)."""
        self.offset_s = 0.0 if offset_s is None else offset_s
        self.frozen_at = frozen_at

    def to_dict(self) -> dict[str, float | None]:
        return {"now": self.now(), "offset_s": self.offset_s, "frozen_at": self.frozen_at}
