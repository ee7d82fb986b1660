"""The CacheStore seam: last event of a cache channel, kept for a TTL (reference §2.2).

A value expires `ttl` seconds after it was written; `get` never returns an expired value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CachedEvent:
    """A cached channel event and the seconds it has left to live."""

    event: str
    data: str
    ttl: int


class CacheStore(Protocol):
    async def put(self, app_id: str, channel: str, event: str, data: str, ttl: int) -> None: ...

    async def get(self, app_id: str, channel: str) -> CachedEvent | None: ...
