"""Node membership through Redis (or Valkey): one lease per node, one reaping pass.

Keys, under `{prefix}:`:
  leases                  sorted set node_id -> when its lease ends (ms, Redis server clock)
  node:{id}:entries       set of what node `id` added to presence (`RedisPresenceStore`)
  node:{id}:reaper        lock held by the survivor reaping node `id` (expires by itself)

A node renews its lease with `heartbeat` every liveness interval; the lease ends `node_ttl`
after the last renewal. The same lease serves both things a dead node must stop doing:
- counting connections: `RedisConnectionCounter.acquire` sums only the nodes whose lease
  has not ended, so a dead node's connections stop counting the moment it ends;
- holding presence: `reap_dead_nodes` lists the nodes whose lease ended, and for each one
  the survivor that takes its lock removes its entries (member_removed, counts and offline
  users come back as departures) and then its lease, unless the node renewed it meanwhile.
A dead node's members are thus gone within `node_ttl` plus one liveness interval, each dead
node is reaped once, and a node whose lease lapsed learns it from `heartbeat` (False) and
writes its presence and counts again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from ressonance.state.base import Departure, HooksFor, no_hooks
from ressonance.state.redis import SERVER_NOW, leases_key, text

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

# KEYS: leases; ARGV: node id, ttl ms. Returns 1 when the lease had not ended yet.
_RENEW: Final = (
    SERVER_NOW
    + """
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if ends and tonumber(ends) > now then return 1 end
return 0
"""
)
# KEYS: leases. Returns the ids of the nodes whose lease has ended.
_ENDED: Final = (
    SERVER_NOW
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
"""
)
# KEYS: leases; ARGV: node id. Drops the lease unless the node renewed it meanwhile.
_FORGET: Final = (
    SERVER_NOW
    + """
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ends and tonumber(ends) <= now then redis.call('ZREM', KEYS[1], ARGV[1]) end
"""
)

Reap = Callable[[str, HooksFor], Awaitable[list[Departure]]]


class RedisMembership:
    """One node's lease, and the reaping of the nodes whose lease ended.

    `reap(node_id)` removes what a node left in presence (`RedisPresenceStore.reap`).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        node_id: str,
        reap: Reap,
        prefix: str = "ressonance",
        node_ttl: float = 10.0,
    ) -> None:
        self._redis = redis
        self._node_id = node_id
        self._reap = reap
        self._p = prefix
        self._leases = leases_key(prefix)
        self._ttl_ms = int(node_ttl * 1000)
        self._renew = redis.register_script(_RENEW)
        self._ended = redis.register_script(_ENDED)
        self._forget = redis.register_script(_FORGET)

    async def heartbeat(self) -> bool:
        return bool(await self._renew([self._leases], [self._node_id, self._ttl_ms]))

    async def reap_dead_nodes(self, hooks: HooksFor = no_hooks) -> list[Departure]:
        departures: list[Departure] = []
        for raw in await self._ended([self._leases]):
            node_id = text(raw)
            if node_id == self._node_id:
                continue  # this node is alive; its next heartbeat says it lapsed
            lock = f"{self._p}:node:{node_id}:reaper"
            if not await self._redis.set(lock, self._node_id, nx=True, px=self._ttl_ms * 3):
                continue  # another node is reaping it
            log.warning("event=node_dead node_id=%s reaper=%s", node_id, self._node_id)
            departures += await self._reap(node_id, hooks)
            await self._forget([self._leases], [node_id])
        return departures
