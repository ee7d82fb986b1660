"""The webhook events of presence transitions (PresenceStore, state/base.py), on every backend.

The store records them in the transition's own step, for the lanes the channel's hooks name:
one channel_occupied per channel and one member_added per user however many connections and
nodes, channel_vacated and member_removed delayed and cancelled by a comeback within the
delay, subscription counts throttled above 100 subscribers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from ressonance.protocol.channels import classify
from ressonance.protocol.webhooks import (
    EVENT_TYPES,
    NO_HOOKS,
    ChannelHooks,
    channel_hooks,
    parse_endpoints,
)
from ressonance.state.base import SharedState
from ressonance.state.memory import memory_state
from tests.contracts.conftest import SHARED_STATE, MakeState
from tests.fakes import FakeClock

SHARED = pytest.mark.parametrize("make_state", SHARED_STATE, indirect=True)
EVERYTHING, ONLY_OCCUPIED = parse_endpoints(
    [
        {"url": "http://a.example/", "event_types": list(EVENT_TYPES)},
        {"url": "http://b.example/", "event_types": ["channel_occupied", "member_added"]},
    ]
)
LANE = f"1:{EVERYTHING.id}"
OCCUPIED_LANE = f"1:{ONLY_OCCUPIED.id}"
ROOM, NEWS = "presence-room", "news"


def hooks(channel: str) -> ChannelHooks:
    return channel_hooks("1", (EVERYTHING, ONLY_OCCUPIED), classify(channel))


async def opened(state: SharedState) -> SharedState:
    await state.webhooks.open()
    return state


async def recorded(
    state: SharedState, lane: str = LANE, *, counts: bool = False
) -> list[tuple[Any, ...]]:
    """(name, channel, user or count, delayed) of the events waiting in `lane` (without
    subscription counts unless `counts`)."""
    await state.webhooks.flush()
    found = []
    for queued in await state.webhooks.read(lane, limit=1000):
        event = orjson.loads(queued.event)
        if event["name"] == "subscription_count" and not counts:
            continue
        assert event["channel"] == queued.channel
        assert event["id"]
        detail = event.get("user_id", event.get("subscription_count"))
        found.append((event["name"], event["channel"], detail, queued.due_ms > 0))
    return found


async def subscribe(state: SharedState, socket_id: str, channel: str = NEWS) -> int:
    return await state.presence.join("1", channel, socket_id, hooks(channel))


async def unsubscribe(state: SharedState, socket_id: str, channel: str = NEWS) -> int:
    return await state.presence.leave("1", channel, socket_id, hooks(channel))


async def member_joins(state: SharedState, socket_id: str, user: str) -> None:
    await state.presence.join_presence("1", ROOM, socket_id, user, None, hooks=hooks(ROOM))


async def member_leaves(state: SharedState, socket_id: str) -> str | None:
    gone = await state.presence.remove_member("1", ROOM, socket_id, hooks(ROOM))
    await state.presence.leave("1", ROOM, socket_id, hooks(ROOM))
    return gone


# --- channels -----------------------------------------------------------------------------------


async def test_a_channel_is_occupied_once_and_vacated_once_delayed(state: SharedState) -> None:
    await opened(state)
    await subscribe(state, "1.1")
    await subscribe(state, "1.2")
    await subscribe(state, "1.2")  # the same connection again is no change
    await unsubscribe(state, "1.1")
    await unsubscribe(state, "1.2")
    await unsubscribe(state, "1.2")

    assert await recorded(state, counts=True) == [
        ("channel_occupied", NEWS, None, False),
        ("subscription_count", NEWS, 1, False),
        ("subscription_count", NEWS, 2, False),
        ("subscription_count", NEWS, 1, False),
        ("channel_vacated", NEWS, None, True),
        ("subscription_count", NEWS, 0, False),
    ]
    assert await recorded(state, OCCUPIED_LANE) == [("channel_occupied", NEWS, None, False)]


async def test_coming_back_within_the_delay_cancels_the_vacated_and_the_occupied(
    state: SharedState,
) -> None:
    await opened(state)
    await subscribe(state, "1.1", "private-a")
    await unsubscribe(state, "1.1", "private-a")
    await subscribe(state, "1.2", "private-a")  # a page reload

    assert await recorded(state) == [("channel_occupied", "private-a", None, False)]
    # a lane that takes occupied but not vacated is told again: it never heard of a vacated
    assert await recorded(state, OCCUPIED_LANE) == [
        ("channel_occupied", "private-a", None, False),
        ("channel_occupied", "private-a", None, False),
    ]


async def test_a_fired_vacated_is_no_longer_cancelled(state: SharedState) -> None:
    await opened(state)
    await subscribe(state, "1.1", "private-a")
    await unsubscribe(state, "1.1", "private-a")
    await state.webhooks.flush()
    (delayed,) = [e for e in await state.webhooks.read(LANE) if e.due_ms]
    assert delayed.key

    assert await state.webhooks.fire(LANE, delayed) is True
    await subscribe(state, "1.2", "private-a")
    await state.webhooks.flush()
    # read again (another worker, after a crash of the one that fired it): still wanted
    (again,) = [e for e in await state.webhooks.read(LANE) if e.due_ms]
    assert await state.webhooks.fire(LANE, again) is True
    assert await state.webhooks.fire(LANE, delayed) is True

    assert await recorded(state) == [
        ("channel_occupied", "private-a", None, False),
        ("channel_vacated", "private-a", None, True),
        ("channel_occupied", "private-a", None, False),
    ]


async def test_a_cancelled_vacated_does_not_fire(state: SharedState) -> None:
    await opened(state)
    await subscribe(state, "1.1", "private-a")
    await unsubscribe(state, "1.1", "private-a")
    await state.webhooks.flush()
    (delayed,) = [e for e in await state.webhooks.read(LANE) if e.due_ms]
    await subscribe(state, "1.2", "private-a")

    assert await state.webhooks.fire(LANE, delayed) is False


async def test_without_hooks_nothing_is_recorded(state: SharedState) -> None:
    await opened(state)
    await state.presence.join("1", NEWS, "1.1")
    await state.presence.join_presence("1", ROOM, "1.1", "alice", None, hooks=NO_HOOKS)
    await state.presence.remove_member("1", ROOM, "1.1")
    await state.presence.leave("1", NEWS, "1.1")

    assert await recorded(state) == []
    assert await state.webhooks.lanes() == []


@SHARED
async def test_subscribers_on_several_nodes_make_one_occupied_and_one_vacated(
    make_state: MakeState,
) -> None:
    a, b, c = [await opened(make_state(node)) for node in "abc"]
    await subscribe(a, "1.1")
    await subscribe(b, "2.1")
    await subscribe(c, "3.1")
    await unsubscribe(b, "2.1")
    await unsubscribe(a, "1.1")
    await unsubscribe(c, "3.1")

    names = [name for name, *_ in await recorded(a)]
    assert names == ["channel_occupied", "channel_vacated"]


# --- members ------------------------------------------------------------------------------------


async def test_a_user_is_added_once_and_removed_after_the_last_connection(
    state: SharedState,
) -> None:
    await opened(state)
    await member_joins(state, "1.1", "alice")
    await member_joins(state, "1.2", "alice")  # a second tab
    await member_joins(state, "1.3", "bob")
    assert await member_leaves(state, "1.1") is None
    assert await member_leaves(state, "1.2") == "alice"

    assert await recorded(state) == [
        ("channel_occupied", ROOM, None, False),
        ("member_added", ROOM, "alice", False),
        ("member_added", ROOM, "bob", False),
        ("member_removed", ROOM, "alice", True),
    ]


async def test_a_user_back_within_the_delay_is_neither_removed_nor_added(
    state: SharedState,
) -> None:
    await opened(state)
    await member_joins(state, "1.1", "alice")
    await member_leaves(state, "1.1")
    await member_joins(state, "1.2", "alice")  # a reload

    assert await recorded(state) == [
        ("channel_occupied", ROOM, None, False),
        ("member_added", ROOM, "alice", False),
    ]
    # a lane that takes neither vacated nor member_removed is told again: it heard of no leave
    assert await recorded(state, OCCUPIED_LANE) == [
        ("channel_occupied", ROOM, None, False),
        ("member_added", ROOM, "alice", False),
        ("channel_occupied", ROOM, None, False),
        ("member_added", ROOM, "alice", False),
    ]


async def test_the_last_member_leaving_is_removed_before_the_channel_is_vacated(
    state: SharedState,
) -> None:
    await opened(state)
    await member_joins(state, "1.1", "alice")
    await member_leaves(state, "1.1")

    events = await recorded(state)
    assert events[2:] == [
        ("member_removed", ROOM, "alice", True),
        ("channel_vacated", ROOM, None, True),
    ]
    delayed = (await state.webhooks.read(LANE))[2:]
    assert delayed[0].due_ms <= delayed[1].due_ms


@SHARED
async def test_one_user_on_several_nodes_is_one_member(make_state: MakeState) -> None:
    a, b = [await opened(make_state(node)) for node in "ab"]
    await member_joins(a, "1.1", "alice")
    await member_joins(b, "2.1", "alice")
    await member_leaves(a, "1.1")
    await member_leaves(b, "2.1")

    members = [e for e in await recorded(a) if e[0].startswith("member")]
    assert members == [
        ("member_added", ROOM, "alice", False),
        ("member_removed", ROOM, "alice", True),
    ]


@SHARED
async def test_a_dead_nodes_members_are_removed_by_the_reaper(make_state: MakeState) -> None:
    alive, dying = await opened(make_state("alive", 5.0)), await opened(make_state("dying", 0.2))
    await alive.membership.heartbeat()
    await dying.membership.heartbeat()
    await member_joins(dying, "2.1", "alice")
    await subscribe(dying, "2.1")

    async def hooks_for(app_id: str, channel: str) -> ChannelHooks:
        assert app_id == "1"
        return hooks(channel)

    await asyncio.sleep(0.4)
    await alive.membership.heartbeat()
    await alive.membership.reap_dead_nodes(hooks_for)

    by_channel = sorted(await recorded(alive), key=lambda e: e[1])  # order kept per channel
    assert by_channel == [
        ("channel_occupied", NEWS, None, False),
        ("channel_vacated", NEWS, None, True),
        ("channel_occupied", ROOM, None, False),
        ("member_added", ROOM, "alice", False),
        ("member_removed", ROOM, "alice", True),
        ("channel_vacated", ROOM, None, True),
    ]


# --- subscription counts ------------------------------------------------------------------------


async def test_counts_above_100_are_sent_at_most_every_5_seconds_with_the_latest(
    state: SharedState,
) -> None:
    await opened(state)
    for n in range(103):
        await subscribe(state, f"1.{n}")
    await unsubscribe(state, "1.0")

    events = await recorded(state, counts=True)
    counts = [(e[2], e[3]) for e in events if e[0] == "subscription_count"]
    # up to 100 at once; 101 opens the window; 102 and 103 wait, replaced by the latest (102)
    assert counts[:101] == [(n, False) for n in range(1, 102)]
    assert counts[101:] == [(102, True)]


async def test_presence_channels_have_no_subscription_count(state: SharedState) -> None:
    await opened(state)
    await member_joins(state, "1.1", "alice")

    assert "subscription_count" not in [e[0] for e in await recorded(state)]


async def test_a_single_node_restarted_within_the_delay_cancels_what_it_delayed(
    tmp_path: Path, clock: FakeClock
) -> None:
    file = tmp_path / "webhooks.db"
    before = memory_state(clock, node_id="a", webhooks_file=file)
    await before.webhooks.open()
    await subscribe(before, "1.1", "private-a")
    await unsubscribe(before, "1.1", "private-a")  # the node stops: vacated is delayed
    await before.close()

    after = memory_state(clock, node_id="b", webhooks_file=file)
    await after.webhooks.open()
    await subscribe(after, "2.1", "private-a")  # the client is back on the restarted node

    assert await recorded(after) == [("channel_occupied", "private-a", None, False)]
    await after.close()


async def test_the_queue_file_is_private(tmp_path: Path, clock: FakeClock) -> None:
    file = tmp_path / "state" / "webhooks.db"
    state = memory_state(clock, node_id="a", webhooks_file=file)
    await state.webhooks.open()
    await state.close()

    assert file.stat().st_mode & 0o777 == 0o600
    assert file.parent.stat().st_mode & 0o777 == 0o700
