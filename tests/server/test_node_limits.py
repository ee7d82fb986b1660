"""Per-connection abuse limits seen through a node: what the client reads, and its close."""

from __future__ import annotations

from dataclasses import replace

from ressonance.backbone.base import Topic
from ressonance.protocol.errors import ErrorCode
from tests.server.clients import Client
from tests.server.conftest import APP, MakeNode

PING = {"event": "pusher:ping", "data": {}}


async def test_a_flooding_client_is_warned_then_closed_with_4100_and_others_are_served(
    make_node: MakeNode,
) -> None:
    app = replace(APP, max_inbound_messages_per_sec=5, max_channels_per_connection=1)
    node = await make_node(app)
    flooder, other = Client.connect(node, app), Client.connect(node, app)
    flooder.outlet.clear()
    other.outlet.clear()

    for _ in range(6):  # the burst: 5 + 1 channel
        await flooder.send(PING)
    assert flooder.outlet.events() == ["pusher:pong"] * 6
    for _ in range(6):  # one warned, five more dropped
        await flooder.send(PING)

    warning = flooder.outlet.assert_received("pusher:error")
    assert warning["data"] == {
        "code": 4301,
        "message": "Rate limit exceeded: more than 5 messages per second "
        "(max_inbound_messages_per_sec); messages are being dropped",
    }
    flooder.outlet.assert_closed(ErrorCode.OVER_CAPACITY)
    assert flooder.outlet.close_reason == (
        "Too many messages per second (max_inbound_messages_per_sec = 5)"
    )
    await other.send(PING)
    other.outlet.assert_received("pusher:pong")
    other.outlet.assert_open()


async def test_a_subscription_past_the_channel_limit_gets_a_subscription_error(
    make_node: MakeNode,
) -> None:
    app = replace(APP, max_channels_per_connection=2)
    node = await make_node(app)
    client = Client.connect(node, app)
    await client.subscribe("a")
    await client.subscribe("private-b")
    client.outlet.clear()

    await client.subscribe("c")

    error = client.outlet.assert_received("pusher:subscription_error", "c")
    assert error["data"] == {
        "type": "LimitReached",
        "error": "Too many channels on this connection: at most 2 (max_channels_per_connection)",
        "status": 4301,
    }
    assert node.hub.sessions(Topic(APP.id, "c")) == []
    client.outlet.assert_open()
