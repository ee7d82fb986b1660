"""Users on a node: sign-in, #server-to-user-{id}, the watchlist and terminate (§2.5, §5.5)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ressonance.protocol.errors import ErrorCode
from ressonance.server.node import Node
from tests.fakes import decoded_data
from tests.server.clients import Client, Connect, joined, trigger
from tests.server.conftest import APP, MakeNode

# --- sign-in and server-to-user -------------------------------------------------------------


async def test_signin_success_echoes_the_user_data(connect: Connect) -> None:
    client = connect()

    await client.signin("42", user_info={"name": "Ada"})

    message = client.outlet.assert_received("pusher:signin_success")
    user_data = '{"id": "42", "user_info": {"name": "Ada"}}'
    assert json.loads(message["data"]) == {"user_data": user_data}


async def test_events_for_a_user_reach_every_connection_signed_in_as_that_user(
    node: Node, connect: Connect
) -> None:
    tabs = [connect(), connect()]
    for tab in tabs:
        await tab.signin("42")
        tab.outlet.clear()
    someone_else = connect()
    await someone_else.signin("7")
    anonymous = connect()
    someone_else.outlet.clear()

    await node.publish(APP, trigger("#server-to-user-42", name="notice"))

    for tab in tabs:
        tab.outlet.assert_received("notice", channel="#server-to-user-42", data={"n": 1})
    someone_else.outlet.assert_nothing_received()
    anonymous.outlet.assert_nothing_received()


async def test_a_user_may_subscribe_to_its_own_user_channel(node: Node, connect: Connect) -> None:
    client = connect()
    await client.signin("42")

    await client.subscribe("#server-to-user-42")
    client.outlet.clear()
    await node.publish(APP, trigger("#server-to-user-42", name="notice"))

    client.outlet.assert_received("notice")  # once, though signed in and subscribed


async def test_a_user_channel_keeps_delivering_after_unsubscribe_while_signed_in(
    node: Node, connect: Connect
) -> None:
    client = connect()
    await client.signin("42")
    await client.subscribe("#server-to-user-42")
    await client.unsubscribe("#server-to-user-42")
    client.outlet.clear()

    await node.publish(APP, trigger("#server-to-user-42", name="notice"))

    client.outlet.assert_received("notice")


@pytest.mark.parametrize("signed_in_as", [None, "7"])
async def test_another_users_channel_is_refused(
    node: Node, connect: Connect, signed_in_as: str | None
) -> None:
    client = connect()
    if signed_in_as is not None:
        await client.signin(signed_in_as)

    await client.subscribe("#server-to-user-42")
    await node.publish(APP, trigger("#server-to-user-42", name="notice"))

    error = client.outlet.assert_received("pusher:subscription_error", "#server-to-user-42")
    assert error["data"]["type"] == "AuthError"
    client.outlet.assert_not_received("notice")


async def test_a_closed_connection_no_longer_receives_its_users_events(
    node: Node, connect: Connect
) -> None:
    leaving, staying = connect(), connect()
    for tab in (leaving, staying):
        await tab.signin("42")
        tab.outlet.clear()

    await leaving.close()
    await node.publish(APP, trigger("#server-to-user-42", name="notice"))

    leaving.outlet.assert_nothing_received()
    staying.outlet.assert_received("notice")


# --- watchlist ------------------------------------------------------------------------------


def watchlist_events(client: Client) -> list[list[dict[str, object]]]:
    messages = client.outlet.received("pusher_internal:watchlist_events")
    for message in messages:
        assert "channel" not in message  # routed to pusher.user.watchlist (§2.5)
    return [decoded_data(message)["events"] for message in messages]


async def test_signin_sends_the_initial_watchlist_status(connect: Connect) -> None:
    bob = connect()
    await bob.signin("bob")
    watcher = connect()

    await watcher.signin("alice", watchlist=["carol", "bob", "dave"])

    assert watchlist_events(watcher) == [
        [
            {"name": "online", "user_ids": ["bob"]},
            {"name": "offline", "user_ids": ["carol", "dave"]},
        ]
    ]


async def test_watchlist_with_everyone_online_sends_only_online(connect: Connect) -> None:
    bob = connect()
    await bob.signin("bob")
    watcher = connect()

    await watcher.signin("alice", watchlist=["bob"])

    assert watchlist_events(watcher) == [[{"name": "online", "user_ids": ["bob"]}]]


async def test_watched_user_goes_online_with_the_first_connection_and_offline_with_the_last(
    connect: Connect,
) -> None:
    watcher = connect()
    await watcher.signin("alice", watchlist=["bob"])
    watcher.outlet.clear()
    bob_tab1, bob_tab2 = connect(), connect()

    await bob_tab1.signin("bob")
    assert watchlist_events(watcher) == [[{"name": "online", "user_ids": ["bob"]}]]

    watcher.outlet.clear()
    await bob_tab2.signin("bob")
    await bob_tab1.close()
    watcher.outlet.assert_nothing_received()

    await bob_tab2.close()
    assert watchlist_events(watcher) == [[{"name": "offline", "user_ids": ["bob"]}]]


async def test_watchlist_events_go_only_to_watchers(connect: Connect) -> None:
    watcher = connect()
    await watcher.signin("alice", watchlist=["bob"])
    bystander = connect()
    await bystander.signin("zed", watchlist=["carol"])
    bystander.outlet.clear()

    await connect().signin("bob")

    bystander.outlet.assert_nothing_received()


async def test_watchlist_is_silent_when_the_app_disables_it(make_node: MakeNode) -> None:
    app = dataclasses.replace(APP, watchlist=False)
    node = await make_node(app)
    watcher = Client.connect(node, app)
    await watcher.signin("alice", watchlist=["bob"])
    bob = Client.connect(node, app)
    await bob.signin("bob")
    await bob.close()

    watcher.outlet.assert_not_received("pusher_internal:watchlist_events")
    watcher.outlet.assert_received("pusher:signin_success")


# --- terminate_user -------------------------------------------------------------------------


async def test_terminate_user_closes_only_that_users_signed_in_connections(
    node: Node, connect: Connect
) -> None:
    alice_tabs = [connect(), connect()]
    for tab in alice_tabs:
        await tab.signin("alice")
    bob = connect()
    await bob.signin("bob")
    presence_only = connect()  # "alice" in a presence channel, never signed in (§5.5)
    await presence_only.subscribe("presence-room", user_id="alice")

    await node.users.terminate(APP, "alice")

    for tab in alice_tabs:
        error = tab.outlet.assert_received("pusher:error")
        assert error["data"] == {"code": 4009, "message": "You got disconnected by the app."}
        tab.outlet.assert_closed(ErrorCode.UNAUTHORIZED)
    bob.outlet.assert_open()
    presence_only.outlet.assert_open()


async def test_a_terminated_user_leaves_its_presence_channels(node: Node, connect: Connect) -> None:
    watcher = await joined(connect, "presence-room", user_id="watcher")
    alice = connect()
    await alice.signin("alice")
    await alice.subscribe("presence-room", user_id="alice")
    watcher.outlet.clear()

    await node.users.terminate(APP, "alice")
    await alice.close()  # the transport reports the closed WebSocket

    watcher.outlet.assert_received("pusher_internal:member_removed", data={"user_id": "alice"})


async def test_signing_in_again_on_the_same_connection_is_not_a_new_connection(
    connect: Connect,
) -> None:
    watcher = connect()
    await watcher.signin("alice", watchlist=["bob"])
    bob = connect()
    await bob.signin("bob")
    watcher.outlet.clear()

    await bob.signin("bob")
    await bob.close()

    assert watchlist_events(watcher) == [[{"name": "offline", "user_ids": ["bob"]}]]
