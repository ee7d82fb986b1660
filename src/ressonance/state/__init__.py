"""`--state`: what a node shares with the others, behind one factory and one Redis client.

`open_state(url)` picks the stores by URL scheme and returns them as one `SharedState`:
presence, cache channels, app-wide rate limits, usage, connection counts, the node's
membership (its lease, and the reaping of dead nodes), channel history and idempotency keys.
memory:// (or no URL) keeps them in this process; redis://, rediss:// and unix:// share them
through one Redis (or Valkey) client. The Redis client library is imported only when such a
URL is used (the `redis` extra).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from ressonance.state.base import SharedState

REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
SCHEMES: Final = ("memory://", *REDIS_SCHEMES)


def open_state(
    url: str | None,
    *,
    node_id: str,
    clock: Callable[[], float],
    prefix: str = "ressonance",
    node_ttl: float = 10.0,
) -> SharedState:
    """The shared state at `url` for node `node_id`.

    `prefix` starts every shared key (one deployment's keys); `node_ttl` is how long the
    node's lease lasts after each heartbeat.
    """
    url = url or "memory://"
    match urlsplit(url).scheme:
        case "memory":
            from ressonance.state.memory import memory_state

            return memory_state(clock)
        case "redis" | "rediss" | "unix":
            return _redis_state(url, node_id, clock, prefix, node_ttl)
        case other:
            raise ValueError(f"state URL scheme {other!r} is not one of {', '.join(SCHEMES)}")


def _redis_state(
    url: str, node_id: str, clock: Callable[[], float], prefix: str, node_ttl: float
) -> SharedState:
    """Every store on one client; `close` closes it."""
    from ressonance.state.redis import connect
    from ressonance.state.redis_cache import RedisCacheStore
    from ressonance.state.redis_connections import RedisConnectionCounter
    from ressonance.state.redis_history import RedisHistoryStore
    from ressonance.state.redis_idempotency import RedisIdempotencyStore
    from ressonance.state.redis_membership import RedisMembership
    from ressonance.state.redis_presence import RedisPresenceStore
    from ressonance.state.redis_ratelimit import RedisRateLimiter
    from ressonance.state.redis_usage import RedisUsageStore

    redis = connect(url)
    presence = RedisPresenceStore(redis, node_id=node_id, prefix=prefix)
    membership = RedisMembership(
        redis, node_id=node_id, reap=presence.reap, prefix=prefix, node_ttl=node_ttl
    )

    async def close() -> None:
        await redis.aclose()

    return SharedState(
        presence=presence,
        cache=RedisCacheStore(redis, clock, prefix),
        limiter=RedisRateLimiter(redis, clock, prefix),
        usage=RedisUsageStore(redis, prefix),
        connections=RedisConnectionCounter(redis, node_id=node_id, prefix=prefix),
        membership=membership,
        history=RedisHistoryStore(redis, clock, prefix),
        idempotency=RedisIdempotencyStore(redis, prefix),
        close=close,
    )
