"""HistoryStore contract (state/base.py): serials, retention by size and time, range reads."""

from __future__ import annotations

import asyncio

from ressonance.state.base import HistoryEvent, HistoryStore, Retention
from tests.contracts.conftest import MakeState
from tests.fakes import FakeClock

KEEP = Retention(size=100, ttl=300)


async def fill(history: HistoryStore, count: int, retention: Retention = KEEP) -> list[int]:
    return [
        await history.append("1", "chat-a", "message", f'{{"n":{n}}}', retention)
        for n in range(count)
    ]


def serials(events: list[HistoryEvent]) -> list[int]:
    return [event.serial for event in events]


async def test_a_new_log_starts_at_the_clock_in_microseconds_and_counts_up_by_one(
    history: HistoryStore, clock: FakeClock
) -> None:
    given = await fill(history, 5)

    assert given[0] == int(clock() * 1_000_000) + 1
    assert given == list(range(given[0], given[0] + 5))


async def test_position_starts_a_log_and_the_next_event_follows_it(
    history: HistoryStore, clock: FakeClock
) -> None:
    start = await history.position("1", "chat-a", KEEP)
    assert start == int(clock() * 1_000_000)
    assert await history.position("1", "chat-a", KEEP) == start

    assert await fill(history, 1) == [start + 1]
    assert await history.position("1", "chat-a", KEEP) == start + 1


async def test_events_come_back_as_published_in_serial_order(
    history: HistoryStore, clock: FakeClock
) -> None:
    first = await history.append("1", "chat-a", "message", '{"text":"héllo"}', KEEP)
    clock.advance(1.5)
    await history.append("1", "chat-a", "typing", "", KEEP)

    page = await history.read("1", "chat-a", KEEP, limit=10)

    now_ms = int(clock() * 1000)
    assert page.events == [
        HistoryEvent(first, "message", '{"text":"héllo"}', now_ms - 1500),
        HistoryEvent(first + 1, "typing", "", now_ms),
    ]
    assert (page.first, page.last) == (first, first + 1)


async def test_a_channel_without_a_log_reads_empty_with_no_bounds(history: HistoryStore) -> None:
    page = await history.read("1", "chat-none", KEEP, limit=10)

    assert (page.events, page.first, page.last) == ([], None, None)


async def test_ranges_are_exclusive_and_limited_from_the_oldest_or_the_newest(
    history: HistoryStore,
) -> None:
    s = await fill(history, 10)

    oldest = await history.read("1", "chat-a", KEEP, after=s[2], limit=3)
    newest = await history.read("1", "chat-a", KEEP, before=s[8], limit=3, newest=True)
    between = await history.read("1", "chat-a", KEEP, after=s[2], before=s[5], limit=10)
    tail = await history.read("1", "chat-a", KEEP, limit=4, newest=True)
    past_the_end = await history.read("1", "chat-a", KEEP, after=s[9], limit=10)
    empty_range = await history.read("1", "chat-a", KEEP, after=s[5], before=s[6], limit=10)

    assert serials(oldest.events) == s[3:6]
    assert serials(newest.events) == s[5:8]
    assert serials(between.events) == s[3:5]
    assert serials(tail.events) == s[6:]
    assert past_the_end.events == empty_range.events == []
    assert (past_the_end.first, past_the_end.last) == (s[0], s[9])


async def test_only_the_newest_size_events_are_kept(history: HistoryStore) -> None:
    small = Retention(size=5, ttl=300)
    s = await fill(history, 12, small)

    page = await history.read("1", "chat-a", small, limit=100)

    assert serials(page.events) == s[7:]
    assert (page.first, page.last) == (s[7], s[11])


async def test_a_smaller_size_applies_to_what_was_kept_before(history: HistoryStore) -> None:
    s = await fill(history, 10)

    page = await history.read("1", "chat-a", Retention(size=3, ttl=300), limit=100)

    assert serials(page.events) == s[7:]


async def test_events_older_than_the_ttl_are_not_kept(
    history: HistoryStore, clock: FakeClock
) -> None:
    s = await fill(history, 3)
    clock.advance(200)
    s += await fill(history, 2)
    clock.advance(150)  # the first three are 350 s old, the last two 150 s

    page = await history.read("1", "chat-a", KEEP, limit=100)
    clock.advance(200)
    gone = await history.read("1", "chat-a", KEEP, limit=100)

    assert serials(page.events) == s[3:]
    assert (page.first, page.last) == (s[3], s[4])
    assert (gone.events, gone.first, gone.last) == ([], None, s[4])


async def test_a_log_keeps_its_serial_when_its_events_age_out(
    history: HistoryStore, clock: FakeClock
) -> None:
    s = await fill(history, 2)
    clock.advance(KEEP.ttl + 10)

    assert await fill(history, 1) == [s[1] + 1]
    assert await history.position("1", "chat-a", KEEP) == s[1] + 1


async def test_channels_and_apps_have_logs_of_their_own(history: HistoryStore) -> None:
    a = await history.append("1", "chat-a", "e", "a", KEEP)
    b = await history.append("1", "chat-b", "e", "b", KEEP)
    other = await history.append("2", "chat-a", "e", "other app", KEEP)

    assert [e.data for e in (await history.read("1", "chat-a", KEEP, limit=9)).events] == ["a"]
    assert [e.data for e in (await history.read("1", "chat-b", KEEP, limit=9)).events] == ["b"]
    assert [e.data for e in (await history.read("2", "chat-a", KEEP, limit=9)).events] == [
        "other app"
    ]
    assert a == b == other  # each log starts at the same clock


async def test_retained_bytes_count_names_and_data_per_app_and_fall_with_trims(
    history: HistoryStore,
) -> None:
    small = Retention(size=2, ttl=300)
    await history.append("1", "chat-a", "ab", "cdé", small)  # 2 + 4 bytes in UTF-8
    await history.append("1", "chat-b", "e", "x", small)
    await history.append("2", "chat-a", "e", "xyz", small)
    assert await history.retained_bytes() == {"1": 8, "2": 4}

    await history.append("1", "chat-a", "e", "1", small)
    await history.append("1", "chat-a", "e", "2", small)  # the first event is trimmed

    assert await history.retained_bytes() == {"1": 6, "2": 4}


async def test_serials_stay_unique_and_consecutive_under_concurrent_publishers(
    make_state: MakeState,
) -> None:
    stores = [make_state(node_id=node).history for node in ("a", "b", "c")]

    async def publish(history: HistoryStore, node: int) -> list[int]:
        return [await history.append("1", "chat-a", "e", f"{node}-{n}", KEEP) for n in range(30)]

    given = await asyncio.gather(*(publish(h, i) for i, h in enumerate(stores)))

    every = sorted(s for node in given for s in node)
    assert every == list(range(every[0], every[0] + 90))
    assert all(node == sorted(node) for node in given)  # each publisher's serials increase
    page = await stores[1].read("1", "chat-a", Retention(size=100, ttl=300), limit=100)
    assert serials(page.events) == every
