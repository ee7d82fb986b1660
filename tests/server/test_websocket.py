"""One WebSocket under hostile traffic: the read budget, every frame rated, coalesced pongs.

A fake transport records what the server writes and whether it reads; the socket runs over a
memory node with a fake clock, so the inbound rate is exact. Frames go in as a client would
send them, many in one read; what comes out is decoded as a client would read it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from ressonance.protocol.app import App
from ressonance.server.node import Node
from ressonance.server.service import sockets
from ressonance.server.websocket import (
    FRAMES_PER_TURN,
    MAX_EARLY_FRAMES,
    MAX_INBOX,
    WebSocket,
)
from tests.fakes import split_frames
from tests.frames import BINARY, CLOSE, PING, PONG, TEXT, client_frame
from tests.server.conftest import APP, MakeNode

UNLIMITED = App(
    id="2", key="unlimited-key", secret="s", name="unlimited", max_inbound_messages_per_sec=10**9
)
STRICT = App(
    id="3",
    key="strict-key",
    secret="s",
    name="strict",
    max_inbound_messages_per_sec=5,
    max_channels_per_connection=3,  # a burst of 8 frames
)
FLOOD_WARNING = {
    "code": 4301,
    "message": "Rate limit exceeded: more than 5 messages per second "
    "(max_inbound_messages_per_sec); messages are being dropped",
}
FLOOD_CLOSE = (4100, "Too many messages per second (max_inbound_messages_per_sec = 5)")


class FakeTransport:
    """The transport calls a WebSocket makes, recorded; `unread` is what the client left."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.reading = True
        self.closed = False
        self.unread = 0

    def write(self, data: bytes) -> None:
        assert not self.closed, "wrote after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def set_protocol(self, protocol: Any) -> None:
        pass

    def pause_reading(self) -> None:
        assert self.reading, "paused twice"
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading, "resumed while reading"
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return self.unread

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def pings(count: int, first: int = 0) -> bytes:
    return b"".join(client_frame(PING, str(first + n).encode()) for n in range(count))


def text(event: str, data: object = None) -> bytes:
    return client_frame(TEXT, json.dumps({"event": event, "data": data or {}}).encode())


@dataclass
class Peer:
    """A client on one socket: what it sends, and what it would read."""

    socket: WebSocket
    transport: FakeTransport

    def send(self, *frames: bytes) -> None:
        self.socket.data_received(b"".join(frames))

    def frames(self) -> list[tuple[int, bytes]]:
        out = []
        for frame in split_frames(b"".join(self.transport.writes)):
            opcode, length = frame[0] & 0x0F, frame[1] & 0x7F
            out.append((opcode, frame[2 if length < 126 else 4 :]))
        return out

    def pongs(self) -> list[bytes]:
        return [payload for opcode, payload in self.frames() if opcode == PONG]

    def messages(self) -> list[dict[str, Any]]:
        found = [json.loads(p) for opcode, p in self.frames() if opcode == TEXT]
        return [m for m in found if m["event"] != "pusher:connection_established"]

    def close(self) -> tuple[int, str] | None:
        closes = [payload for opcode, payload in self.frames() if opcode == CLOSE]
        assert len(closes) <= 1
        if not closes:
            return None
        return int.from_bytes(closes[0][:2], "big"), closes[0][2:].decode()


def adopt(node: Node) -> Peer:
    transport = FakeTransport()
    socket = sockets(node, 1 << 16).adopt(transport)  # type: ignore[arg-type]
    return Peer(socket, transport)


def open_peer(node: Node, app: App = APP) -> Peer:
    peer = adopt(node)
    session = node.registry.open_session(app, peer.socket)
    assert not isinstance(session, tuple)
    peer.socket.start(session)
    return peer


async def turns(count: int = 20) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_the_pings_of_one_read_get_one_pong_for_the_latest(make_node: MakeNode) -> None:
    peer = open_peer(await make_node())

    peer.send(pings(5))

    assert peer.pongs() == [b"4"]  # RFC 6455 §5.5.3: the most recent ping may stand for all
    assert peer.transport.reading


async def test_one_read_parses_a_bounded_number_of_frames_and_the_rest_later(
    make_node: MakeNode,
) -> None:
    peer = open_peer(await make_node(UNLIMITED), UNLIMITED)

    peer.send(pings(1000))

    assert peer.pongs() == [str(FRAMES_PER_TURN - 1).encode()]
    assert not peer.transport.reading  # the rest waits: nothing more is read meanwhile
    await asyncio.sleep(0)
    assert peer.pongs()[-1] == str(2 * FRAMES_PER_TURN - 1).encode()  # one budget a turn
    await turns()
    assert len(peer.pongs()) == -(-1000 // FRAMES_PER_TURN)
    assert peer.pongs()[-1] == b"999"
    assert peer.transport.reading


async def test_a_ping_flood_is_warned_once_then_closed_with_4100(make_node: MakeNode) -> None:
    peer = open_peer(await make_node(STRICT), STRICT)

    peer.send(pings(8))  # the burst
    peer.send(pings(3))  # over it: dropped, unanswered, one warning
    assert peer.pongs() == [b"7"]
    assert peer.messages() == [{"event": "pusher:error", "data": FLOOD_WARNING}]
    assert peer.close() is None

    peer.send(pings(3))  # six dropped in this flood: closed

    assert peer.close() == FLOOD_CLOSE
    peer.send(pings(100))
    assert peer.pongs() == [b"7"]  # nothing is answered after the close
    assert len(peer.messages()) == 1


async def test_a_flood_in_one_read_is_closed_in_that_read(make_node: MakeNode) -> None:
    peer = open_peer(await make_node(STRICT), STRICT)

    peer.send(pings(1000))

    assert peer.messages() == [{"event": "pusher:error", "data": FLOOD_WARNING}]
    assert peer.close() == FLOOD_CLOSE
    assert peer.pongs() == []


async def test_pongs_from_the_client_take_inbound_tokens(make_node: MakeNode) -> None:
    peer = open_peer(await make_node(STRICT), STRICT)
    peer.send(*[client_frame(PONG)] * 8)  # the whole burst, and no answer to any of them

    peer.send(text("pusher:ping"))
    await turns()

    assert peer.messages() == [{"event": "pusher:error", "data": FLOOD_WARNING}]


async def test_each_fragment_takes_an_inbound_token(make_node: MakeNode) -> None:
    peer = open_peer(await make_node(STRICT), STRICT)
    message = json.dumps({"event": "pusher:ping", "data": {}}).encode()
    fragments = [message[:2], *(message[n : n + 1] for n in range(2, 8)), message[8:]]
    wire = [client_frame(TEXT, fragments[0], fin=False)]
    wire += [client_frame(0, part, fin=False) for part in fragments[1:-1]]
    wire.append(client_frame(0, fragments[-1]))

    peer.send(*wire)  # eight frames, one message: seven fragments and the final frame
    await turns()
    assert peer.messages() == [{"event": "pusher:pong", "data": "{}"}]

    peer.send(client_frame(PING))
    assert peer.messages()[-1] == {"event": "pusher:error", "data": FLOOD_WARNING}


async def test_binary_messages_are_answered_each_within_the_rate(make_node: MakeNode) -> None:
    peer = open_peer(await make_node(STRICT), STRICT)
    refused = {
        "event": "pusher:error",
        "data": {"code": None, "message": "Binary frames are not supported; send JSON text"},
    }

    peer.send(*[client_frame(BINARY, b"\x00")] * 3)
    assert peer.messages() == [refused] * 3

    peer.send(*[client_frame(BINARY, b"\x00")] * 6)  # five within the burst, one over
    assert peer.messages() == [refused] * 3 + [{"event": "pusher:error", "data": FLOOD_WARNING}]


async def test_a_client_that_does_not_read_gets_no_more_pongs(make_node: MakeNode) -> None:
    peer = open_peer(await make_node())
    peer.transport.unread = (1 << 20) + 1  # over the outbound byte limit (max_buffer_kb)

    peer.send(pings(3))
    assert peer.pongs() == []

    peer.transport.unread = 0
    peer.send(pings(1))
    assert peer.pongs() == [b"0"]


async def test_text_messages_wait_at_most_max_inbox_at_once(make_node: MakeNode) -> None:
    peer = open_peer(await make_node(UNLIMITED), UNLIMITED)

    peer.send(*[text("pusher:ping")] * 200)

    assert not peer.transport.reading
    assert peer.socket._inbox is not None
    assert len(peer.socket._inbox) == MAX_INBOX
    await turns(400)
    assert peer.messages() == [{"event": "pusher:pong", "data": "{}"}] * 200
    assert peer.transport.reading


async def test_frames_before_the_session_opens_are_bounded_then_charged(
    make_node: MakeNode,
) -> None:
    node = await make_node(STRICT)
    peer = adopt(node)

    peer.send(pings(100))
    await turns()

    assert peer.pongs() == [str(MAX_EARLY_FRAMES - 1).encode()]  # the rest waits unread
    assert not peer.transport.reading
    session = node.registry.open_session(STRICT, peer.socket)
    assert not isinstance(session, tuple)
    peer.socket.start(session)  # 64 frames on a burst of 8: a flood

    assert peer.messages() == [{"event": "pusher:error", "data": FLOOD_WARNING}]
    assert peer.close() == FLOOD_CLOSE


async def test_frames_before_the_session_opens_are_read_on_once_it_does(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    peer = adopt(node)
    peer.send(pings(100))

    session = node.registry.open_session(APP, peer.socket)
    assert not isinstance(session, tuple)
    peer.socket.start(session)
    await turns()

    assert peer.pongs() == [b"63", b"99"]
    assert peer.transport.reading


async def test_nothing_is_parsed_once_the_connection_is_lost(make_node: MakeNode) -> None:
    peer = open_peer(await make_node(UNLIMITED), UNLIMITED)
    peer.send(pings(1000))

    peer.transport.closed = True
    peer.socket.connection_lost(None)
    await turns()

    assert peer.pongs() == [str(FRAMES_PER_TURN - 1).encode()]
