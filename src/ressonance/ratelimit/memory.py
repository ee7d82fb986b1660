"""Per-process rate limiting in one-second windows, by an injected clock."""

from __future__ import annotations

import math
from collections.abc import Callable

from ressonance.ratelimit.base import Decision


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}

    async def consume(self, key: str, limit: int, cost: int = 1) -> Decision:
        now = self._clock()
        window = math.floor(now)
        start, used = self._windows.get(key, (window, 0))
        if start != window:
            used = 0
        retry_after = window + 1 - now
        if used + cost > limit:
            self._windows[key] = (window, used)
            return Decision(False, limit, max(0, limit - used), retry_after)
        self._windows[key] = (window, used + cost)
        return Decision(True, limit, limit - used - cost, retry_after)

    async def forget(self, key: str) -> None:
        self._windows.pop(key, None)
