"""`--state`: what a node shares with the others, behind one factory and one Redis client.

`open_state(url)` picks the stores by URL scheme and returns them as one `SharedState`:
presence, cache channels, app-wide rate limits, usage, connection counts, the node's
membership (its lease, and the reaping of dead nodes), channel history, idempotency keys and
the webhook queue. memory:// (or no URL) keeps them in this process, except the webhook
queue, which is durable: SQLite in `webhooks.db` of the state directory (in memory when no
directory is given, as in tests); redis://, rediss:// and unix:// share them all through one
Redis (or Valkey) client. The Redis client library is imported only when such a URL is used
(the `redis` extra).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from ressonance.state.base import SharedState

REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
WEBHOOKS_FILE: Final = "webhooks.db"
SCHEMES: Final = ("memory://", *REDIS_SCHEMES)


def open_state(
    url: str | None,
    *,
    node_id: str,
    clock: Callable[[], float],
    prefix: str = "ressonance",
    node_ttl: float = 10.0,
    state_dir: Path | None = None,
    leave_delay: float = 3.0,
) -> SharedState:
    """The shared state at `url` for node `node_id`.

    `prefix` starts every shared key (one deployment's keys); `node_ttl` is how long the
    node's lease lasts after each heartbeat, and a webhook lane's lease. `state_dir` holds
    a single node's webhook queue. `leave_delay` holds back channel_vacated and
    member_removed webhooks (cancelled when the channel or user comes back within it).
    """
    url = url or "memory://"
    match urlsplit(url).scheme:
        case "memory":
            from ressonance.state.memory import memory_state

            return memory_state(
                clock,
                node_id=node_id,
                webhooks_file=None if state_dir is None else state_dir / WEBHOOKS_FILE,
                leave_delay=leave_delay,
                lease_ttl=node_ttl,
            )
        case "redis" | "rediss" | "unix":
            return _redis_state(url, node_id, clock, prefix, node_ttl, leave_delay)
        case other:
            raise ValueError(f"state URL scheme {other!r} is not one of {', '.join(SCHEMES)}")


def _redis_state(
    url: str,
    node_id: str,
    clock: Callable[[], float],
    prefix: str,
    node_ttl: float,
    leave_delay: float,
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
    from ressonance.state.redis_webhooks import RedisWebhookQueue

    redis = connect(url)
    presence = RedisPresenceStore(redis, node_id=node_id, prefix=prefix, leave_delay=leave_delay)
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
        webhooks=RedisWebhookQueue(redis, node_id=node_id, prefix=prefix, lease_ttl=node_ttl),
        close=close,
    )
