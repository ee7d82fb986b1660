"""A node over memory stores, driven as clients drive it: connections, publishing, timers.

Every test speaks through `Client` (the frames pusher-js sends) and `FakeOutlet` (the
messages a client reads), with time moved by the fake clock only. Channels and users are in
test_node_channels.py and test_node_users.py.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from ressonance.protocol.app import App
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.signing import channel_auth
from ressonance.server.node import Node
from ressonance.server.session import Session
from tests.fakes import FakeClock, FakeOutlet, decoded_data
from tests.server.clients import Client, Connect, joined, run_timers_until, trigger
from tests.server.conftest import APP, MakeNode

# --- connections ----------------------------------------------------------------------------


async def test_connection_established_carries_socket_id_and_activity_timeout(node: Node) -> None:
    client = Client.connect(node, APP)

    message = client.outlet.assert_received("pusher:connection_established")

    assert isinstance(message["data"], str)
    data = json.loads(message["data"])
    assert data == {"socket_id": client.socket_id, "activity_timeout": 120}
    assert re.fullmatch(r"\d+\.\d+", client.socket_id)


async def test_socket_ids_are_unique(node: Node) -> None:
    ids = {Client.connect(node, APP).socket_id for _ in range(200)}

    assert len(ids) == 200


async def test_a_socket_id_in_use_is_never_handed_out_again(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter([1, 2, 1, 2, 3, 4])
    monkeypatch.setattr(node.registry._ids, "randrange", lambda _: next(draws))

    first = Client.connect(node, APP)
    second = Client.connect(node, APP)

    assert (first.socket_id, second.socket_id) == ("1.2", "3.4")


async def test_disabled_app_is_refused_with_4003(make_node: MakeNode) -> None:
    disabled = dataclasses.replace(APP, enabled=False)
    node = await make_node(disabled)
    outlet = FakeOutlet()

    refused = node.registry.open_session(disabled, outlet)

    assert refused == (ErrorCode.APP_DISABLED, "App is disabled")
    assert refused[0] == 4003
    outlet.assert_nothing_received()
    assert node.registry.sessions == {}


async def test_connections_over_max_connections_are_refused_with_4004(
    make_node: MakeNode,
) -> None:
    small = dataclasses.replace(APP, max_connections=2)
    node = await make_node(small)
    first = Client.connect(node, small)
    Client.connect(node, small)

    refused = node.registry.open_session(small, FakeOutlet())

    assert isinstance(refused, tuple)
    assert refused[0] == ErrorCode.OVER_CONNECTION_QUOTA == 4004
    await first.close()
    assert isinstance(node.registry.open_session(small, FakeOutlet()), Session)


async def test_connection_quota_is_per_app(make_node: MakeNode) -> None:
    one = dataclasses.replace(APP, max_connections=1)
    other = App(id="2", key="other-key", secret="other-secret", max_connections=1)
    node = await make_node(one, other)
    Client.connect(node, one)

    assert isinstance(node.registry.open_session(other, FakeOutlet()), Session)
    assert isinstance(node.registry.open_session(one, FakeOutlet()), tuple)


async def test_closing_a_session_twice_is_harmless(node: Node, connect: Connect) -> None:
    client = connect()
    await client.subscribe("news")

    await client.close()
    await client.close()

    assert node.registry.sessions == {}
    assert node.hub.topics() == 0


async def test_nothing_is_left_behind_once_every_client_closed(
    node: Node, connect: Connect
) -> None:
    clients = [connect() for _ in range(3)]
    for n, client in enumerate(clients):
        await client.signin(f"user{n}", watchlist=["user0", "user1", "nobody"])
        await client.subscribe("news")
        await client.subscribe("private-chat")
        await client.subscribe("presence-room", user_id=f"user{n}")
        await client.subscribe(f"#server-to-user-user{n}")
        await client.trigger("private-chat", "client-hi", {})

    for client in clients:
        await client.close()

    assert node.registry.sessions == {}
    assert node.hub.topics() == 0
    assert await node.presence.channels(APP.id) == {}
    assert await node.presence.members(APP.id, "presence-room") == {}
    assert await node.presence.online(APP.id, ("user0", "user1", "user2")) == set()
    assert isinstance(node.registry.open_session(APP, FakeOutlet()), Session)


async def test_stop_closes_every_connection_with_4200(node: Node, connect: Connect) -> None:
    clients = [connect(), connect()]

    await node.stop()

    assert not node.readiness.ready
    for client in clients:
        client.outlet.assert_closed(ErrorCode.GENERIC_RECONNECT)


async def test_invalid_frames_get_an_error_and_the_connection_stays_open(
    connect: Connect,
) -> None:
    client = connect()

    await client.node.receive(client.session, "not json")

    error = client.outlet.assert_received("pusher:error")
    assert error["data"]["code"] is None
    client.outlet.assert_open()


# --- publishing -----------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["news", "private-orders", "presence-room"])
async def test_publish_reaches_every_subscriber_but_the_excluded_socket(
    node: Node, connect: Connect, channel: str
) -> None:
    members = [{"user_id": f"u{i}"} if channel.startswith("presence-") else {} for i in range(3)]
    subscribers = [await joined(connect, channel, **member) for member in members]
    bystander = connect()
    for client in subscribers:
        client.outlet.clear()  # member_added of the later joiners

    await node.publish(APP, trigger(channel, socket_id=subscribers[0].socket_id))

    subscribers[0].outlet.assert_nothing_received()
    for client in subscribers[1:]:
        message = client.outlet.assert_received("my-event", channel=channel)
        assert message == {"event": "my-event", "channel": channel, "data": '{"n": 1}'}
    bystander.outlet.assert_nothing_received()


async def test_publish_without_socket_id_reaches_everyone(node: Node, connect: Connect) -> None:
    subscribers = [await joined(connect, "news") for _ in range(3)]

    await node.publish(APP, trigger("news"))

    for client in subscribers:
        client.outlet.assert_received("my-event", channel="news", data={"n": 1})


async def test_publish_data_is_relayed_verbatim(node: Node, connect: Connect) -> None:
    client = await joined(connect, "news")
    data = '{ "spaced" :  [1, 2.50, "\\u00e9"] }'

    await node.publish(APP, trigger("news", data=data))

    assert client.outlet.assert_received("my-event")["data"] == data


async def test_publish_to_several_channels_reaches_each_subscription(
    node: Node, connect: Connect
) -> None:
    both = connect()
    await both.subscribe("a")
    await both.subscribe("b")
    both.outlet.clear()
    only_b = await joined(connect, "b")

    await node.publish(APP, trigger("a", "b", "c"))

    assert [m.get("channel") for m in both.outlet.received("my-event")] == ["a", "b"]
    only_b.outlet.assert_received("my-event", channel="b")


async def test_unsubscribed_and_closed_clients_receive_nothing(
    node: Node, connect: Connect
) -> None:
    left = await joined(connect, "news")
    gone = await joined(connect, "news")
    staying = await joined(connect, "news")
    await left.unsubscribe("news")
    await gone.close()

    await node.publish(APP, trigger("news"))

    left.outlet.assert_nothing_received()
    gone.outlet.assert_nothing_received()
    staying.outlet.assert_received("my-event")


async def test_apps_are_isolated(make_node: MakeNode) -> None:
    other = App(id="2", key="other-key", secret="other-secret")
    node = await make_node(APP, other)
    mine = Client.connect(node, APP)
    theirs = Client.connect(node, other)
    await mine.subscribe("news")
    await theirs.subscribe("news")
    theirs.outlet.clear()

    await node.publish(APP, trigger("news"))

    mine.outlet.assert_received("my-event")
    theirs.outlet.assert_nothing_received()


async def test_public_subscription_succeeded_has_empty_object_data(connect: Connect) -> None:
    client = connect()

    await client.subscribe("news")

    message = client.outlet.assert_received("pusher_internal:subscription_succeeded")
    assert message == {
        "event": "pusher_internal:subscription_succeeded",
        "channel": "news",
        "data": "{}",
    }


async def test_private_subscription_with_a_bad_signature_is_refused(
    node: Node, connect: Connect
) -> None:
    client = connect()
    wrong = channel_auth(APP.key, "not-the-secret", client.socket_id, "private-x")

    await client.subscribe("private-x", auth=wrong)
    await node.publish(APP, trigger("private-x"))

    error = client.outlet.assert_received("pusher:subscription_error", channel="private-x")
    assert error["data"]["type"] == "AuthError"
    assert error["data"]["status"] == 401
    client.outlet.assert_not_received("my-event")
    client.outlet.assert_open()


# --- timers ---------------------------------------------------------------------------------


async def test_an_idle_client_is_pinged_and_closed_with_4201_without_a_pong(
    node: Node, connect: Connect, clock: FakeClock
) -> None:
    client = connect()

    clock.advance(119)
    node.registry.poll()
    client.outlet.assert_nothing_received()

    clock.advance(1)
    node.registry.poll()
    client.outlet.assert_received("pusher:ping", data={})

    clock.advance(29)
    node.registry.poll()
    client.outlet.assert_open()

    clock.advance(1)
    node.registry.poll()
    client.outlet.assert_closed(ErrorCode.PONG_NOT_RECEIVED)


async def test_a_pong_keeps_the_connection_open(
    node: Node, connect: Connect, clock: FakeClock
) -> None:
    client = connect()
    clock.advance(120)
    node.registry.poll()
    client.outlet.clear()

    clock.advance(10)
    await client.send({"event": "pusher:pong", "data": {}})
    clock.advance(30)
    node.registry.poll()

    client.outlet.assert_open()
    client.outlet.assert_nothing_received()
    clock.advance(90)
    node.registry.poll()
    client.outlet.assert_received("pusher:ping")


async def test_the_ping_follows_the_apps_activity_timeout(
    make_node: MakeNode, clock: FakeClock
) -> None:
    app = dataclasses.replace(APP, activity_timeout=30)
    node = await make_node(app)
    client = Client.connect(node, app)
    assert decoded_data(client.outlet.messages()[0])["activity_timeout"] == 30
    client.outlet.clear()

    clock.advance(30)
    node.registry.poll()

    client.outlet.assert_received("pusher:ping")


async def test_a_client_ping_is_answered_with_a_pong(connect: Connect) -> None:
    client = connect()

    await client.send({"event": "pusher:ping", "data": {}})

    assert client.outlet.messages() == [{"event": "pusher:pong", "data": "{}"}]


@pytest.fixture
async def user_auth_node(make_node: MakeNode) -> Node:
    return await make_node(dataclasses.replace(APP, enable_user_authentication=True))


USER_AUTH_APP = dataclasses.replace(APP, enable_user_authentication=True)


async def test_unauthenticated_connections_are_closed_with_4009(
    user_auth_node: Node, connect: Connect, clock: FakeClock
) -> None:
    client = connect(USER_AUTH_APP, user_auth_node)

    clock.advance(29)
    user_auth_node.registry.poll()
    client.outlet.assert_open()
    clock.advance(1)
    user_auth_node.registry.poll()

    error = client.outlet.assert_received("pusher:error")
    assert error["data"]["code"] == 4009
    client.outlet.assert_closed(ErrorCode.UNAUTHORIZED)


@pytest.mark.parametrize("authorize", ["signin", "private", "presence"])
async def test_signed_in_or_authorized_connections_stay_open(
    user_auth_node: Node, connect: Connect, clock: FakeClock, authorize: str
) -> None:
    client = connect(USER_AUTH_APP, user_auth_node)
    if authorize == "signin":
        await client.signin("42")
    else:
        await client.subscribe(f"{authorize}-x", user_id="42")

    clock.advance(60)
    user_auth_node.registry.poll()

    client.outlet.assert_open()


async def test_a_public_subscription_does_not_authorize(
    user_auth_node: Node, connect: Connect, clock: FakeClock
) -> None:
    client = connect(USER_AUTH_APP, user_auth_node)
    await client.subscribe("news")

    clock.advance(30)
    user_auth_node.registry.poll()

    client.outlet.assert_closed(ErrorCode.UNAUTHORIZED)


async def test_run_timers_polls_every_session(
    node: Node, connect: Connect, clock: FakeClock
) -> None:
    client = connect()
    clock.advance(120)

    await run_timers_until(node, lambda: bool(client.outlet.frames))

    client.outlet.assert_received("pusher:ping")


async def test_a_failed_timer_sweep_is_logged_and_the_next_one_runs(
    node: Node, connect: Connect, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect()
    clock.advance(120)
    poll = node.registry.poll
    failures = []

    def failing_once() -> None:
        if not failures:
            failures.append(True)
            raise RuntimeError("boom")
        poll()

    node.registry.poll = failing_once  # type: ignore[method-assign]

    await run_timers_until(node, lambda: bool(client.outlet.frames))

    client.outlet.assert_received("pusher:ping")
    assert "event=timer_failed" in caplog.text


# --- slow clients ---------------------------------------------------------------------------


async def test_a_slow_client_is_closed_with_4100_and_the_others_keep_receiving(
    make_node: MakeNode,
) -> None:
    node = await make_node(max_buffer_bytes=1000)
    clients = [Client.connect(node, APP) for _ in range(3)]
    fast1, slow, fast2 = clients
    for client in clients:
        await client.subscribe("news")
        client.outlet.clear()
    slow.outlet.buffered_bytes = 1001

    await node.publish(APP, trigger("news", name="first"))
    await node.publish(APP, trigger("news", name="second"))

    slow.outlet.assert_closed(ErrorCode.OVER_CAPACITY)
    slow.outlet.assert_nothing_received()
    for client in (fast1, fast2):
        assert client.outlet.events() == ["first", "second"]
        client.outlet.assert_open()


async def test_a_client_exactly_at_the_buffer_limit_still_receives(make_node: MakeNode) -> None:
    node = await make_node(max_buffer_bytes=1000)
    client = Client.connect(node, APP)
    await client.subscribe("news")
    client.outlet.clear()
    client.outlet.buffered_bytes = 1000

    await node.publish(APP, trigger("news"))

    client.outlet.assert_received("my-event")
    client.outlet.assert_open()
