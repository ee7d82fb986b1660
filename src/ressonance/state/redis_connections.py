"""Connection counts shared by every node through Redis (or Valkey).

Keys, under `{prefix}:`:
  connections:{app}     hash node_id -> that node's open connections of the app
  leases                the node leases of `RedisMembership` (node_id -> when it ends)

A node's counts are summed only while its lease has not ended (renewed by the membership
heartbeat every liveness interval, ending `node_ttl` after the last one). `acquire` is one
Lua script: it sums the live nodes' counts (dropping the fields of nodes whose lease ended),
refuses at the limit, or adds one to this node's field, so concurrent admissions on several
nodes never pass the limit together. Leases use the Redis server's clock (TIME), so nodes'
clocks need not agree. The calling node always counts as alive: a connection admitted just
before its first heartbeat is not lost (after that heartbeat, `restore` rewrites the field
anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from ressonance.state.redis import SERVER_NOW, leases_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS: counts hash, leases; ARGV: node id, limit (-1: none), 1 to add / 0 to only count.
_ACQUIRE: Final = (
    SERVER_NOW
    + """
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local node = fields[i]
  local expires = redis.call('ZSCORE', KEYS[2], node)
  if node == ARGV[1] or (expires and tonumber(expires) > now) then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], node)
  end
end
if ARGV[3] == '0' then return total end
local limit = tonumber(ARGV[2])
if limit >= 0 and total >= limit then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return total + 1
"""
)
_RELEASE: Final = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
"""


class RedisConnectionCounter:
    """One instance per node: it counts that node's connections."""

    def __init__(self, redis: Redis, *, node_id: str, prefix: str = "ressonance") -> None:
        self._redis = redis
        self._node_id = node_id
        self._p = prefix
        self._leases = leases_key(prefix)
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._apps: set[str] = set()  # apps this node has written a count for

    def _key(self, app_id: str) -> str:
        return f"{self._p}:connections:{app_id}"

    async def acquire(self, app_id: str, limit: int) -> int | None:
        keys = [self._key(app_id), self._leases]
        total = int(await self._acquire(keys, [self._node_id, limit, 1]))
        if total < 0:
            return None
        self._apps.add(app_id)
        return total

    async def release(self, app_id: str) -> None:
        await self._release([self._key(app_id)], [self._node_id])

    async def count(self, app_id: str) -> int:
        keys = [self._key(app_id), self._leases]
        return int(await self._acquire(keys, [self._node_id, -1, 0]))

    async def restore(self, counts: Mapping[str, int]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for app_id in self._apps - set(counts):
                pipe.hdel(self._key(app_id), self._node_id)
            for app_id, count in counts.items():
                if count > 0:
                    pipe.hset(self._key(app_id), self._node_id, count)
                else:
                    pipe.hdel(self._key(app_id), self._node_id)
            await pipe.execute()
        self._apps = {app_id for app_id, count in counts.items() if count > 0}
