"""UsageStore contract (usage/base.py): per-app, per-day message totals and connection peaks."""

from __future__ import annotations

from redis.asyncio import Redis

from ressonance.state.base import DayUsage, UsageStore
from ressonance.state.redis import connect
from ressonance.state.redis_usage import RedisUsageStore
from tests.contracts.conftest import unique_prefix


async def test_messages_add_up_per_app_and_day(usage: UsageStore) -> None:
    assert await usage.add_messages("1", "2026-01-01", 5) == 5
    assert await usage.add_messages("1", "2026-01-01", 3) == 8
    assert await usage.add_messages("1", "2026-01-02", 1) == 1
    assert await usage.add_messages("2", "2026-01-01", 7) == 7

    assert await usage.messages("1", "2026-01-01") == 8
    assert await usage.messages("1", "2026-01-02") == 1
    assert await usage.messages("2", "2026-01-01") == 7


async def test_adding_nothing_reads_the_total(usage: UsageStore) -> None:
    await usage.add_messages("1", "2026-01-01", 4)

    assert await usage.add_messages("1", "2026-01-01", 0) == 4
    assert await usage.add_messages("1", "2026-01-09", 0) == 0


async def test_a_day_without_messages_has_none(usage: UsageStore) -> None:
    assert await usage.messages("1", "2026-01-01") == 0


async def test_a_day_keeps_its_connection_peak(usage: UsageStore) -> None:
    for connections in (3, 10, 4):
        await usage.record_connections("1", "2026-01-01", connections)
    await usage.record_connections("1", "2026-01-02", 2)

    days = await usage.usage("1", ["2026-01-01", "2026-01-02"])

    assert [d.peak_connections for d in days] == [10, 2]


async def test_usage_lists_the_days_asked_for_in_order_with_zeros(usage: UsageStore) -> None:
    await usage.add_messages("1", "2026-01-02", 9)
    await usage.record_connections("1", "2026-01-02", 3)
    await usage.record_connections("1", "2026-01-03", 1)

    days = await usage.usage("1", ["2026-01-03", "2026-01-01", "2026-01-02"])

    assert days == [
        DayUsage("2026-01-03", 0, 1),
        DayUsage("2026-01-01", 0, 0),
        DayUsage("2026-01-02", 9, 3),
    ]
    assert await usage.usage("other", ["2026-01-02"]) == [DayUsage("2026-01-02")]


async def test_redis_usage_is_kept_for_forty_days(redis_url: str) -> None:
    client: Redis = connect(redis_url)
    prefix = unique_prefix()
    store = RedisUsageStore(client, prefix)
    await store.add_messages("1", "2026-01-01", 1)
    await store.record_connections("1", "2026-01-02", 1)

    ttls = [await client.ttl(f"{prefix}:usage:1:{day}") for day in ("2026-01-01", "2026-01-02")]
    await client.aclose()

    assert all(39 * 86400 < ttl <= 40 * 86400 for ttl in ttls), ttls
