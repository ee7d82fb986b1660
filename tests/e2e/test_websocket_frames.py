"""The server's own WebSocket layer on the wire (RFC 6455), with a raw TCP client.

After the handshake the server parses client frames itself: these tests pin what a client
sees for control frames, fragmentation, the close handshake and protocol violations.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.pusher_ws import PUSHER_QUERY, TIMEOUT
from tests.frames import CLOSE, PING, PONG, TEXT, client_frame, close_payload

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("frames"))
    yield running
    stop_server(running)


def upgrade_request(server: RunningServer) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /app/{server.key}?{PUSHER_QUERY} HTTP/1.1\r\n"
        f"Host: {server.host}:{server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class RawSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame: (opcode, payload)."""
        async with asyncio.timeout(TIMEOUT):
            first, second = await self.reader.readexactly(2)
            assert not second & 0x80, "server frames are never masked"
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            assert first & 0x80, "the server never fragments"
            return first & 0x0F, await self.reader.readexactly(size)

    async def message(self) -> dict[str, object]:
        opcode, payload = await self.frame()
        assert opcode == TEXT, (opcode, payload)
        message: dict[str, object] = json.loads(payload)
        return message

    async def expect_close(self, code: int) -> bytes:
        opcode, payload = await self.frame()
        while opcode == TEXT:  # a pusher:error may come first
            opcode, payload = await self.frame()
        assert opcode == CLOSE, (opcode, payload)
        assert struct.unpack("!H", payload[:2])[0] == code, payload
        return payload[2:]

    async def expect_eof(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            assert await self.reader.read() == b""


async def open_raw(server: RunningServer, early: bytes = b"") -> RawSocket:
    """A connected socket after the 101 response; `early` goes in the same write as the request."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(upgrade_request(server) + early)
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return RawSocket(reader, writer)


@pytest.fixture
async def raw(server: RunningServer) -> AsyncIterator[RawSocket]:
    socket = await open_raw(server)
    established = await socket.message()
    assert established["event"] == "pusher:connection_established"
    yield socket
    socket.writer.close()


def text(message: dict[str, object]) -> bytes:
    return json.dumps(message).encode()


PING_MESSAGE = text({"event": "pusher:ping", "data": {}})


async def test_websocket_ping_gets_a_pong_with_the_same_payload(raw: RawSocket) -> None:
    raw.send(client_frame(PING, b"hello"))

    assert await raw.frame() == (PONG, b"hello")


async def test_pong_from_the_client_is_ignored(raw: RawSocket) -> None:
    raw.send(client_frame(PONG, b"x") + client_frame(TEXT, PING_MESSAGE))

    assert (await raw.message())["event"] == "pusher:pong"


async def test_fragmented_message_with_a_ping_inside_is_handled_whole(raw: RawSocket) -> None:
    half = len(PING_MESSAGE) // 2
    raw.send(client_frame(TEXT, PING_MESSAGE[:half], fin=False))
    raw.send(client_frame(PING, b"p"))
    raw.send(client_frame(0, PING_MESSAGE[half:]))

    assert await raw.frame() == (PONG, b"p")
    assert (await raw.message())["event"] == "pusher:pong"


async def test_messages_split_across_tcp_writes_are_reassembled(raw: RawSocket) -> None:
    wire = client_frame(TEXT, PING_MESSAGE) * 3
    for byte in range(len(wire)):
        raw.send(wire[byte : byte + 1])
        await raw.writer.drain()

    for _ in range(3):
        assert (await raw.message())["event"] == "pusher:pong"


async def test_client_close_is_answered_with_1000_then_the_server_hangs_up(
    raw: RawSocket,
) -> None:
    raw.send(client_frame(CLOSE, close_payload(1001, b"going")))

    await raw.expect_close(1000)
    await raw.expect_eof()


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        pytest.param(client_frame(TEXT, b"\xff\xfe"), 1007, id="invalid-utf8-1007"),
        pytest.param(client_frame(TEXT, PING_MESSAGE, masked=False), 1002, id="unmasked-1002"),
        pytest.param(client_frame(3, b"x"), 1002, id="unknown-opcode-1002"),
        pytest.param(client_frame(0, b"x"), 1002, id="lone-continuation-1002"),
        pytest.param(client_frame(CLOSE, close_payload(1005)), 1002, id="close-1005-1002"),
        pytest.param(
            client_frame(TEXT, b"x" * (256 * 1024 + 1))[:14], 1009, id="oversize-header-1009"
        ),
    ],
)
async def test_protocol_violations_close_with_their_code(
    raw: RawSocket, wire: bytes, code: int
) -> None:
    raw.send(wire)

    await raw.expect_close(code)
    await raw.expect_eof()  # the server half-closes right after its close frame


async def test_after_a_violation_nothing_more_is_read_and_the_client_eof_ends_it(
    raw: RawSocket,
) -> None:
    raw.send(client_frame(TEXT, b"\xff"))
    await raw.expect_close(1007)

    raw.send(client_frame(TEXT, PING_MESSAGE))  # discarded: the server is closing
    raw.writer.write_eof()

    await raw.expect_eof()


async def test_frames_sent_right_behind_the_upgrade_request_are_not_lost(
    server: RunningServer,
) -> None:
    socket = await open_raw(server, early=client_frame(TEXT, PING_MESSAGE))
    try:
        assert (await socket.message())["event"] == "pusher:connection_established"
        assert (await socket.message())["event"] == "pusher:pong"
    finally:
        socket.writer.close()


async def test_a_refused_connection_sends_error_then_close_and_waits_for_the_reply(
    server: RunningServer,
) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(upgrade_request(server).replace(b"protocol=7", b"protocol=3"))
    async with asyncio.timeout(TIMEOUT):
        await reader.readuntil(b"\r\n\r\n")
    socket = RawSocket(reader, writer)
    error = await socket.message()
    assert error["event"] == "pusher:error"

    await socket.expect_close(4007)
    socket.send(client_frame(CLOSE, close_payload(4007)))
    await socket.expect_eof()
    writer.close()
