"""Fanout frames of one event-loop turn leave in one write per connection.

The node writes what it delivered at the end of the turn (one `call_soon`), so the events of
several publishes handled in the same turn cost each subscriber one `transport.write`. These
tests use outlets without `settle`, to see when the writes really happen.
"""

from __future__ import annotations

import asyncio

import pytest

from ressonance.protocol import messages as m
from ressonance.protocol.connection import Connection
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.frames import text_frame
from ressonance.protocol.rest import Trigger
from ressonance.server.node import Node
from ressonance.server.session import OutputLimits, Session
from tests.fakes import START_TIME, FakeOutlet
from tests.server.clients import trigger
from tests.server.conftest import APP, MakeNode


def news(name: str) -> Trigger:
    return trigger("news", name=name)


async def subscriber(node: Node) -> tuple[Session, FakeOutlet]:
    """A session subscribed to news whose outlet shows only real writes."""
    outlet = FakeOutlet()
    session = node.registry.open_session(APP, outlet)
    assert isinstance(session, Session)
    await node.receive(session, '{"event":"pusher:subscribe","data":{"channel":"news"}}')
    outlet.clear()
    return session, outlet


async def test_the_events_of_one_turn_leave_in_one_write_at_its_end(node: Node) -> None:
    _, first = await subscriber(node)
    _, second = await subscriber(node)

    for name in ("e0", "e1", "e2"):
        await node.publish(APP, news(name))
    assert first.writes == []  # not yet: the turn has not ended

    await asyncio.sleep(0)

    for outlet in (first, second):
        assert outlet.events() == ["e0", "e1", "e2"]
        assert len(outlet.writes) == 1
    await node.publish(APP, news("e3"))
    await asyncio.sleep(0)
    assert first.events()[-1] == "e3"
    assert len(first.writes) == 2  # a later turn, a later write


async def test_a_sessions_own_answer_comes_after_what_it_was_delivered(node: Node) -> None:
    session, outlet = await subscriber(node)

    await node.publish(APP, news("e0"))
    await node.receive(session, '{"event":"pusher:ping","data":{}}')

    assert outlet.events() == ["e0", "pusher:pong"]  # written at once, in order
    await asyncio.sleep(0)
    assert outlet.events() == ["e0", "pusher:pong"]


async def test_a_connection_that_closes_gets_what_it_was_delivered_first(node: Node) -> None:
    session, outlet = await subscriber(node)

    await node.publish(APP, news("e0"))
    session.close(ErrorCode.GENERIC_RECONNECT, "Bye")

    assert outlet.events() == ["e0"]
    outlet.assert_closed(ErrorCode.GENERIC_RECONNECT)
    await asyncio.sleep(0)
    assert outlet.events() == ["e0"]


async def test_a_turns_events_to_a_slow_client_are_counted_one_by_one(
    make_node: MakeNode,
) -> None:
    node = await make_node(max_buffer_messages=3)
    _, slow = await subscriber(node)
    slow.buffered_bytes = 1  # not empty: each frame counts against the limit

    for index in range(5):
        await node.publish(APP, news(f"e{index}"))
    await asyncio.sleep(0)

    assert slow.events() == ["e0", "e1", "e2"]
    slow.assert_closed(ErrorCode.OVER_CAPACITY)


async def test_frames_held_for_one_session_in_a_turn_are_bounded_by_the_message_limit(
    make_node: MakeNode,
) -> None:
    node = await make_node(max_buffer_messages=4)
    _, outlet = await subscriber(node)

    for index in range(9):
        await node.publish(APP, news(f"e{index}"))

    assert len(outlet.writes) == 2  # e0-e3 and e4-e7 left as soon as there were 4
    await asyncio.sleep(0)
    assert outlet.events() == [f"e{index}" for index in range(9)]
    assert len(outlet.writes) == 3


async def test_a_connection_whose_write_fails_does_not_keep_the_others_frames(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    _, broken = await subscriber(node)
    _, healthy = await subscriber(node)

    def fail(frame: bytes) -> None:
        raise OSError("gone")

    broken.write = fail  # type: ignore[method-assign]
    await node.publish(APP, news("e0"))
    await asyncio.sleep(0)

    assert healthy.events() == ["e0"]
    assert "event=flush_failed" in caplog.text
    await node.publish(APP, news("e1"))
    await asyncio.sleep(0)
    assert healthy.events() == ["e0", "e1"]


def test_a_session_without_a_node_writes_at_once() -> None:
    outlet = FakeOutlet()
    session = Session(Connection(APP, "123.456", START_TIME), outlet, OutputLimits())

    session.write(text_frame(m.encode("e0", channel="news")))

    assert outlet.events() == ["e0"]


async def test_an_error_to_a_session_comes_after_what_it_was_delivered(node: Node) -> None:
    session, outlet = await subscriber(node)

    await node.publish(APP, news("e0"))
    session.error("Nope", None)

    assert outlet.events() == ["e0", "pusher:error"]


async def test_a_close_that_finds_a_slow_client_closes_it_with_4100(
    make_node: MakeNode,
) -> None:
    node = await make_node(max_buffer_bytes=1000)
    session, slow = await subscriber(node)
    slow.buffered_bytes = 1001

    await node.publish(APP, news("e0"))
    session.close(ErrorCode.UNAUTHORIZED, "Terminated")

    slow.assert_closed(ErrorCode.OVER_CAPACITY)
    assert slow.close_calls == 1
    assert session.close_code == ErrorCode.OVER_CAPACITY
