"""RateLimiter contract (ratelimit/base.py): fixed one-second windows per key.

The client-event limit (§2.4, 4301) and the HTTP API's 429s are built on these answers.
"""

from __future__ import annotations

from redis.asyncio import Redis

from ressonance.state.base import RateLimiter
from ressonance.state.redis import connect
from ressonance.state.redis_ratelimit import RedisRateLimiter
from tests.contracts.conftest import unique_prefix
from tests.fakes import FakeClock


async def test_a_key_may_spend_its_limit_in_a_second(limiter: RateLimiter) -> None:
    decisions = [await limiter.consume("k", 3) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(d.limit == 3 for d in decisions)


async def test_retry_after_is_the_rest_of_the_window(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    clock.advance(0.25)
    await limiter.consume("k", 1)

    refused = await limiter.consume("k", 1)

    assert not refused.allowed
    assert 0 < refused.retry_after <= 1


async def test_a_refused_request_spends_nothing(limiter: RateLimiter) -> None:
    assert (await limiter.consume("k", 3, cost=2)).allowed
    refused = await limiter.consume("k", 3, cost=2)
    assert not refused.allowed
    assert refused.remaining == 1

    last = await limiter.consume("k", 3, cost=1)
    assert last.allowed
    assert last.remaining == 0


async def test_the_limit_is_renewed_in_the_next_window(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    for _ in range(2):
        await limiter.consume("k", 2)
    clock.advance(0.5)
    assert not (await limiter.consume("k", 2)).allowed

    clock.advance(0.5)
    renewed = await limiter.consume("k", 2)

    assert renewed.allowed
    assert renewed.remaining == 1


async def test_keys_are_limited_separately(limiter: RateLimiter) -> None:
    await limiter.consume("a", 1)

    assert not (await limiter.consume("a", 1)).allowed
    assert (await limiter.consume("b", 1)).allowed


async def test_forget_drops_a_keys_spending(limiter: RateLimiter) -> None:
    await limiter.consume("k", 1)

    await limiter.forget("k")
    await limiter.forget("never-seen")

    assert (await limiter.consume("k", 1)).allowed


async def test_a_cost_over_the_limit_is_always_refused(limiter: RateLimiter) -> None:
    refused = await limiter.consume("k", 2, cost=3)

    assert not refused.allowed
    assert refused.remaining == 2


async def test_nodes_on_a_shared_store_share_a_limit(redis_url: str, clock: FakeClock) -> None:
    client: Redis = connect(redis_url)
    prefix = unique_prefix()
    one, other = (RedisRateLimiter(client, clock, prefix) for _ in range(2))  # two nodes

    await one.consume("app", 3, cost=2)
    shared = await other.consume("app", 3)
    refused = await one.consume("app", 3)
    await client.aclose()

    assert shared.allowed
    assert shared.remaining == 0
    assert not refused.allowed
