"""The unmodified PyPI `pusher` SDK against a running node (reference §4 and §5).

Every test drives the SDK exactly as an app back-end would, and checks what the app and
its WebSocket subscribers (raw aiohttp clients speaking the pusher-js wire protocol) see.
The SDK is synchronous (requests), so its calls run in a thread to keep the event loop
reading the sockets.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiohttp
import nacl.secret
import pusher
import pusher.errors
import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.pusher_ws import PusherSocket, connect, data_of

pytestmark = pytest.mark.e2e

T = TypeVar("T")

MASTER_KEY_B64 = base64.b64encode(bytes(range(32))).decode()


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking SDK call in a thread, bounded in time."""
    async with asyncio.timeout(10):
        return await asyncio.to_thread(function, *args, **kwargs)


def sdk(server: RunningServer, **options: Any) -> pusher.Pusher:
    settings: dict[str, Any] = {
        "app_id": server.app_id,
        "key": server.key,
        "secret": server.secret,
        "host": server.host,
        "port": server.port,
        "ssl": False,
        **options,
    }
    return pusher.Pusher(**settings)


@pytest.fixture
def client(server: RunningServer) -> pusher.Pusher:
    return sdk(server)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def authorized_subscribe(
    client: pusher.Pusher,
    socket: PusherSocket,
    channel: str,
    custom_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Subscribe with the token the SDK's authenticate() returns, as pusher-js would."""
    token = client.authenticate(channel, socket.socket_id, custom_data)
    succeeded = await socket.subscribe(channel, token["auth"], token.get("channel_data"))
    return {"token": token, "succeeded": succeeded}


async def sign_in(client: pusher.Pusher, socket: PusherSocket, user: dict[str, Any]) -> None:
    """pusher:signin with the SDK's authenticate_user() response."""
    token = client.authenticate_user(socket.socket_id, user)
    await socket.send("pusher:signin", {"auth": token["auth"], "user_data": token["user_data"]})
    success = await socket.expect("pusher:signin_success")
    assert data_of(success) == {"user_data": token["user_data"]}


# --- trigger -------------------------------------------------------------------------------


async def test_trigger_reaches_the_subscriber_with_data_as_the_sdk_encoded_it(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as socket:
        await socket.subscribe("orders")
        response = await call(client.trigger, "orders", "order-shipped", {"id": 7, "by": "João"})
        assert response == {}
        message = await socket.expect("order-shipped", "orders")
        # The SDK JSON-encodes objects; the server relays that string unchanged (§2.3).
        assert message["data"] == json.dumps({"id": 7, "by": "João"}, ensure_ascii=False)


async def test_trigger_to_several_channels_reaches_each_once(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    channels = ["news", "private-news", "presence-news"]
    async with connect(http, server) as a, connect(http, server) as b, connect(http, server) as c:
        await a.subscribe("news")
        await authorized_subscribe(client, b, "private-news")
        await authorized_subscribe(client, c, "presence-news", {"user_id": "1"})
        assert await call(client.trigger, channels, "headline", "extra!") == {}
        assert await call(client.trigger, channels, "marker", "") == {}
        for socket, channel in ((a, "news"), (b, "private-news"), (c, "presence-news")):
            message = await socket.expect("headline", channel)
            assert message["data"] == "extra!"
            await socket.expect("marker", channel)


async def test_trigger_with_socket_id_excludes_only_that_connection(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as sender, connect(http, server) as other:
        await sender.subscribe("room")
        await other.subscribe("room")
        await call(client.trigger, "room", "said", "hello", sender.socket_id)
        await call(client.trigger, ["room", "lobby"], "said-twice", "hi", sender.socket_id)
        await call(client.trigger, "room", "marker", "")
        assert (await other.expect("said", "room"))["data"] == "hello"
        assert (await other.expect("said-twice", "room"))["data"] == "hi"
        await other.expect("marker", "room")
        # The excluded connection's next event is the marker: it got neither of the others.
        await sender.expect("marker", "room")


# --- trigger_batch -------------------------------------------------------------------------


async def test_trigger_batch_without_info_delivers_every_event_in_order(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as socket:
        await socket.subscribe("batch-a")
        await socket.subscribe("batch-b")
        batch = [
            {"channel": "batch-a", "name": "first", "data": {"n": 1}},
            {"channel": "batch-b", "name": "second", "data": "two"},
            {"channel": "batch-a", "name": "third", "data": "3"},
        ]
        assert await call(client.trigger_batch, batch) == {}
        assert data_of(await socket.expect("first", "batch-a")) == {"n": 1}
        assert (await socket.expect("second", "batch-b"))["data"] == "two"
        assert (await socket.expect("third", "batch-a"))["data"] == "3"


async def test_trigger_batch_with_info_returns_attributes_in_batch_order(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as a, connect(http, server) as b, connect(http, server) as c:
        await a.subscribe("counted")
        await b.subscribe("counted")
        await authorized_subscribe(client, c, "presence-counted", {"user_id": "9"})
        batch = [
            {"channel": "counted", "name": "e1", "data": "x", "info": "subscription_count"},
            {"channel": "presence-counted", "name": "e2", "data": "y", "info": "user_count"},
            {"channel": "empty-channel", "name": "e3", "data": "z"},
        ]
        response = await call(client.trigger_batch, batch)
        assert response == {
            "batch": [{"subscription_count": 2}, {"user_count": 1}, {}],
        }
        await a.expect("e1", "counted")
        await c.expect("e2", "presence-counted")


# --- channels_info / channel_info / users_info ---------------------------------------------


async def test_channels_info_lists_occupied_channels_by_prefix(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as socket:
        for channel in ("sdk-one", "sdk-two", "other"):
            await socket.subscribe(channel)
        assert await call(client.channels_info, "sdk-") == {
            "channels": {"sdk-one": {}, "sdk-two": {}}
        }
        everything = await call(client.channels_info)
        assert everything == {"channels": {"sdk-one": {}, "sdk-two": {}, "other": {}}}
        await socket.send("pusher:unsubscribe", {"channel": "sdk-two"})
        await socket.ping()  # the unsubscribe has been handled
        assert await call(client.channels_info, "sdk-") == {"channels": {"sdk-one": {}}}


async def test_channels_info_user_count_on_presence_prefix_counts_unique_users(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with (
        connect(http, server) as ann_tab1,
        connect(http, server) as ann_tab2,
        connect(http, server) as bob,
    ):
        await authorized_subscribe(client, ann_tab1, "presence-room", {"user_id": "ann"})
        await authorized_subscribe(client, ann_tab2, "presence-room", {"user_id": "ann"})
        await authorized_subscribe(client, bob, "presence-hall", {"user_id": "bob"})
        await bob.subscribe("public-room")
        response = await call(client.channels_info, "presence-", ["user_count"])
        assert response == {
            "channels": {"presence-room": {"user_count": 1}, "presence-hall": {"user_count": 1}}
        }


async def test_channel_info_reports_occupied_and_subscription_count(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    assert await call(client.channel_info, "lonely", ["subscription_count"]) == {
        "occupied": False,
        "subscription_count": 0,
    }
    async with connect(http, server) as a, connect(http, server) as b:
        await a.subscribe("lonely")
        await b.subscribe("lonely")
        assert await call(client.channel_info, "lonely", ["subscription_count"]) == {
            "occupied": True,
            "subscription_count": 2,
        }
        assert await call(client.channel_info, "lonely") == {"occupied": True}


async def test_channel_info_user_count_on_presence_channel(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as a, connect(http, server) as b, connect(http, server) as c:
        await authorized_subscribe(client, a, "presence-team", {"user_id": "1"})
        await authorized_subscribe(client, b, "presence-team", {"user_id": "2"})
        await authorized_subscribe(client, c, "presence-team", {"user_id": "2"})
        assert await call(client.channel_info, "presence-team", ["user_count"]) == {
            "occupied": True,
            "user_count": 2,
        }


async def test_channel_info_cache_on_a_cache_channel(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    assert await call(client.channel_info, "cache-prices", ["cache"]) == {
        "occupied": False,
        "cache": None,
    }
    await call(client.trigger, "cache-prices", "price", {"eur": 10})
    info = await call(client.channel_info, "cache-prices", ["cache"])
    assert info["occupied"] is False
    assert info["cache"]["data"] == '{"eur": 10}'
    assert 0 < info["cache"]["ttl"] <= 1800
    async with connect(http, server) as socket:
        await socket.subscribe("cache-prices")
        # A late subscriber gets the cached event right after subscribing (§2.2).
        assert (await socket.expect("price", "cache-prices"))["data"] == '{"eur": 10}'


async def test_users_info_lists_each_presence_user_once(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as a, connect(http, server) as b, connect(http, server) as c:
        await authorized_subscribe(client, a, "presence-lobby", {"user_id": "alice"})
        await authorized_subscribe(client, b, "presence-lobby", {"user_id": "bob"})
        await authorized_subscribe(client, c, "presence-lobby", {"user_id": "bob"})
        response = await call(client.users_info, "presence-lobby")
        assert sorted(response["users"], key=lambda u: u["id"]) == [
            {"id": "alice"},
            {"id": "bob"},
        ]
        assert set(response) == {"users"}


# --- users: send_to_user and terminate_user_connections ------------------------------------


async def test_send_to_user_reaches_every_connection_signed_in_as_that_user(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with (
        connect(http, server) as tab1,
        connect(http, server) as tab2,
        connect(http, server) as someone_else,
        connect(http, server) as anonymous,
    ):
        await sign_in(client, tab1, {"id": "42", "user_info": {"name": "Ana"}})
        await sign_in(client, tab2, {"id": "42"})
        await sign_in(client, someone_else, {"id": "43"})
        assert await call(client.send_to_user, "42", "notice", {"text": "olá"}) == {}
        for tab in (tab1, tab2):
            message = await tab.expect("notice", "#server-to-user-42")
            assert data_of(message) == {"text": "olá"}
        # The others' next event is the one meant for them: they never saw user 42's.
        await call(client.send_to_user, "43", "marker", "")
        await someone_else.expect("marker", "#server-to-user-43")
        await anonymous.ping()


async def test_terminate_user_connections_closes_signed_in_connections_with_4009(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with (
        connect(http, server) as signed_in,
        connect(http, server) as presence_only,
        connect(http, server) as bystander,
    ):
        await sign_in(client, signed_in, {"id": "42"})
        await authorized_subscribe(client, presence_only, "presence-club", {"user_id": "42"})
        await presence_only.subscribe("club-news")
        await bystander.subscribe("club-news")
        assert await call(client.terminate_user_connections, "42") == {}
        error = await signed_in.expect("pusher:error")
        assert error["data"]["code"] == 4009
        assert error["data"]["message"]
        await signed_in.expect_closed(4009)
        # A connection that is user 42 only as a presence member is not signed in: it stays.
        await presence_only.ping()
        await call(client.trigger, "club-news", "still-here", "yes")
        assert (await presence_only.expect("still-here", "club-news"))["data"] == "yes"
        assert (await bystander.expect("still-here", "club-news"))["data"] == "yes"


# --- authenticate ----------------------------------------------------------------------------


async def test_authenticate_token_for_a_private_channel_is_accepted(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as socket, connect(http, server) as other:
        result = await authorized_subscribe(client, socket, "private-orders")
        assert result["succeeded"]["data"] == "{}"
        # The token is bound to its socket: another connection cannot reuse it.
        await other.send(
            "pusher:subscribe", {"auth": result["token"]["auth"], "channel": "private-orders"}
        )
        refusal = await other.expect("pusher:subscription_error", "private-orders")
        assert refusal["data"]["type"] == "AuthError"
        assert refusal["data"]["status"] == 401


async def test_authenticate_token_for_a_presence_channel_gives_the_roster(
    server: RunningServer, client: pusher.Pusher, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as first, connect(http, server) as second:
        joined = await authorized_subscribe(
            client, first, "presence-chat", {"user_id": "7", "user_info": {"name": "Ana"}}
        )
        assert data_of(joined["succeeded"]) == {
            "presence": {"ids": ["7"], "hash": {"7": {"name": "Ana"}}, "count": 1}
        }
        # The numeric user_id of the docs' example is accepted and stringified (§4).
        joined = await authorized_subscribe(
            client, second, "presence-chat", {"user_id": 9, "user_info": {"name": "Bo"}}
        )
        presence = data_of(joined["succeeded"])["presence"]
        assert sorted(presence["ids"]) == ["7", "9"]
        assert presence["hash"] == {"7": {"name": "Ana"}, "9": {"name": "Bo"}}
        assert presence["count"] == 2
        added = await first.expect("pusher_internal:member_added", "presence-chat")
        assert data_of(added) == {"user_id": "9", "user_info": {"name": "Bo"}}


async def test_encrypted_channel_payload_round_trips_through_the_server(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    client = sdk(server, encryption_master_key_base64=MASTER_KEY_B64)
    channel = "private-encrypted-x"
    async with connect(http, server) as socket:
        result = await authorized_subscribe(client, socket, channel)
        shared_secret = base64.b64decode(result["token"]["shared_secret"])
        assert await call(client.trigger, channel, "secret", {"msg": "só para ti"}) == {}
        message = await socket.expect("secret", channel)
    payload = json.loads(message["data"])
    assert set(payload) == {"nonce", "ciphertext"}
    # Relayed byte for byte: still the SDK's own json.dumps formatting, not re-serialized.
    assert message["data"] == json.dumps(payload, ensure_ascii=False)
    nonce = base64.b64decode(payload["nonce"])
    assert len(nonce) == nacl.secret.SecretBox.NONCE_SIZE
    box = nacl.secret.SecretBox(shared_secret)
    plaintext = box.decrypt(base64.b64decode(payload["ciphertext"]), nonce)
    assert json.loads(plaintext) == {"msg": "só para ti"}


# --- errors as the SDK surfaces them ---------------------------------------------------------


async def test_wrong_secret_raises_the_sdk_auth_error(server: RunningServer) -> None:
    wrong = sdk(server, secret="not-the-secret")
    with pytest.raises(pusher.errors.PusherBadAuth) as raised:
        await call(wrong.trigger, "orders", "x", "y")
    body = json.loads(str(raised.value))
    assert body["code"] == 401
    assert "signature" in body["error"].lower()


async def test_unknown_app_id_is_a_404(server: RunningServer) -> None:
    unknown = sdk(server, app_id="999999")
    with pytest.raises(pusher.errors.PusherBadStatus) as raised:
        await call(unknown.trigger, "orders", "x", "y")
    status, _, body = str(raised.value).partition(": ")
    assert status == "404"
    assert json.loads(body) == {"error": "Unknown app id 999999", "code": 404}
