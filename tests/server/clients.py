"""A test client: one session of a node, driven with the frames pusher-js would send.

It signs what an app back-end would sign (channel auth, user auth) with the app's secret,
so tests read as a user's story: connect, subscribe, sign in, trigger, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

from ressonance.protocol.app import App
from ressonance.protocol.channels import classify
from ressonance.protocol.rest import Trigger
from ressonance.protocol.signing import channel_auth, user_auth
from ressonance.server.node import Node
from ressonance.server.session import Session
from tests.fakes import FakeOutlet, decoded_data


class Client:
    """A connected WebSocket client of `node` for `app`."""

    def __init__(self, node: Node, app: App, session: Session, outlet: FakeOutlet) -> None:
        self.node = node
        self.app = app
        self.session = session
        self.outlet = outlet

    @classmethod
    def connect(cls, node: Node, app: App) -> Client:
        outlet = FakeOutlet(settle=node.fanout.flush)
        opened = node.registry.open_session(app, outlet)
        assert isinstance(opened, Session), f"connection refused: {opened}"
        return cls(node, app, opened, outlet)

    @property
    def socket_id(self) -> str:
        return self.session.socket_id

    async def send(self, message: dict[str, Any]) -> None:
        await self.node.receive(self.session, json.dumps(message))

    async def subscribe(
        self,
        channel: str,
        *,
        user_id: str | None = None,
        user_info: Any = None,
        auth: str | None = None,
    ) -> None:
        """Subscribe as pusher-js would, with the auth the app back-end would return."""
        data: dict[str, Any] = {"channel": channel, "auth": ""}
        if classify(channel).needs_auth:
            channel_data = ""
            if user_id is not None:
                member: dict[str, Any] = {"user_id": user_id}
                if user_info is not None:
                    member["user_info"] = user_info
                channel_data = json.dumps(member)
                data["channel_data"] = channel_data
            data["auth"] = channel_auth(
                self.app.key, self.app.secret, self.socket_id, channel, channel_data
            )
        if auth is not None:
            data["auth"] = auth
        await self.send({"event": "pusher:subscribe", "data": data})

    async def unsubscribe(self, channel: str) -> None:
        await self.send({"event": "pusher:unsubscribe", "data": {"channel": channel}})

    async def signin(
        self, user_id: str, *, watchlist: list[str] | None = None, user_info: Any = None
    ) -> None:
        user: dict[str, Any] = {"id": user_id}
        if user_info is not None:
            user["user_info"] = user_info
        if watchlist is not None:
            user["watchlist"] = watchlist
        user_data = json.dumps(user)
        auth = user_auth(self.app.key, self.app.secret, self.socket_id, user_data)
        await self.send({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})

    async def trigger(self, channel: str, event: str, data: Any) -> None:
        """A client event (pusher-js `channel.trigger`, Echo `whisper`)."""
        await self.send({"event": event, "channel": channel, "data": data})

    async def close(self) -> None:
        """The WebSocket went away (the transport calls close_session)."""
        await self.node.registry.close_session(self.session)


Connect = Callable[..., Client]


def trigger(
    *channels: str, name: str = "my-event", data: str = '{"n": 1}', socket_id: str | None = None
) -> Trigger:
    """What the HTTP API hands the node for POST /events."""
    return Trigger(name, data, channels, socket_id, frozenset())


def subscribed(client: Client, channel: str) -> dict[str, Any]:
    """Assert `client` got subscription_succeeded on `channel`; return its decoded data."""
    message = client.outlet.assert_received(
        "pusher_internal:subscription_succeeded", channel=channel
    )
    assert isinstance(message["data"], str), "server->client data must be a JSON string (§0.1)"
    data = decoded_data(message)
    assert isinstance(data, dict)
    return data


async def joined(connect: Connect, channel: str, **member: Any) -> Client:
    """A client subscribed to `channel` (as presence member `user_id` when given), cleared."""
    client = connect()
    await client.subscribe(channel, **member)
    subscribed(client, channel)
    client.outlet.clear()
    return client


def after_turns(turns: int) -> Callable[[], bool]:
    """A `done` for run_timers_until: true once the loop had `turns` turns (several sweeps)."""
    taken = itertools.count(1)
    return lambda: next(taken) >= turns


async def run_timers_until(node: Node, done: Callable[[], bool]) -> None:
    """Run the node's timer loop (no delay between sweeps) until `done()`; then stop it."""
    timers = asyncio.create_task(node.run_timers(0))
    try:
        for _ in range(1000):
            await asyncio.sleep(0)
            if done():
                return
        raise AssertionError("the timer loop never got there")
    finally:
        timers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timers
