"""Usage counters shared by every node through Redis (or Valkey).

One hash per app per UTC day, `{prefix}:usage:{app}:{day}`, with the fields `messages` and
`peak_connections`. Each key expires `retention_days` (40 by default) after its day's last
write, so a month of history can always be read back and nothing is kept forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ressonance.state.base import DayUsage

if TYPE_CHECKING:
    from redis.asyncio import Redis

RETENTION_DAYS: Final = 40

# KEYS: the day's hash; ARGV: connections, ttl seconds. The peak only ever grows.
_PEAK: Final = """
local peak = tonumber(redis.call('HGET', KEYS[1], 'peak_connections') or '0')
if tonumber(ARGV[1]) > peak then redis.call('HSET', KEYS[1], 'peak_connections', ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""


class RedisUsageStore:
    def __init__(
        self, redis: Redis, prefix: str = "ressonance", retention_days: int = RETENTION_DAYS
    ) -> None:
        self._redis = redis
        self._p = prefix
        self._ttl = retention_days * 86400
        self._peak = redis.register_script(_PEAK)

    def _key(self, app_id: str, day: str) -> str:
        return f"{self._p}:usage:{app_id}:{day}"

    async def add_messages(self, app_id: str, day: str, count: int) -> int:
        key = self._key(app_id, day)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "messages", count)
            pipe.expire(key, self._ttl)
            total, _ = await pipe.execute()
        return int(total)

    async def messages(self, app_id: str, day: str) -> int:
        return int(await self._redis.hget(self._key(app_id, day), "messages") or 0)

    async def record_connections(self, app_id: str, day: str, connections: int) -> None:
        await self._peak([self._key(app_id, day)], [connections, self._ttl])

    async def usage(self, app_id: str, days: Sequence[str]) -> list[DayUsage]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hmget(self._key(app_id, day), ["messages", "peak_connections"])
            rows = await pipe.execute()
        return [
            DayUsage(day, int(messages or 0), int(peak or 0))
            for day, (messages, peak) in zip(days, rows, strict=True)
        ]
