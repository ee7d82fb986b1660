"""Node liveness of shared presence stores: a node that stops heartbeating is reaped once,
and what it left behind comes back as departures for the survivors to announce."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from ressonance.state.base import Departure, PresenceStore
from ressonance.state.redis_presence import RedisPresenceStore, connect
from tests.contracts.conftest import unique_prefix

SHARED_BACKENDS = ["redis"]

MakeStore = Callable[[str, float], PresenceStore]


@pytest.fixture(params=SHARED_BACKENDS)
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """`make_store(node_id, ttl)`: one node's store, all on one deployment prefix."""
    client: Redis = connect(request.getfixturevalue("redis_url"))
    prefix = unique_prefix()

    def make(node_id: str, ttl: float) -> PresenceStore:
        return RedisPresenceStore(client, node_id=node_id, prefix=prefix, node_ttl=ttl)

    yield make
    await client.aclose()


async def test_a_first_heartbeat_reports_a_lapse_and_later_ones_do_not(
    make_store: MakeStore,
) -> None:
    store = make_store("a", 5.0)

    assert await store.heartbeat() is False
    assert await store.heartbeat() is True


async def test_a_silent_node_is_reaped_once_with_its_departures(make_store: MakeStore) -> None:
    alive, dying = make_store("alive", 5.0), make_store("dying", 0.2)
    await alive.heartbeat()
    await dying.heartbeat()
    await alive.join("1", "presence-room", "1.1")
    await alive.add_member("1", "presence-room", "1.1", "stays", None)
    await dying.join("1", "presence-room", "2.1")
    await dying.add_member("1", "presence-room", "2.1", "goes", {"n": 1})
    await dying.join("1", "news", "2.1")
    await dying.add_user_connection("1", "goes", "2.1")
    await dying.join("1", "presence-room", "2.2")  # a second tab of "stays" on the dying node
    await dying.add_member("1", "presence-room", "2.2", "stays", None)

    assert await alive.reap_dead_nodes() == []  # still within its TTL
    await asyncio.sleep(0.4)
    await alive.heartbeat()
    departures = await alive.reap_dead_nodes()

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
    assert await alive.members("1", "presence-room") == {"stays": None}
    assert await alive.channels("1") == {"presence-room": 1}
    assert await alive.online("1", ("goes", "stays")) == set()
    assert await alive.reap_dead_nodes() == []  # reaped once
