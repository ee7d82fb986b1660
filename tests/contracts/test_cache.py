"""CacheStore contract (cache/base.py): the last event of a cache channel, for a TTL (§2.2)."""

from __future__ import annotations

from ressonance.state.base import CachedEvent, CacheStore
from tests.fakes import FakeClock


async def test_nothing_cached_is_none(cache: CacheStore) -> None:
    assert await cache.get("1", "cache-prices") is None


async def test_a_put_event_is_returned_with_its_time_to_live(cache: CacheStore) -> None:
    await cache.put("1", "cache-prices", "price", '{"v": 1}', 60)

    assert await cache.get("1", "cache-prices") == CachedEvent("price", '{"v": 1}', 60)


async def test_the_last_put_wins_and_restarts_the_ttl(cache: CacheStore, clock: FakeClock) -> None:
    await cache.put("1", "cache-prices", "price", "1", 60)
    clock.advance(50)

    await cache.put("1", "cache-prices", "price-changed", "2", 60)
    clock.advance(50)

    assert await cache.get("1", "cache-prices") == CachedEvent("price-changed", "2", 10)


async def test_the_ttl_counts_down_and_the_value_expires(
    cache: CacheStore, clock: FakeClock
) -> None:
    await cache.put("1", "cache-prices", "price", "1", 60)

    clock.advance(59)
    assert await cache.get("1", "cache-prices") == CachedEvent("price", "1", 1)
    clock.advance(1)
    assert await cache.get("1", "cache-prices") is None
    clock.advance(1000)
    assert await cache.get("1", "cache-prices") is None


async def test_the_ttl_is_whole_seconds_within_a_second_of_the_truth(
    cache: CacheStore, clock: FakeClock
) -> None:
    await cache.put("1", "cache-prices", "price", "1", 60)

    clock.advance(0.5)

    cached = await cache.get("1", "cache-prices")
    assert cached is not None
    assert cached.ttl in (59, 60)


async def test_channels_and_apps_are_kept_apart(cache: CacheStore) -> None:
    await cache.put("1", "cache-a", "e", "a", 60)
    await cache.put("2", "cache-a", "e", "other app", 60)

    assert await cache.get("1", "cache-b") is None
    cached = await cache.get("1", "cache-a")
    assert cached is not None
    assert cached.data == "a"


async def test_data_is_kept_verbatim(cache: CacheStore) -> None:
    data = '{ "spaced" : "\\u00e9 é" }'
    await cache.put("1", "cache-a", "App\\Events\\Price", data, 60)

    assert await cache.get("1", "cache-a") == CachedEvent("App\\Events\\Price", data, 60)
