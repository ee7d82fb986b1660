"""Slow clients, as the node sees them: each connection's waiting output is bounded in bytes and
messages, and past that the app's policy applies (4100 by default, or drop the oldest).

`FakeOutlet.buffered_bytes` plays the transport's write buffer: a client that stops reading is
one whose buffer stays full. Whatever the slow one gets, every other subscriber gets every
event, in order.
"""

from __future__ import annotations

import asyncio
import dataclasses

from ressonance.protocol.app import App
from ressonance.protocol.errors import ErrorCode
from ressonance.server.node import Node
from tests.server.clients import Client, trigger
from tests.server.conftest import APP, MakeNode

DROPPING = dataclasses.replace(APP, id="2", key="dropping-key", slow_client_policy="drop_oldest")


async def subscribers(node: Node, app: App, count: int, channel: str = "news") -> list[Client]:
    clients = [Client.connect(node, app) for _ in range(count)]
    for client in clients:
        await client.subscribe(channel)
        client.outlet.clear()
    return clients


async def test_by_default_a_client_over_the_byte_limit_is_closed_with_4100(
    make_node: MakeNode,
) -> None:
    node = await make_node(max_buffer_bytes=1000)
    fast1, slow, fast2 = await subscribers(node, APP, 3)
    slow.outlet.buffered_bytes = 1001

    for index in range(5):
        await node.publish(APP, trigger("news", name=f"e{index}"))

    slow.outlet.assert_closed(ErrorCode.OVER_CAPACITY)
    slow.outlet.assert_nothing_received()
    for client in (fast1, fast2):
        assert client.outlet.events() == [f"e{index}" for index in range(5)]
        client.outlet.assert_open()
    assert node.metrics.app(APP.id).slow_disconnects == 1


async def test_by_default_a_client_over_the_message_limit_is_closed_with_4100(
    make_node: MakeNode,
) -> None:
    node = await make_node(max_buffer_messages=10)
    fast, slow = await subscribers(node, APP, 2)
    slow.outlet.buffered_bytes = 1  # never quite empty: it reads, but not fast enough

    for index in range(20):
        await node.publish(APP, trigger("news", name=f"e{index}"))

    assert slow.outlet.events() == [f"e{index}" for index in range(10)]
    slow.outlet.assert_closed(ErrorCode.OVER_CAPACITY)
    assert fast.outlet.events() == [f"e{index}" for index in range(20)]
    fast.outlet.assert_open()


async def test_a_closed_slow_client_is_counted_under_its_close_code(make_node: MakeNode) -> None:
    node = await make_node(max_buffer_bytes=1000)
    [slow] = await subscribers(node, APP, 1)
    slow.outlet.buffered_bytes = 1001
    await node.publish(APP, trigger("news"))

    await slow.close()  # the transport saw the connection end

    assert node.metrics.closed == {"4100": 1}
    assert node.metrics.connections == 0


async def test_with_drop_oldest_a_slow_client_stays_open_and_gets_the_newest_events(
    make_node: MakeNode,
) -> None:
    node = await make_node(DROPPING, max_buffer_bytes=1000, max_buffer_messages=3)
    fast1, slow, fast2 = await subscribers(node, DROPPING, 3)
    slow.outlet.buffered_bytes = 1001

    for index in range(10):
        await node.publish(DROPPING, trigger("news", name=f"e{index}"))

    slow.outlet.assert_open()
    slow.outlet.assert_nothing_received()
    for client in (fast1, fast2):
        assert client.outlet.events() == [f"e{index}" for index in range(10)]

    slow.outlet.buffered_bytes = 0  # it caught up
    node.registry.poll()  # the timer sweep notices

    assert slow.outlet.events() == ["e7", "e8", "e9"]
    assert node.metrics.app(DROPPING.id).dropped == 7
    assert node.metrics.app(DROPPING.id).slow_disconnects == 0


async def test_with_drop_oldest_the_next_event_releases_what_was_held(make_node: MakeNode) -> None:
    node = await make_node(DROPPING, max_buffer_bytes=1000, max_buffer_messages=3)
    [slow] = await subscribers(node, DROPPING, 1)
    slow.outlet.buffered_bytes = 1001
    for index in range(5):
        await node.publish(DROPPING, trigger("news", name=f"e{index}"))
    await asyncio.sleep(0)  # the loop turn ends: the node writes what it delivered

    slow.outlet.buffered_bytes = 0
    await node.publish(DROPPING, trigger("news", name="e5"))

    assert slow.outlet.events() == ["e2", "e3", "e4", "e5"]
    assert len(slow.outlet.writes) == 1
    await node.publish(DROPPING, trigger("news", name="e6"))
    assert slow.outlet.events()[-1] == "e6"


async def test_each_app_gets_its_own_policy_on_one_node(make_node: MakeNode) -> None:
    node = await make_node(APP, DROPPING, max_buffer_bytes=1000)
    [closing] = await subscribers(node, APP, 1)
    [dropping] = await subscribers(node, DROPPING, 1)
    closing.outlet.buffered_bytes = dropping.outlet.buffered_bytes = 1001

    await node.publish(APP, trigger("news"))
    await node.publish(DROPPING, trigger("news"))

    closing.outlet.assert_closed(ErrorCode.OVER_CAPACITY)
    dropping.outlet.assert_open()
    assert dropping.session.held == 1


async def test_a_slow_client_cannot_hold_more_than_the_limits_whatever_is_published(
    make_node: MakeNode,
) -> None:
    node = await make_node(DROPPING, max_buffer_bytes=2000, max_buffer_messages=50)
    [slow] = await subscribers(node, DROPPING, 1)
    slow.outlet.buffered_bytes = 2001

    for index in range(1000):
        await node.publish(DROPPING, trigger("news", name=f"e{index}", data="x" * 100))
    await asyncio.sleep(0)  # the loop turn ends: the node writes what it delivered

    assert slow.session.held <= 50
    assert slow.session.held_bytes <= 2000
    assert node.metrics.app(DROPPING.id).dropped == 1000 - slow.session.held
