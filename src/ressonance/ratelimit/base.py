"""The RateLimiter seam: fixed one-second windows per key.

A limiter knows nothing of HTTP or WebSockets; callers turn a `Decision` into a pusher:error
or into 429 headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float


class RateLimiter(Protocol):
    async def consume(self, key: str, limit: int, cost: int = 1) -> Decision:
        """Spend `cost` of `key`'s `limit` per second; refused spends nothing."""
        ...

    async def forget(self, key: str) -> None:
        """Drop `key`'s state (its owner went away)."""
        ...
