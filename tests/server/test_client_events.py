"""Client events on a node: relayed to the other subscribers, and refused with 4301.

What each connection reads, per reference §2.4. The app-wide and daily limits are in
test_quotas.py.
"""

from __future__ import annotations

import dataclasses

from ressonance.protocol.errors import ErrorCode
from tests.fakes import FakeClock
from tests.server.clients import Client, Connect, joined
from tests.server.conftest import APP, MakeNode


async def test_client_events_reach_the_others_but_not_the_sender(connect: Connect) -> None:
    sender = await joined(connect, "private-chat")
    other = await joined(connect, "private-chat")

    await sender.trigger("private-chat", "client-typing", {"x": 1})

    sender.outlet.assert_nothing_received()
    message = other.outlet.assert_received("client-typing", channel="private-chat")
    assert message == {"event": "client-typing", "channel": "private-chat", "data": {"x": 1}}


async def test_client_events_on_presence_carry_the_senders_user_id(connect: Connect) -> None:
    sender = await joined(connect, "presence-room", user_id="alice")
    other = await joined(connect, "presence-room", user_id="bob")

    await sender.trigger("presence-room", "client-wave", "hi")

    message = other.outlet.assert_received("client-wave", channel="presence-room")
    assert message["user_id"] == "alice"
    assert message["data"] == "hi"
    sender.outlet.assert_not_received("client-wave")


async def test_client_events_over_the_rate_limit_are_rejected_with_4301(
    make_node: MakeNode, clock: FakeClock
) -> None:
    app = dataclasses.replace(APP, max_client_events_per_sec=3)
    node = await make_node(app)
    sender = Client.connect(node, app)
    other = Client.connect(node, app)
    await sender.subscribe("private-chat")
    await other.subscribe("private-chat")
    sender.outlet.clear()
    other.outlet.clear()

    for n in range(4):
        await sender.trigger("private-chat", "client-n", n)

    assert [m["data"] for m in other.outlet.received("client-n")] == [0, 1, 2]
    error = sender.outlet.assert_received("pusher:error", channel="private-chat")
    assert error["data"]["code"] == ErrorCode.CLIENT_EVENT_REJECTED == 4301
    assert "rate limit" in error["data"]["message"]
    sender.outlet.assert_open()

    clock.advance(1)
    sender.outlet.clear()
    await sender.trigger("private-chat", "client-n", 4)

    assert [m["data"] for m in other.outlet.received("client-n")] == [0, 1, 2, 4]
    sender.outlet.assert_nothing_received()


async def test_the_client_event_rate_limit_is_per_connection(make_node: MakeNode) -> None:
    app = dataclasses.replace(APP, max_client_events_per_sec=1)
    node = await make_node(app)
    first, second, reader = (Client.connect(node, app) for _ in range(3))
    for client in (first, second, reader):
        await client.subscribe("private-chat")
        client.outlet.clear()

    await first.trigger("private-chat", "client-a", 1)
    await second.trigger("private-chat", "client-b", 2)

    assert reader.outlet.events() == ["client-a", "client-b"]
    first.outlet.assert_not_received("pusher:error")
    second.outlet.assert_not_received("pusher:error")


async def test_client_events_are_refused_when_the_app_disables_them(
    make_node: MakeNode,
) -> None:
    app = dataclasses.replace(APP, enable_client_messages=False)
    node = await make_node(app)
    sender = Client.connect(node, app)
    other = Client.connect(node, app)
    await sender.subscribe("private-chat")
    await other.subscribe("private-chat")
    other.outlet.clear()

    await sender.trigger("private-chat", "client-typing", {})

    error = sender.outlet.assert_received("pusher:error", channel="private-chat")
    assert error["data"]["code"] == 4301
    other.outlet.assert_nothing_received()


async def test_client_events_need_a_subscription(connect: Connect) -> None:
    outsider = connect()
    member = await joined(connect, "private-chat")

    await outsider.trigger("private-chat", "client-typing", {})

    outsider.outlet.assert_received("pusher:error", channel="private-chat")
    member.outlet.assert_nothing_received()
