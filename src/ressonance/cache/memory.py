"""Cache-channel values of one process, expiring by an injected clock."""

from __future__ import annotations

import math
from collections.abc import Callable

from ressonance.cache.base import CachedEvent


class MemoryCacheStore:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._values: dict[tuple[str, str], tuple[str, str, float]] = {}

    async def put(self, app_id: str, channel: str, event: str, data: str, ttl: int) -> None:
        self._values[app_id, channel] = (event, data, self._clock() + ttl)

    async def get(self, app_id: str, channel: str) -> CachedEvent | None:
        value = self._values.get((app_id, channel))
        if value is None:
            return None
        event, data, expires_at = value
        left = expires_at - self._clock()
        if left <= 0:
            del self._values[app_id, channel]
            return None
        return CachedEvent(event, data, math.ceil(left))
