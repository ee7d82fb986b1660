"""The opening policy: what a new WebSocket's client reads when it is let in or refused.

The gate runs over a memory node and a real `WebSocket` on a fake transport (the one the front
door's tests use), so each case reads the frames the client would: pusher:error then a close
with the same code for a refusal, pusher:connection_established for a session.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from ressonance.protocol.app import App
from ressonance.protocol.handshake import Handshake
from ressonance.server.admission import AdmissionLimits
from ressonance.server.deadlines import ticks
from ressonance.server.gate import PATH_NOT_FOUND, Gate, peer_address
from ressonance.server.limits import ConnectionLimits
from ressonance.server.node import Node
from ressonance.server.service import gate, sockets
from ressonance.server.websocket import WebSocket
from tests.fakes import decode_text_frame, split_frames
from tests.server.conftest import APP, MakeNode
from tests.server.test_front_door import FakeTransport

PUSHER_JS = Handshake(APP.key, {"protocol": "7", "client": "js"}, None, ())


def opened(
    node: Node, limits: AdmissionLimits | None = None, connections: ConnectionLimits | None = None
) -> tuple[Gate, WebSocket]:
    policy = gate(node, limits, connections)
    transport = FakeTransport()
    socket = sockets(node, 1 << 16).adopt(transport, b"HTTP/1.1 101 Switching Protocols\r\n\r\n")  # type: ignore[arg-type]
    return policy, socket


def frames(socket: WebSocket) -> list[Any]:
    """What the client read after the 101: text frames decoded, a close as ("close", code)."""
    output = b"".join(socket.transport.writes)  # type: ignore[attr-defined]
    read = []
    for frame in split_frames(output.partition(b"\r\n\r\n")[2]):
        if frame[0] == 0x88:
            read.append(("close", int.from_bytes(frame[2:4], "big")))
        else:
            read.append(decode_text_frame(frame)["event"])
    return read


def refused_with(socket: WebSocket, code: int, message: str) -> None:
    output = b"".join(socket.transport.writes)  # type: ignore[attr-defined]
    error, close = split_frames(output.partition(b"\r\n\r\n")[2])
    assert decode_text_frame(error) == {
        "event": "pusher:error",
        "data": {"code": code, "message": message},
    }
    assert int.from_bytes(close[2:4], "big") == code


async def test_a_pusher_js_client_gets_a_session(node: Node) -> None:
    gate, socket = opened(node)
    await gate.open(socket, PUSHER_JS)
    assert frames(socket) == ["pusher:connection_established"]
    assert len(node.registry.sessions) == 1
    (write,) = socket.transport.writes  # type: ignore[attr-defined]
    assert write.startswith(b"HTTP/1.1 101")  # the 101 and the first frame in one write


@pytest.mark.parametrize(
    ("handshake", "code", "message"),
    [
        (dataclasses.replace(PUSHER_JS, query={}), 4008, "No protocol version supplied"),
        (
            dataclasses.replace(PUSHER_JS, query={"protocol": "x"}),
            4006,
            "Invalid version string format: x",
        ),
        (dataclasses.replace(PUSHER_JS, key="nope"), 4001, "App key does not exist"),
    ],
)
async def test_a_bad_handshake_is_refused_and_counted(
    node: Node, handshake: Handshake, code: int, message: str
) -> None:
    gate, socket = opened(node)
    await gate.open(socket, handshake)
    refused_with(socket, code, message)
    assert node.metrics.refused == {str(code): 1}
    assert not node.registry.sessions


async def test_an_origin_the_app_does_not_allow_is_refused(make_node: MakeNode) -> None:
    node = await make_node(dataclasses.replace(APP, allowed_origins=("app.example.com",)))
    gate, socket = opened(node)
    await gate.open(socket, dataclasses.replace(PUSHER_JS, origin="https://evil.example"))
    refused_with(socket, 4009, "Origin not allowed")


async def test_admission_refuses_a_saturated_node(node: Node) -> None:
    gate, socket = opened(node, AdmissionLimits(max_node_connections=0))
    await gate.open(socket, PUSHER_JS)
    assert frames(socket) == ["pusher:error", ("close", 4100)]
    assert node.metrics.throttled == {"max_node_connections": 1}


async def test_the_node_refuses_a_disabled_app(make_node: MakeNode) -> None:
    node = await make_node(dataclasses.replace(APP, enabled=False))
    gate, socket = opened(node)
    await gate.open(socket, PUSHER_JS)
    refused_with(socket, 4003, "App is disabled")


async def test_a_socket_over_before_the_lookup_ends_gets_no_session(node: Node) -> None:
    gate, socket = opened(node)
    socket.connection_lost(None)
    await gate.open(socket, PUSHER_JS)
    assert not node.registry.sessions


async def test_a_failure_while_opening_closes_with_1011(
    node: Node, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(key: str) -> App | None:
        raise RuntimeError("bug")

    monkeypatch.setattr(node.apps, "find_by_key", broken)
    gate, socket = opened(node)
    await gate.open(socket, PUSHER_JS)
    assert frames(socket) == [("close", 1011)]
    assert "event=open_failed" in caplog.text


async def test_a_refusal_from_elsewhere_is_counted_the_same_way(node: Node) -> None:
    gate, socket = opened(node)
    gate.refuse(socket, PATH_NOT_FOUND)
    socket.uncork()
    refused_with(socket, 4005, "Path not found; use /app/{key}")
    assert node.metrics.refused == {"4005": 1}


async def test_a_socket_not_opened_within_the_upgrade_timeout_is_refused_4100(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = asyncio.Event()
    find_by_key = node.apps.find_by_key

    async def slow(key: str) -> App | None:
        await stalled.wait()  # a stalled app store or shared state
        return await find_by_key(key)

    monkeypatch.setattr(node.apps, "find_by_key", slow)
    gate, socket = opened(node, connections=ConnectionLimits(upgrade_timeout=2))
    opening = asyncio.create_task(gate.open(socket, PUSHER_JS))
    await asyncio.sleep(0)
    for _ in range(ticks(2) - 1):
        gate.sweep()
    assert socket.transport.writes == []  # type: ignore[attr-defined]  # still corked
    gate.sweep()
    refused_with(socket, 4100, "Server over capacity: connection not opened in time")
    assert node.metrics.dropped == {"upgrade_timeout": 1}
    stalled.set()
    await opening  # the lookup ends: no session, and no second refusal
    assert not node.registry.sessions
    assert node.metrics.refused == {"4100": 1}


async def test_an_opened_socket_is_no_longer_timed(node: Node) -> None:
    gate, socket = opened(node, connections=ConnectionLimits(upgrade_timeout=1))
    await gate.open(socket, PUSHER_JS)
    for _ in range(ticks(1) + 1):
        gate.sweep()
    assert frames(socket) == ["pusher:connection_established"]
    assert not node.metrics.dropped


class Extra:
    def __init__(self, peername: Any) -> None:
        self.peername = peername

    def get_extra_info(self, name: str) -> Any:
        return self.peername if name == "peername" else None


@pytest.mark.parametrize(
    ("peername", "address"),
    [
        (("203.0.113.9", 50000), "203.0.113.9"),
        (["::1", 6001, 0, 0], "::1"),
        ("/run/ressonance.sock", "/run/ressonance.sock"),
        (None, None),
    ],
)
def test_the_peer_address_is_read_as_aiohttp_reads_it(peername: Any, address: str | None) -> None:
    assert peer_address(Extra(peername)) == address  # type: ignore[arg-type]
