"""Rate limiting shared by every node through Redis (or Valkey): fixed one-second windows.

One counter per key per window, `{prefix}:rl:{key}:{window}` where the window is the whole
second of the injected clock (so nodes must keep their clocks in step, as NTP does; Pusher's
request signatures already need that). Checking and spending is one Lua script: a refused
request spends nothing, and nodes spending at once never pass the limit together. Each
counter expires two seconds after its window opened.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ressonance.state.base import Decision

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS: the window's counter; ARGV: limit, cost. Returns {allowed, used after}.
_CONSUME: Final = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local cost = tonumber(ARGV[2])
if used + cost > tonumber(ARGV[1]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], cost)
if used == cost then redis.call('PEXPIRE', KEYS[1], 2000) end
return {1, used}
"""


class RedisRateLimiter:
    def __init__(
        self, redis: Redis, clock: Callable[[], float], prefix: str = "ressonance"
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._p = prefix
        self._consume = redis.register_script(_CONSUME)

    def _key(self, key: str, window: int) -> str:
        return f"{self._p}:rl:{key}:{window}"

    async def consume(self, key: str, limit: int, cost: int = 1) -> Decision:
        now = self._clock()
        window = math.floor(now)
        allowed, used = await self._consume([self._key(key, window)], [limit, cost])
        remaining = max(0, limit - int(used))
        return Decision(bool(allowed), limit, remaining, window + 1 - now)

    async def forget(self, key: str) -> None:
        await self._redis.delete(self._key(key, math.floor(self._clock())))
