"""The Redis (or Valkey) client of `--state`, and what every Redis store shares.

`connect(url)` makes the one client of a node (redis-py asyncio, the `redis` extra); every
Redis store of the node is built on it by `open_state`, and `SharedState.close` closes it.

Rules the Redis stores keep:
1. Every key starts with the deployment's prefix (`key_prefix`, "ressonance" by default), so
   several deployments can share one server; app ids keep tenants apart below it.
2. A decision that must be atomic is one Lua script, and a script touches only keys passed
   in KEYS (what a future Redis Cluster needs; one hash slot per script is not required yet).
3. Whatever nodes must agree on in time (node leases) uses the Redis server's clock
   (`SERVER_NOW`), so the nodes' own clocks need not agree.
"""

from __future__ import annotations

from typing import Any, Final

# Lua: `now`, the Redis server's time in milliseconds.
SERVER_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""


def connect(url: str) -> Any:
    """A redis-py asyncio client for `url`, or a clear error when the extra is missing."""
    try:
        from redis.asyncio import Redis
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "redis:// needs the redis extra: pip install 'ressonance[redis]'"
        ) from None
    return Redis.from_url(url)


def text(value: bytes | str) -> str:
    """A reply as text (the client answers bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def leases_key(prefix: str) -> str:
    """The sorted set of node leases: node id -> when its lease ends (ms, server clock)."""
    return f"{prefix}:leases"


def entries_key(prefix: str, node_id: str) -> str:
    """The set of what node `node_id` added to presence, for reaping it."""
    return f"{prefix}:node:{node_id}:entries"
