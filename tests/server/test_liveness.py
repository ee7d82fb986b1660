"""Cluster duties of a node, over memory stores: announcing a dead node's departures,
rewriting local state into a store that lost it, and readiness while a backend is down."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from ressonance.protocol.app import App
from ressonance.server.node import Node
from ressonance.server.service import liveness
from ressonance.state.base import Departure
from ressonance.state.memory import (
    MemoryConnectionCounter,
    MemoryMembership,
    MemoryPresenceStore,
)
from tests.fakes import FakeOutlet
from tests.server.clients import Connect, joined
from tests.server.conftest import APP


async def test_a_dead_nodes_member_is_announced_as_removed(node: Node, connect: Connect) -> None:
    watcher = await joined(connect, "presence-room", user_id="watcher")

    await node.announce_departures([Departure(APP.id, "presence-room", "gone", -1)])

    watcher.outlet.assert_received(
        "pusher_internal:member_removed", channel="presence-room", data={"user_id": "gone"}
    )


async def test_a_dead_nodes_user_goes_offline_for_watchers(node: Node, connect: Connect) -> None:
    watcher = connect()
    await watcher.signin("w", watchlist=["gone"])
    watcher.outlet.clear()

    await node.announce_departures([Departure(APP.id, "", "gone", 0)])

    watcher.outlet.assert_received(
        "pusher_internal:watchlist_events",
        data={"events": [{"name": "offline", "user_ids": ["gone"]}]},
    )


async def test_a_dead_nodes_subscriptions_update_the_count(
    make_node: object, connect: Connect, node: Node
) -> None:
    counted = App(id="2", key="k2", secret="s2", subscription_count=True)
    node.apps = type(node.apps)([APP, counted])  # type: ignore[call-arg]
    client = connect(counted)
    await client.subscribe("news")
    client.outlet.clear()

    await node.announce_departures(
        [Departure("2", "news", None, 1), Departure("unknown-app", "news", None, 0)]
    )

    client.outlet.assert_received(
        "pusher_internal:subscription_count", channel="news", data={"subscription_count": 1}
    )


async def test_state_is_rewritten_into_a_store_that_lost_it(node: Node, connect: Connect) -> None:
    await joined(connect, "presence-room", user_id="alice")
    await joined(connect, "news")
    signed = connect()
    await signed.signin("bob")
    node.presence = MemoryPresenceStore()  # the shared store restarted empty

    await liveness(node).resync()

    assert await node.presence.members(APP.id, "presence-room") == {"alice": None}
    assert await node.presence.channels(APP.id) == {"presence-room": 1, "news": 1}
    assert await node.presence.online(APP.id, ("bob", "carol")) == {"bob"}


class BrokenMembership(MemoryMembership):
    """A shared store that is unreachable until `healed`, then comes back empty once."""

    def __init__(self) -> None:
        self.healed = False
        self.lapsed_once = False

    async def heartbeat(self) -> bool:
        if not self.healed:
            raise ConnectionError("store down")
        if not self.lapsed_once:
            self.lapsed_once = True
            return False  # came back empty
        return True


async def test_readiness_follows_the_state_store(node: Node, connect: Connect) -> None:
    await joined(connect, "news")
    broken = BrokenMembership()
    node.membership = broken
    node.presence = MemoryPresenceStore()  # what the store holds after it came back empty
    loop = asyncio.create_task(liveness(node).run(0))
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert not node.readiness.ready
        broken.healed = True
        for _ in range(20):
            await asyncio.sleep(0)
        assert node.readiness.ready
        # The first heartbeat after the outage found the lease gone: state rewritten.
        assert await node.presence.channels(APP.id) == {"news": 1}
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_a_cleanup_that_failed_during_an_outage_is_finished_later(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = await joined(connect, "presence-room", user_id="watcher")
    leaver = await joined(connect, "presence-room", user_id="leaver")
    watcher.outlet.clear()

    async def unreachable(*args: object) -> int:
        raise ConnectionError("store down")

    with monkeypatch.context() as outage:  # the shared store's writes fail
        outage.setattr(node.presence, "remove_member", unreachable)
        outage.setattr(node.presence, "leave", unreachable)
        await leaver.close()  # the store is unreachable: the member stays behind for now

    assert await node.presence.members(APP.id, "presence-room") == {
        "watcher": None,
        "leaver": None,
    }
    watcher.outlet.assert_not_received("pusher_internal:member_removed")
    await node.registry.retry_cleanups()
    await node.registry.retry_cleanups()  # nothing left: no second member_removed

    assert await node.presence.members(APP.id, "presence-room") == {"watcher": None}
    watcher.outlet.assert_received(
        "pusher_internal:member_removed", channel="presence-room", data={"user_id": "leaver"}
    )


class LapsedMembership(MemoryMembership):
    """A shared store that lost this node's lease (and everything else) once."""

    def __init__(self) -> None:
        self.lapsed = True

    async def heartbeat(self) -> bool:
        lapsed, self.lapsed = self.lapsed, False
        return not lapsed


async def test_connection_counts_are_rewritten_into_a_counter_that_lost_them(
    node: Node,
) -> None:
    for _ in range(2):
        await node.registry.connect(APP, FakeOutlet())
    counter = MemoryConnectionCounter()  # the store came back empty
    node.connections = node.quotas.connections = counter
    node.membership = LapsedMembership()
    loop = asyncio.create_task(liveness(node).run(0))
    try:
        for _ in range(20):
            await asyncio.sleep(0)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop

    assert await counter.count(APP.id) == 2
