"""Idempotency keys shared by every node through Redis (or Valkey).

One hash per key, `{prefix}:idempotency:{app}:{key}`, with the fields `f` (the fingerprint
of the request that claimed it) and `a` (its answer, once it has one). Claiming is one
HSETNX: of concurrent claims on any nodes exactly one sets `f`, and it alone owns the key.
A pending claim expires after `pending_ttl` (a node that died while answering does not
hold the key for a day); completing sets `a` and the full `ttl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ressonance.state.base import Claim
from ressonance.state.redis import text

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS: the key's hash. ARGV: fingerprint, pending ttl seconds. {1} or {0, fingerprint, answer}.
_CLAIM: Final = """
if redis.call('HSETNX', KEYS[1], 'f', ARGV[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {1}
end
return {0, redis.call('HGET', KEYS[1], 'f'), redis.call('HGET', KEYS[1], 'a')}
"""

# KEYS: the key's hash. ARGV: answer, ttl seconds. Only a key still claimed is completed.
_COMPLETE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'a', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
"""


class RedisIdempotencyStore:
    def __init__(self, redis: Redis, prefix: str = "ressonance") -> None:
        self._redis = redis
        self._p = prefix
        self._claim = redis.register_script(_CLAIM)
        self._complete = redis.register_script(_COMPLETE)

    def _key(self, app_id: str, key: str) -> str:
        return f"{self._p}:idempotency:{app_id}:{key}"

    async def claim(self, app_id: str, key: str, fingerprint: str, pending_ttl: int) -> Claim:
        found = await self._claim([self._key(app_id, key)], [fingerprint, pending_ttl])
        if found[0] == 1:
            return Claim(True)
        _, first, answer = found
        return Claim(False, text(first or b""), None if answer is None else text(answer))

    async def complete(self, app_id: str, key: str, answer: str, ttl: int) -> None:
        await self._complete([self._key(app_id, key)], [answer, ttl])

    async def release(self, app_id: str, key: str) -> None:
        await self._redis.delete(self._key(app_id, key))
