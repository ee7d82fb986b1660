"""Membership contract (state/base.py): one lease per node, and the reaping of dead nodes.

One heartbeat keeps a node alive for both things that depend on it: its connections count
against their apps' quotas, and its presence entries stay. A node whose lease ends stops
counting at once, is reaped once by a survivor (its departures returned for announcing),
and learns of the lapse from its next heartbeat, after which it writes its state again.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from ressonance.state import open_state
from ressonance.state.base import Departure, SharedState
from tests.contracts.conftest import SHARED_STATE, MakeState, unique_prefix
from tests.fakes import FakeClock

SHARED = pytest.mark.parametrize("make_state", SHARED_STATE, indirect=True)


async def occupy(state: SharedState, socket_id: str, user_id: str) -> None:
    """A connection of `user_id`: counted, in presence-room and news, and signed in."""
    await state.connections.acquire("1", -1)
    await state.presence.join_presence("1", "presence-room", socket_id, user_id, None)
    await state.presence.join("1", "news", socket_id)
    await state.presence.add_user_connection("1", user_id, socket_id)


async def test_a_node_that_heartbeats_is_never_reaped(state: SharedState) -> None:
    await occupy(state, "1.1", "alice")

    await state.membership.heartbeat()

    assert await state.membership.reap_dead_nodes() == []
    assert await state.presence.subscription_count("1", "news") == 1
    assert await state.presence.members("1", "presence-room") == {"alice": None}
    assert await state.presence.online("1", ("alice",)) == {"alice"}
    assert await state.connections.count("1") == 1


@SHARED
async def test_heartbeat_reports_a_lapse(make_state: MakeState) -> None:
    node = make_state("a", 0.2)

    assert await node.membership.heartbeat() is False  # first beat
    assert await node.membership.heartbeat() is True
    await asyncio.sleep(0.4)
    assert await node.membership.heartbeat() is False  # expired meanwhile


@SHARED
async def test_a_silent_node_is_reaped_once_with_its_departures(make_state: MakeState) -> None:
    alive, dying = make_state("alive", 5.0), make_state("dying", 0.2)
    await alive.membership.heartbeat()
    await dying.membership.heartbeat()
    await alive.presence.join_presence("1", "presence-room", "1.1", "stays", None)
    await dying.presence.join_presence("1", "presence-room", "2.1", "goes", {"n": 1})
    await dying.presence.join("1", "news", "2.1")
    await dying.presence.add_user_connection("1", "goes", "2.1")
    # a second tab of "stays" on the dying node
    await dying.presence.join_presence("1", "presence-room", "2.2", "stays", None)

    assert await alive.membership.reap_dead_nodes() == []  # still within its TTL
    await asyncio.sleep(0.4)
    await alive.membership.heartbeat()
    departures = await alive.membership.reap_dead_nodes()

    assert sorted(departures, key=repr) == sorted(
        [
            Departure("1", "presence-room", "goes", -1),
            Departure("1", "presence-room", None, 2),
            Departure("1", "presence-room", None, 1),
            Departure("1", "news", None, 0),
            Departure("1", "", "goes", 0),
        ],
        key=repr,
    )
    assert await alive.presence.members("1", "presence-room") == {"stays": None}
    assert await alive.presence.channels("1") == {"presence-room": 1}
    assert await alive.presence.online("1", ("goes", "stays")) == set()
    assert await alive.membership.reap_dead_nodes() == []  # reaped once


@SHARED
async def test_a_silent_nodes_connections_stop_counting(make_state: MakeState) -> None:
    alive, dying = make_state("alive", 5.0), make_state("dying", 0.2)
    await alive.membership.heartbeat()
    await dying.membership.heartbeat()
    for _ in range(3):
        await dying.connections.acquire("1", 4)
    assert await alive.connections.acquire("1", 4) == 4
    assert await alive.connections.acquire("1", 4) is None

    await asyncio.sleep(0.4)  # the dying node's lease ends: no reaping needed to stop counting

    assert await alive.connections.count("1") == 1
    assert await alive.connections.acquire("1", 4) == 2


@SHARED
async def test_a_node_counts_before_its_first_heartbeat(make_state: MakeState) -> None:
    starting, other = make_state("starting"), make_state("other")
    await other.membership.heartbeat()

    assert await starting.connections.acquire("1", 5) == 1
    assert await starting.connections.acquire("1", 5) == 2  # its own field is never dropped
    await starting.membership.heartbeat()
    await starting.connections.restore({"1": 2})
    assert await other.connections.count("1") == 2


@SHARED
async def test_a_lapsed_node_that_was_reaped_writes_its_state_again(
    make_state: MakeState,
) -> None:
    survivor, lapsed = make_state("survivor", 5.0), make_state("lapsed", 0.2)
    await survivor.membership.heartbeat()
    await lapsed.membership.heartbeat()
    await occupy(lapsed, "2.1", "alice")
    await asyncio.sleep(0.4)  # an outage longer than its TTL
    await survivor.membership.reap_dead_nodes()
    assert await survivor.connections.count("1") == 0

    assert await lapsed.membership.heartbeat() is False  # it learns of the lapse
    await occupy(lapsed, "2.1", "alice")  # what the liveness loop's resync writes
    await lapsed.connections.restore({"1": 1})

    assert await survivor.membership.reap_dead_nodes() == []
    assert await survivor.connections.count("1") == 1
    assert await survivor.presence.members("1", "presence-room") == {"alice": None}
    assert await survivor.presence.channels("1") == {"presence-room": 1, "news": 1}


async def test_a_node_is_one_lease_in_one_sorted_set(redis_url: str, clock: FakeClock) -> None:
    prefix = unique_prefix()
    nodes = [open_state(redis_url, node_id=n, clock=clock, prefix=prefix) for n in "ab"]
    client = Redis.from_url(redis_url)
    try:
        for node in (*nodes, nodes[1]):
            await node.membership.heartbeat()
        keys = await client.keys(f"{prefix}:*")
        leases = await client.zrange(f"{prefix}:leases", 0, -1)
    finally:
        await client.aclose()
        for node in nodes:
            await node.close()

    assert keys == [f"{prefix}:leases".encode()]
    assert sorted(leases) == [b"a", b"b"]
