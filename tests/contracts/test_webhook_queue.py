"""WebhookQueue contract (state/base.py): durable, ordered lanes worked by one node at a time.

Runs over a single node's SQLite file and the cluster's Redis streams. Several queues made by
one test share their store, as the nodes of a cluster (or processes on one file) do.
"""

from __future__ import annotations

import orjson

from ressonance.state.base import DeliveryAttempt, QueuedEvent, WebhookQueue
from tests.contracts.conftest import Queues

A, B = "1:aaaaaaaaaaaa", "1:bbbbbbbbbbbb"
OTHER_APP = "2:cccccccccccc"


def event(n: int, channel: str = "news") -> bytes:
    return orjson.dumps({"name": "client_event", "channel": channel, "id": f"e{n}"})


async def add_all(queue: WebhookQueue, *items: tuple[tuple[str, ...], str, int]) -> None:
    for lanes, channel, n in items:
        queue.add(lanes, channel, event(n, channel))
    await queue.flush()


def numbers(events: list[QueuedEvent]) -> list[int]:
    return [int(orjson.loads(e.event)["id"][1:]) for e in events]


# --- producing and reading ---------------------------------------------------------------------


async def test_events_are_read_in_the_order_they_were_added(queues: Queues) -> None:
    queue = await queues.make()
    await add_all(queue, ((A,), "news", 1), ((A, B), "scores", 2), ((A,), "news", 3))

    read = await queue.read(A)
    assert numbers(read) == [1, 2, 3]
    assert [e.channel for e in read] == ["news", "scores", "news"]
    assert read[1].event == event(2, "scores")
    assert all(e.produced_ms > 0 and e.due_ms == 0 and e.key == "" for e in read)
    assert numbers(await queue.read(B)) == [2]
    assert await queue.lanes() == [A, B]


async def test_nothing_is_stored_before_a_flush(queues: Queues) -> None:
    queue = await queues.make()
    woken: list[bool] = []
    queue.wake = lambda: woken.append(True)

    queue.add((A,), "news", event(1))
    queue.add((A,), "news", event(2))

    assert woken == [True]  # once, when the buffer stopped being empty
    assert await queue.read(A) == []
    await queue.flush()
    assert numbers(await queue.read(A)) == [1, 2]


async def test_reading_goes_on_after_a_position(queues: Queues) -> None:
    queue = await queues.make()
    await add_all(queue, *(((A,), "news", n) for n in range(1, 6)))

    first = await queue.read(A, limit=2)
    rest = await queue.read(A, after=first[-1].position, limit=10)

    assert numbers(first) == [1, 2]
    assert numbers(rest) == [3, 4, 5]
    assert await queue.read(A, after=rest[-1].position) == []


async def test_delivered_events_leave_the_lane(queues: Queues) -> None:
    queue = await queues.make()
    await add_all(queue, *(((A,), "news", n) for n in range(1, 4)))
    read = await queue.read(A)

    await queue.done(A, [read[0].position, read[2].position])
    await queue.done(A, [])

    assert numbers(await queue.read(A)) == [2]


async def test_a_deduplicated_event_is_added_once_per_window(queues: Queues) -> None:
    first, second = await queues.make("a"), await queues.make("b")
    first.add((A,), "cache-x", event(1), dedupe="1|cache-x", dedupe_seconds=30)
    first.add((A,), "cache-x", event(2), dedupe="1|cache-x", dedupe_seconds=30)
    first.add((A,), "cache-y", event(3), dedupe="1|cache-y", dedupe_seconds=30)
    await first.flush()
    if queues.kind == "redis":  # the window is shared by the nodes
        second.add((A,), "cache-x", event(4), dedupe="1|cache-x", dedupe_seconds=30)
        await second.flush()

    assert numbers(await first.read(A)) == [1, 3]


async def test_added_events_survive_the_queue_being_opened_again(queues: Queues) -> None:
    queue = await queues.make()
    await add_all(queue, ((A,), "news", 1))
    await queue.close()

    again = await queues.make("b")
    await add_all(again, ((A,), "news", 2))

    assert numbers(await again.read(A)) == [1, 2]


# --- one worker per lane -----------------------------------------------------------------------


async def test_one_node_at_a_time_holds_a_lane(queues: Queues) -> None:
    a, b = await queues.make("a"), await queues.make("b")

    assert await a.claim(A) is True
    assert await b.claim(A) is False
    assert await a.claim(A) is True  # renewed
    assert await b.claim(B) is True  # another lane is free
    assert await b.release(A) is False  # not b's to give up
    assert await a.release(A) is True
    assert await b.claim(A) is True


async def test_a_dead_nodes_lane_is_taken_over_with_its_unfinished_events(queues: Queues) -> None:
    dead, survivor = await queues.make("dead"), await queues.make("survivor")
    await add_all(dead, *(((A,), "news", n) for n in range(1, 4)))
    assert await dead.claim(A)
    in_flight = await dead.read(A)
    await dead.done(A, [in_flight[0].position])  # delivered one, then died sending the rest

    assert await survivor.claim(A) is False
    await queues.expire()

    assert await survivor.claim(A) is True
    assert numbers(await survivor.read(A)) == [2, 3]
    assert await dead.claim(A) is False  # it may not come back and take it again


async def test_an_empty_lane_is_released_and_forgotten(queues: Queues) -> None:
    queue = await queues.make()
    await add_all(queue, ((A,), "news", 1), ((B,), "news", 2))
    assert await queue.claim(A)

    assert await queue.release(A, if_empty=True) is False
    await queue.done(A, [e.position for e in await queue.read(A)])
    assert await queue.release(A, if_empty=True) is True

    assert await queue.lanes() == [B]
    assert await queue.claim(A) is True  # free again


async def test_a_lane_with_buffered_events_is_not_released(queues: Queues) -> None:
    queue = await queues.make()
    assert await queue.claim(A)
    queue.add((A,), "news", event(1))

    if queues.kind == "sqlite":  # the single node knows its own buffer
        assert await queue.release(A, if_empty=True) is False
    await queue.flush()
    assert await queue.release(A, if_empty=True) is False
    assert numbers(await queue.read(A)) == [1]


# --- dead letters, replay, the delivery log, depth -----------------------------------------------


async def test_dead_letters_are_kept_per_app_and_replayed_at_the_end_of_their_lane(
    queues: Queues,
) -> None:
    queue = await queues.make()
    await add_all(
        queue, ((A,), "news", 1), ((B,), "scores", 2), ((A,), "news", 3), ((OTHER_APP,), "x", 4)
    )
    given_up = (await queue.read(A))[:1] + await queue.read(B)
    await queue.dead_letter(A, given_up[:1], "retry window ended: HTTP 500", 1234)
    await queue.dead_letter(B, given_up[1:], "retry window ended: timeout", 1235)
    await queue.dead_letter(A, given_up[:1], "again", 1236)  # already moved: nothing

    letters = await queue.dead_letters("1")
    assert [(d.lane, d.channel, d.event, d.reason, d.failed_ms) for d in letters] == [
        (A, "news", event(1), "retry window ended: HTTP 500", 1234),
        (B, "scores", event(2, "scores"), "retry window ended: timeout", 1235),
    ]
    assert letters[0].produced_ms == given_up[0].produced_ms
    assert await queue.dead_letters("2") == []
    assert [d.id for d in await queue.dead_letters("1", after=letters[0].id)] == [letters[1].id]
    assert numbers(await queue.read(A)) == [3]

    assert await queue.replay("1", [letters[0].id, "999999-0", "x", letters[0].id]) == 1
    assert await queue.replay("2", [letters[1].id]) == 0  # another app's

    assert numbers(await queue.read(A)) == [3, 1]
    assert [d.id for d in await queue.dead_letters("1")] == [letters[1].id]


async def test_an_apps_dead_letters_keep_the_newest(queues: Queues) -> None:
    queue = await queues.make(dead_letter_limit=2)
    await add_all(queue, *(((A,), "news", n) for n in range(1, 5)))
    for queued in await queue.read(A):
        await queue.dead_letter(A, [queued], "gone", 1)

    assert [orjson.loads(d.event)["id"] for d in await queue.dead_letters("1")] == ["e3", "e4"]


async def test_the_delivery_log_keeps_a_lanes_latest_requests(queues: Queues) -> None:
    queue = await queues.make()
    for n in range(105):
        await queue.record_attempt(A, DeliveryAttempt(n, 500, 12, 3, f"HTTP {n}"))
    await queue.record_attempt(B, DeliveryAttempt(7, 0, 10_000, 1, "timeout"))
    await queue.flush()

    log = await queue.delivery_log(A, limit=200)
    assert len(log) == 100
    assert log[0] == DeliveryAttempt(104, 500, 12, 3, "HTTP 104")
    assert log[-1].at_ms == 5
    assert await queue.delivery_log(B) == [DeliveryAttempt(7, 0, 10_000, 1, "timeout")]
    assert len(await queue.delivery_log(A, limit=3)) == 3


async def test_depth_counts_waiting_events_and_the_oldest(queues: Queues) -> None:
    queue = await queues.make()
    await add_all(queue, ((A,), "news", 1), ((A,), "news", 2))
    read = await queue.read(A)

    depth = await queue.depth([A, B])

    assert depth[A].events == 2
    assert depth[A].oldest_ms == read[0].produced_ms
    assert (depth[B].events, depth[B].oldest_ms) == (0, 0)


async def test_several_producers_on_one_store_never_collide(queues: Queues) -> None:
    a, b = await queues.make("a"), await queues.make("b")
    for n in range(3):
        a.add((A,), "news", event(n))
        b.add((A,), "news", event(10 + n))
    await a.flush()
    await b.flush()
    a.add((A,), "news", event(3))
    await a.flush()

    assert sorted(numbers(await a.read(A))) == [0, 1, 2, 3, 10, 11, 12]
    positions = [e.position for e in await b.read(A)]
    assert len(set(positions)) == 7
