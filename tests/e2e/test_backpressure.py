"""A client that stops reading is closed with 4100; everyone else gets every event.

The stalled reader is a raw TCP socket with a small receive buffer (SO_RCVBUF), which speaks
just enough WebSocket (RFC 6455 §4 handshake, §5 frames) to subscribe, then reads nothing.
Events carry ~4 KB so the server's buffers fill fast. The healthy subscriber is the aiohttp
client of the other end-to-end tests, reading as pusher-js would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ressonance.protocol.errors import ErrorCode
from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.pusher_ws import PUSHER_QUERY, TIMEOUT, api_request, connect, data_of
from tests.frames import CLOSE, TEXT, client_frame

pytestmark = pytest.mark.e2e

EVENTS = 3000
BATCH = 10  # the app's max_event_batch_size
PADDING = "x" * 4000


class RawWebSocket:
    """A blocking WebSocket client over a plain socket: it reads only when asked to."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    @classmethod
    def open(cls, server: RunningServer, receive_buffer: int) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect, so the window advertised in the handshake is already small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(TIMEOUT)
        sock.connect((server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /app/{server.key}?{PUSHER_QUERY} HTTP/1.1\r\n"
            f"Host: {server.host}:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        client = cls(sock)
        head = client._read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return client

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the TCP connection")
        self.buffer += chunk

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def receive(self) -> tuple[int, bytes]:
        """The next frame: (opcode, payload). Server frames are unmasked and unfragmented."""
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._take(8))
        return first & 0x0F, self._take(length)

    def receive_event(self) -> dict[str, object]:
        opcode, payload = self.receive()
        assert opcode == TEXT, (opcode, payload)
        message = json.loads(payload)
        assert isinstance(message, dict)
        return message

    def send(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(client_frame(opcode, payload))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("backpressure"))
    yield running
    stop_server(running)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def stalled_subscriber(server: RunningServer, channel: str) -> RawWebSocket:
    """Connected and subscribed to `channel`; from here on it reads nothing until asked."""
    raw = RawWebSocket.open(server, receive_buffer=4096)
    assert raw.receive_event()["event"] == "pusher:connection_established"
    subscribe = {"event": "pusher:subscribe", "data": {"channel": channel}}
    raw.send(TEXT, json.dumps(subscribe).encode())
    while raw.receive_event()["event"] != "pusher_internal:subscription_succeeded":
        pass  # pusher:subscription_count may come first
    return raw


def read_to_close(raw: RawWebSocket) -> tuple[int, int]:
    """Read what the server queued until its Close frame: (ticks received, close code)."""
    ticks = 0
    while True:
        opcode, payload = raw.receive()
        if opcode == CLOSE:
            raw.send(CLOSE, payload[:2])  # answer it, as a client must
            return ticks, struct.unpack("!H", payload[:2])[0]
        if json.loads(payload).get("event") == "tick":
            ticks += 1


async def metric(http: aiohttp.ClientSession, server: RunningServer, name: str) -> float:
    async with http.get(f"{server.http_url}/metrics") as response:
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def test_a_stalled_reader_is_closed_with_4100_and_the_others_get_every_event(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    channel = "firehose"
    async with connect(http, server) as healthy:
        await healthy.subscribe(channel)
        stalled = await asyncio.to_thread(stalled_subscriber, server, channel)
        try:

            async def receive_all() -> list[int]:
                received = []
                while len(received) < EVENTS:
                    message = await healthy.expect("tick", channel, within=20)
                    received.append(data_of(message)["n"])
                return received

            async def publish_all() -> None:
                for start in range(0, EVENTS, BATCH):
                    batch = [
                        {
                            "name": "tick",
                            "channel": channel,
                            "data": json.dumps({"n": n, "pad": PADDING}),
                        }
                        for n in range(start, start + BATCH)
                    ]
                    path = f"/apps/{server.app_id}/batch_events"
                    status, body = await api_request(http, server, "POST", path, {"batch": batch})
                    assert status == 200, body

            async with asyncio.timeout(60):
                receiving = asyncio.create_task(receive_all())
                await publish_all()
                received = await receiving
            assert received == list(range(EVENTS))  # every event, in order
            await healthy.ping()  # and still open

            slow_closes = await metric(http, server, "ressonance_slow_client_disconnects_total")
            assert slow_closes == 1
            ticks, code = await asyncio.to_thread(read_to_close, stalled)
            assert code == ErrorCode.OVER_CAPACITY
            assert ticks < EVENTS  # it was cut off, not fed everything
            await until_connections(http, server, 1)  # the server let go of it
        finally:
            stalled.close()


async def until_connections(
    http: aiohttp.ClientSession, server: RunningServer, count: int, within: float = TIMEOUT
) -> None:
    async with asyncio.timeout(within):
        while True:
            if await metric(http, server, "ressonance_connections") == count:
                return
            await asyncio.sleep(0.05)


async def test_a_reader_that_never_resumes_is_cut_off_and_forgotten(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    """After 4100 the server waits CLOSE_TIMEOUT_SECONDS (10 s) for the client's Close reply,
    then drops the TCP connection even though its write buffer never drained."""
    channel = "never-read"
    path = f"/apps/{server.app_id}/batch_events"
    slow_closes = "ressonance_slow_client_disconnects_total"
    async with connect(http, server) as healthy:
        await healthy.subscribe(channel)
        stalled = await asyncio.to_thread(stalled_subscriber, server, channel)
        before = await metric(http, server, slow_closes)
        try:
            async with asyncio.timeout(30):
                while await metric(http, server, slow_closes) == before:
                    data = json.dumps({"pad": PADDING})
                    batch = [{"name": "tick", "channel": channel, "data": data}] * BATCH
                    status, body = await api_request(http, server, "POST", path, {"batch": batch})
                    assert status == 200, body
                    for _ in batch:
                        await healthy.expect("tick", channel)
            await until_connections(http, server, 1, within=15)
        finally:
            stalled.close()
