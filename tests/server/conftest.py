"""Nodes over memory stores with a fake clock, and clients that drive them through fake outlets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from ressonance.protocol.app import App
from ressonance.server.node import Node
from ressonance.server.service import memory_node
from tests.fakes import FakeClock
from tests.server.clients import Client, Connect

APP = App(
    id="1",
    key="app-key",
    secret="app-secret",
    name="test",
    enable_client_messages=True,
    watchlist=True,
)

MakeNode = Callable[..., Awaitable[Node]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_node(clock: FakeClock) -> MakeNode:
    """`await make_node(app, ...)`: a started node serving those apps (APP when none)."""

    async def make(
        *apps: App, max_buffer_bytes: int = 1 << 20, max_buffer_messages: int = 4096
    ) -> Node:
        node = memory_node(
            apps or (APP,),
            clock=clock,
            max_buffer_bytes=max_buffer_bytes,
            max_buffer_messages=max_buffer_messages,
        )
        await node.start()
        return node

    return make


@pytest.fixture
async def node(make_node: MakeNode) -> Node:
    return await make_node()


@pytest.fixture
def connect(node: Node) -> Connect:
    """`connect(app=APP)`: a client past pusher:connection_established, its outlet cleared."""

    def open_client(app: App = APP, target: Node | None = None) -> Client:
        client = Client.connect(target or node, app)
        client.outlet.assert_received("pusher:connection_established")
        client.outlet.clear()
        return client

    return open_client
