"""Our own Python SDK (ressonance.client) against a running node."""

from __future__ import annotations

import asyncio

import pytest

from ressonance.client import (
    ChannelMessage,
    PusherSocket,
    RestClient,
    RestError,
    SubscriptionRefusedError,
    authenticate_user,
    authorize_channel,
)
from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.e2e


async def next_event(sock: PusherSocket, event: str) -> ChannelMessage:
    """The next message named `event`, skipping others (subscription counts, for one)."""
    while True:
        message = await sock.next_message()
        if message.event == event:
            return message


def rest(server: RunningServer, secret: str | None = None) -> RestClient:
    return RestClient(server.app_id, server.key, secret or server.secret, server.http_url)


def socket(server: RunningServer, user: str | None = None) -> PusherSocket:
    async def authorize(socket_id: str, channel: str) -> dict[str, str]:
        presence = {"user_id": user, "user_info": {"name": user}} if user else None
        if not channel.startswith("presence-"):
            presence = None
        return authorize_channel(server.key, server.secret, socket_id, channel, presence=presence)

    async def authenticate(socket_id: str) -> dict[str, str]:
        return authenticate_user(server.key, server.secret, socket_id, {"id": user or "anon"})

    return PusherSocket(
        f"ws://{server.host}:{server.port}",
        server.key,
        authorizer=authorize,
        user_authenticator=authenticate,
    )


async def test_trigger_reaches_public_and_private_subscribers(server: RunningServer) -> None:
    async with socket(server) as alice, rest(server) as api, asyncio.timeout(10):
        await alice.subscribe("orders")
        await alice.subscribe("private-orders")
        await api.trigger(["orders", "private-orders"], "shipped", {"id": 7})
        received = {(await next_event(alice, "shipped")).channel for _ in range(2)}
        assert received == {"orders", "private-orders"}


async def test_presence_roster_and_members(server: RunningServer) -> None:
    async with socket(server, "u1") as one, socket(server, "u2") as two, rest(server) as api:
        async with asyncio.timeout(10):
            await one.subscribe("presence-room")
            joined = await two.subscribe("presence-room")
            assert joined.data == {
                "presence": {
                    "ids": ["u1", "u2"],
                    "hash": {"u1": {"name": "u1"}, "u2": {"name": "u2"}},
                    "count": 2,
                }
            }
            added = await next_event(one, "pusher_internal:member_added")
            assert (added.event, added.data) == (
                "pusher_internal:member_added",
                {"user_id": "u2", "user_info": {"name": "u2"}},
            )
            assert await api.users("presence-room") == ["u1", "u2"]
            info = await api.channels("presence-", info=["user_count"])
            assert info == {"channels": {"presence-room": {"user_count": 2}}}


async def test_client_events_and_signin(server: RunningServer) -> None:
    async with socket(server, "a") as a, socket(server, "b") as b, rest(server) as api:
        async with asyncio.timeout(10):
            await a.subscribe("private-chat")
            await b.subscribe("private-chat")
            await a.trigger("private-chat", "client-typing", {"on": True})
            typed = await next_event(b, "client-typing")
            assert (typed.event, typed.data) == ("client-typing", {"on": True})
            await b.signin()
            success = await next_event(b, "pusher:signin_success")
            assert success.event == "pusher:signin_success"
            await api.send_to_user("b", "note", {"hello": 1})
            note = await next_event(b, "note")
            assert (note.event, note.channel, note.data) == (
                "note",
                "#server-to-user-b",
                {"hello": 1},
            )


async def test_refusals_surface_as_errors(server: RunningServer) -> None:
    async with rest(server, secret="wrong") as bad:
        with pytest.raises(RestError) as refused:
            await bad.trigger("x", "e", "d")
        assert refused.value.status == 401
    lone = PusherSocket(f"ws://{server.host}:{server.port}", server.key, reconnect=False)

    async def forged(socket_id: str, channel: str) -> dict[str, str]:
        return {"auth": f"{server.key}:{'0' * 64}"}

    lone.authorizer = forged
    async with lone, asyncio.timeout(10):
        with pytest.raises(SubscriptionRefusedError, match="AuthError"):
            await lone.subscribe("private-secret")
