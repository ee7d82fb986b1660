"""Channels on a node: presence members, subscription counts, cache channels.

What each connection reads, per reference §2.2 (subscriptions) and §2.3. Client events are
in test_client_events.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from ressonance.protocol.errors import ErrorCode
from ressonance.server.node import Node
from tests.fakes import FakeClock, decoded_data
from tests.server.clients import (
    Client,
    Connect,
    after_turns,
    joined,
    run_timers_until,
    subscribed,
    trigger,
)
from tests.server.conftest import APP, MakeNode

# --- presence -------------------------------------------------------------------------------


async def test_presence_roster_includes_every_user_and_the_joiner(connect: Connect) -> None:
    await joined(connect, "presence-room", user_id="alice", user_info={"name": "Alice"})
    bob = connect()

    await bob.subscribe("presence-room", user_id="bob", user_info={"name": "Bob"})

    assert subscribed(bob, "presence-room") == {
        "presence": {
            "ids": ["alice", "bob"],
            "hash": {"alice": {"name": "Alice"}, "bob": {"name": "Bob"}},
            "count": 2,
        }
    }


async def test_member_added_goes_to_the_others_only(connect: Connect) -> None:
    alice = await joined(connect, "presence-room", user_id="alice")
    bob = connect()

    await bob.subscribe("presence-room", user_id="bob", user_info={"name": "Bob"})

    alice.outlet.assert_received(
        "pusher_internal:member_added",
        channel="presence-room",
        data={"user_id": "bob", "user_info": {"name": "Bob"}},
    )
    bob.outlet.assert_not_received("pusher_internal:member_added")


async def test_member_added_without_user_info_carries_only_the_user_id(
    connect: Connect,
) -> None:
    alice = await joined(connect, "presence-room", user_id="alice")

    await joined(connect, "presence-room", user_id="bob")

    alice.outlet.assert_received("pusher_internal:member_added", data={"user_id": "bob"})


async def test_a_second_tab_of_a_user_is_announced_once(connect: Connect) -> None:
    alice = await joined(connect, "presence-room", user_id="alice")
    bob_tab1 = await joined(connect, "presence-room", user_id="bob")
    bob_tab2 = connect()

    await bob_tab2.subscribe("presence-room", user_id="bob")

    alice.outlet.assert_received("pusher_internal:member_added", data={"user_id": "bob"})
    bob_tab1.outlet.assert_nothing_received()
    roster = subscribed(bob_tab2, "presence-room")["presence"]
    assert roster == {"ids": ["alice", "bob"], "hash": {"alice": None, "bob": None}, "count": 2}


@pytest.mark.parametrize("first_leaves", ["unsubscribe", "close"])
@pytest.mark.parametrize("last_leaves", ["unsubscribe", "close"])
async def test_member_removed_only_when_the_users_last_tab_leaves(
    connect: Connect, first_leaves: str, last_leaves: str
) -> None:
    alice = await joined(connect, "presence-room", user_id="alice")
    bob_tab1 = await joined(connect, "presence-room", user_id="bob")
    bob_tab2 = await joined(connect, "presence-room", user_id="bob")
    alice.outlet.clear()

    async def leave(client: Client, how: str) -> None:
        if how == "close":
            await client.close()
        else:
            await client.unsubscribe("presence-room")

    await leave(bob_tab1, first_leaves)
    alice.outlet.assert_nothing_received()
    bob_tab2.outlet.assert_nothing_received()

    await leave(bob_tab2, last_leaves)
    alice.outlet.assert_received(
        "pusher_internal:member_removed", channel="presence-room", data={"user_id": "bob"}
    )
    bob_tab2.outlet.assert_not_received("pusher_internal:member_removed")


async def test_a_user_who_left_and_returns_is_announced_again(connect: Connect) -> None:
    alice = await joined(connect, "presence-room", user_id="alice")
    bob = await joined(connect, "presence-room", user_id="bob")
    await bob.unsubscribe("presence-room")
    alice.outlet.clear()

    await bob.subscribe("presence-room", user_id="bob")

    alice.outlet.assert_received("pusher_internal:member_added", data={"user_id": "bob"})
    assert subscribed(bob, "presence-room")["presence"]["count"] == 2  # type: ignore[index]


async def test_presence_member_limit_refuses_new_users_with_limit_reached(
    make_node: MakeNode,
) -> None:
    small = dataclasses.replace(APP, max_presence_members_per_channel=2)
    node = await make_node(small)
    clients = [Client.connect(node, small) for _ in range(4)]
    alice, bob, carol, bob_again = clients
    await alice.subscribe("presence-room", user_id="alice")
    await bob.subscribe("presence-room", user_id="bob")
    alice.outlet.clear()

    await carol.subscribe("presence-room", user_id="carol")
    await bob_again.subscribe("presence-room", user_id="bob")

    error = carol.outlet.assert_received("pusher:subscription_error", channel="presence-room")
    assert error["data"]["type"] == "LimitReached"
    assert error["data"]["status"] == ErrorCode.OVER_CAPACITY
    carol.outlet.assert_not_received("pusher_internal:subscription_succeeded")
    carol.outlet.assert_open()
    alice.outlet.assert_nothing_received()  # no member_added for carol nor bob's second tab
    assert subscribed(bob_again, "presence-room")["presence"]["count"] == 2  # type: ignore[index]

    await node.publish(small, trigger("presence-room"))
    carol.outlet.assert_not_received("my-event")

    await bob.close()
    await bob_again.close()
    carol.outlet.clear()
    await carol.subscribe("presence-room", user_id="carol")
    subscribed(carol, "presence-room")


@pytest.mark.parametrize(
    ("channel", "failing"), [("news", "join"), ("presence-room", "join_presence")]
)
@pytest.mark.parametrize("recorded", [False, True], ids=["unrecorded", "recorded"])
async def test_a_subscription_the_store_failed_leaves_nothing_behind(
    node: Node,
    connect: Connect,
    monkeypatch: pytest.MonkeyPatch,
    channel: str,
    failing: str,
    recorded: bool,
) -> None:
    member = {"user_id": "carol"} if channel.startswith("presence-") else {}
    watcher = await joined(connect, channel, **({"user_id": "watcher"} if member else {}))
    carol = connect()
    store_method = getattr(node.presence, failing)

    async def blip(*args: object) -> object:
        monkeypatch.setattr(node.presence, failing, store_method)  # fails once
        if recorded:  # the store did it, but the answer was lost (a timeout)
            await store_method(*args)
        raise ConnectionError("store down")

    monkeypatch.setattr(node.presence, failing, blip)

    await carol.subscribe(channel, **member)

    error = carol.outlet.assert_received("pusher:subscription_error", channel=channel)
    assert error["data"]["status"] == 503
    carol.outlet.assert_open()
    await node.publish(APP, trigger(channel))
    carol.outlet.assert_not_received("my-event")  # refused: it does not get the channel
    await carol.close()
    assert await node.presence.channels(APP.id) == {channel: 1}  # no ghost member or count
    assert await node.presence.members(APP.id, channel) == ({"watcher": None} if member else {})
    watcher.outlet.assert_not_received("pusher_internal:member_added")
    watcher.outlet.assert_not_received("pusher_internal:member_removed")


async def test_presence_with_a_signed_in_user_needs_no_channel_data(connect: Connect) -> None:
    client = connect()
    await client.signin("42", user_info={"name": "Ada"})

    await client.subscribe("presence-room")  # auth signs socket_id:channel only (§4)

    roster = subscribed(client, "presence-room")["presence"]
    assert roster == {"ids": ["42"], "hash": {"42": {"name": "Ada"}}, "count": 1}


@pytest.mark.parametrize("given_by", ["channel_data", "signin"])
async def test_a_member_whose_user_info_nests_too_deep_cannot_break_the_channel(
    connect: Connect, given_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by fuzzing: the roster could not be encoded, so every later subscriber of the
    # channel was refused "Temporarily unavailable".
    deep = json.loads("[" * 300 + "]" * 300)
    mallory = connect()
    if given_by == "signin":
        await mallory.signin("mallory", user_info=deep)
        await mallory.subscribe("presence-room")
    else:
        await mallory.subscribe("presence-room", user_id="mallory", user_info=deep)
    mallory.outlet.assert_not_received("pusher_internal:subscription_succeeded")
    alice = connect()

    await alice.subscribe("presence-room", user_id="alice")

    roster = subscribed(alice, "presence-room")["presence"]
    assert roster == {"ids": ["alice"], "hash": {"alice": None}, "count": 1}
    assert "event=handle_failed" not in caplog.text


# --- subscription_count ---------------------------------------------------------------------


@pytest.fixture
async def counting(make_node: MakeNode) -> Node:
    return await make_node(dataclasses.replace(APP, subscription_count=True))


def counts(client: Client, channel: str) -> list[int]:
    return [
        decoded_data(message)["subscription_count"]
        for message in client.outlet.received("pusher_internal:subscription_count", channel)
    ]


@pytest.mark.parametrize("channel", ["news", "private-orders", "cache-prices"])
async def test_subscription_count_is_sent_on_every_subscribe_and_unsubscribe(
    counting: Node, connect: Connect, channel: str
) -> None:
    app = dataclasses.replace(APP, subscription_count=True)
    first = connect(app, counting)
    second = connect(app, counting)
    third = connect(app, counting)

    await first.subscribe(channel)
    await second.subscribe(channel)
    await third.subscribe(channel)
    await third.unsubscribe(channel)
    await second.close()

    assert counts(first, channel) == [1, 2, 3, 2, 1]
    assert counts(second, channel) == [2, 3, 2]
    assert counts(third, channel) == [3]
    message = first.outlet.received("pusher_internal:subscription_count")[0]
    assert message == {
        "event": "pusher_internal:subscription_count",
        "channel": channel,
        "data": '{"subscription_count":1}',
    }


async def test_subscription_count_is_not_sent_on_presence_channels(
    counting: Node, connect: Connect
) -> None:
    app = dataclasses.replace(APP, subscription_count=True)
    alice = connect(app, counting)
    bob = connect(app, counting)

    await alice.subscribe("presence-room", user_id="alice")
    await bob.subscribe("presence-room", user_id="bob")
    await bob.unsubscribe("presence-room")

    alice.outlet.assert_not_received("pusher_internal:subscription_count")
    bob.outlet.assert_not_received("pusher_internal:subscription_count")


async def test_subscription_count_is_off_by_default(connect: Connect) -> None:
    first = await joined(connect, "news")

    await joined(connect, "news")

    first.outlet.assert_nothing_received()


async def test_subscription_count_above_100_is_sent_at_most_every_5_s(
    counting: Node, connect: Connect, clock: FakeClock
) -> None:
    app = dataclasses.replace(APP, subscription_count=True)
    clients = [connect(app, counting) for _ in range(103)]
    first = clients[0]
    for client in clients:
        await client.subscribe("news")

    assert counts(first, "news") == list(range(1, 101))  # 101 to 103 are owed
    clock.advance(4)
    await run_timers_until(counting, after_turns(10))
    assert counts(first, "news")[-1] == 100

    clock.advance(1)
    await run_timers_until(counting, lambda: counts(first, "news")[-1] == 103)
    assert counts(first, "news") == [*range(1, 101), 103]
    assert counts(clients[-1], "news") == [103]


# --- cache channels -------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["cache-prices", "private-cache-prices"])
async def test_cache_miss_follows_subscription_succeeded_when_nothing_is_cached(
    connect: Connect, channel: str
) -> None:
    client = connect()

    await client.subscribe(channel)

    assert client.outlet.messages()[1:] == [{"event": "pusher:cache_miss", "channel": channel}]
    assert client.outlet.events()[0] == "pusher_internal:subscription_succeeded"


async def test_a_new_subscriber_gets_the_last_cached_event(node: Node, connect: Connect) -> None:
    await node.publish(APP, trigger("cache-prices", name="price", data='{"v":1}'))
    await node.publish(APP, trigger("cache-prices", name="price", data='{"v":2}'))
    client = connect()

    await client.subscribe("cache-prices")

    assert client.outlet.messages()[1:] == [
        {"event": "price", "channel": "cache-prices", "data": '{"v":2}'}
    ]


async def test_presence_cache_replays_after_the_roster(node: Node, connect: Connect) -> None:
    await node.publish(APP, trigger("presence-cache-room", name="topic", data="hello"))
    client = connect()

    await client.subscribe("presence-cache-room", user_id="alice")

    assert client.outlet.events() == ["pusher_internal:subscription_succeeded", "topic"]


async def test_cached_event_expires_after_the_apps_cache_ttl(
    make_node: MakeNode, clock: FakeClock
) -> None:
    app = dataclasses.replace(APP, cache_ttl=60)
    node = await make_node(app)
    await node.publish(app, trigger("cache-prices", name="price"))

    clock.advance(59)
    before = Client.connect(node, app)
    await before.subscribe("cache-prices")
    clock.advance(1)
    after = Client.connect(node, app)
    await after.subscribe("cache-prices")

    before.outlet.assert_received("price", channel="cache-prices")
    after.outlet.assert_received("pusher:cache_miss", channel="cache-prices")
    after.outlet.assert_not_received("price")


async def test_non_cache_channels_neither_replay_nor_miss(node: Node, connect: Connect) -> None:
    await node.publish(APP, trigger("news"))
    client = connect()

    await client.subscribe("news")

    assert client.outlet.events() == ["pusher_internal:subscription_succeeded"]


async def test_client_events_are_not_cached(connect: Connect) -> None:
    sender = await joined(connect, "private-cache-chat")
    await sender.trigger("private-cache-chat", "client-typing", {"x": 1})
    late = connect()

    await late.subscribe("private-cache-chat")

    late.outlet.assert_received("pusher:cache_miss")
    late.outlet.assert_not_received("client-typing")


@pytest.mark.parametrize("failing", ["cache", "backbone"])
async def test_a_failure_after_subscription_succeeded_never_contradicts_it(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    watcher = await joined(connect, "presence-cache-room", user_id="watcher")
    carol = connect()

    async def down(*args: object, **kwargs: object) -> object:
        raise ConnectionError(f"{failing} down")

    if failing == "cache":
        monkeypatch.setattr(node.subscriptions.cache, "get", down)
    else:  # member_added to the watcher cannot be published
        monkeypatch.setattr(node.backbone, "publish", down)

    await carol.subscribe("presence-cache-room", user_id="carol")

    carol.outlet.assert_received("pusher_internal:subscription_succeeded")
    carol.outlet.assert_not_received("pusher:subscription_error")
    carol.outlet.assert_not_received("pusher:error")
    carol.outlet.assert_received("pusher:cache_miss", channel="presence-cache-room")
    carol.outlet.assert_open()
    if failing == "cache":
        watcher.outlet.assert_received("pusher_internal:member_added")


class GatedBackbone:
    """The node's backbone, with subscriptions held until `opened` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.opened = asyncio.Event()
        self.subscribes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def subscribe(self, topic: Any) -> None:
        self.subscribes += 1
        await self.opened.wait()
        await self.inner.subscribe(topic)


async def test_a_second_subscriber_is_not_told_it_joined_before_the_backbone_is_subscribed(
    node: Node, connect: Connect
) -> None:
    gated = GatedBackbone(node.fanout.backbone)
    node.fanout.backbone = gated
    alice, bob = connect(), connect()

    first = asyncio.create_task(alice.subscribe("news"))
    second = asyncio.create_task(bob.subscribe("news"))
    for _ in range(5):
        await asyncio.sleep(0)
    bob.outlet.assert_not_received("pusher_internal:subscription_succeeded")

    gated.opened.set()
    await asyncio.gather(first, second)
    assert gated.subscribes == 1  # the node subscribes the topic once
    alice.outlet.assert_received("pusher_internal:subscription_succeeded")
    bob.outlet.assert_received("pusher_internal:subscription_succeeded")
