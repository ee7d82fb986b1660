"""Cache-channel values shared by every node through Redis.

One hash per channel, `{prefix}:{app}:cache:{channel}` with the event, its data and the
expiry time from the injected clock (so every node agrees on the TTL it reports). Redis also
expires the key a second after that, so nothing outlives its TTL for long.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ressonance.state.base import CachedEvent
from ressonance.state.redis import text

if TYPE_CHECKING:
    from redis.asyncio import Redis


class RedisCacheStore:
    def __init__(
        self, redis: Redis, clock: Callable[[], float], prefix: str = "ressonance"
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._p = prefix

    def _key(self, app_id: str, channel: str) -> str:
        return f"{self._p}:{app_id}:cache:{channel}"

    async def put(self, app_id: str, channel: str, event: str, data: str, ttl: int) -> None:
        key = self._key(app_id, channel)
        expires_at = self._clock() + ttl
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"event": event, "data": data, "expires_at": repr(expires_at)})
            pipe.expire(key, ttl + 1)
            await pipe.execute()

    async def get(self, app_id: str, channel: str) -> CachedEvent | None:
        raw = await self._redis.hgetall(self._key(app_id, channel))
        value = {text(k): text(v) for k, v in raw.items()}
        if not value:
            return None
        left = float(value["expires_at"]) - self._clock()
        if left <= 0:
            return None
        return CachedEvent(value["event"], value["data"], math.ceil(left))
