"""Hostile traffic on one node: a client flooding WebSocket ping frames hurts nobody else.

One raw socket sends a bounded flood of RFC 6455 ping frames (the cheapest frame there is:
six bytes, and each used to get a pong) as fast as loopback takes them. Meanwhile a client of
our Python SDK, subscribed on another connection, must get every event published over HTTP
within a generous bound, and a client arriving mid-flood must get in. With the default
inbound rate the flooder is warned (4301) and closed (4100); with the rate lifted, the read
budget alone keeps the others served.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ressonance.client import PusherSocket, RestClient
from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.pusher_ws import PUSHER_QUERY

pytestmark = pytest.mark.e2e

FLOOD_FRAMES = 200_000
PING_FRAME = b"\x89\x80" + os.urandom(4)  # masked, empty payload
CLOSE_FRAME = b"\x88\x82\x00\x00\x00\x00" + struct.pack("!H", 1000)  # masked with zeros
EVENTS = 20
LATENCY_BOUND = 2.0  # seconds; liveness, not a benchmark
TEXT, CLOSE, PONG = 1, 8, 10


@dataclass
class FloodResult:
    """What the flooding client read: pongs, Pusher errors and the close code, if any."""

    pongs: int = 0
    errors: list[object] = field(default_factory=list)
    close_code: int | None = None


async def read_frames(reader: asyncio.StreamReader, seen: FloodResult) -> None:
    """Read server frames until the close frame or the end of the stream."""
    while True:
        try:
            first, second = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            return
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await reader.readexactly(8))
        payload = await reader.readexactly(size)
        opcode = first & 0x0F
        if opcode == PONG:
            seen.pongs += 1
        elif opcode == TEXT:
            message = json.loads(payload)
            if message["event"] == "pusher:error":
                seen.errors.append(message["data"])
        elif opcode == CLOSE:
            seen.close_code = struct.unpack("!H", payload[:2])[0]
            return


async def flood(server: RunningServer) -> FloodResult:
    """Upgrade a raw socket, send FLOOD_FRAMES pings and a close, report what came back."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /app/{server.key}?{PUSHER_QUERY} HTTP/1.1\r\nHost: {server.host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    seen = FloodResult()
    try:
        async with asyncio.timeout(30):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            reading = asyncio.create_task(read_frames(reader, seen))
            chunk = PING_FRAME * 10_000
            for _ in range(FLOOD_FRAMES // 10_000):
                writer.write(chunk)
                await writer.drain()
            writer.write(CLOSE_FRAME)  # then the server's close: its own, or its answer
            await reading
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the server may hang up while the flood is still going
    finally:
        writer.close()
    return seen


async def publish_and_time(server: RunningServer, listener: PusherSocket) -> list[float]:
    """Publish EVENTS events over HTTP; the seconds each took to reach `listener`."""
    latencies: list[float] = []
    async with RestClient(server.app_id, server.key, server.secret, server.http_url) as api:
        for index in range(EVENTS):
            sent = time.monotonic()
            await api.trigger(["news"], "tick", {"n": index})
            async with asyncio.timeout(10):
                while True:
                    message = await listener.next_message()
                    if message.event == "tick":
                        break
            assert message.data == {"n": index}  # every event, in order
            latencies.append(time.monotonic() - sent)
            await asyncio.sleep(0.05)
    return latencies


def sdk_socket(server: RunningServer) -> PusherSocket:
    return PusherSocket(f"ws://{server.host}:{server.port}", server.key)


async def flood_while_publishing(server: RunningServer) -> tuple[list[float], FloodResult]:
    async with sdk_socket(server) as listener:
        async with asyncio.timeout(10):
            await listener.subscribe("news")
        flooding = asyncio.create_task(flood(server))
        await asyncio.sleep(0.05)
        async with sdk_socket(server) as newcomer:  # a handshake in the middle of the flood
            assert newcomer.socket_id
        latencies = await publish_and_time(server, listener)
        return latencies, await flooding


@pytest.fixture
def lifted_rate(tmp_path: Path) -> Iterator[RunningServer]:
    """A node whose app lets a connection send a billion frames a second."""
    running = start_server(
        tmp_path, extra_env={"RESSONANCE_APP_MAX_INBOUND_MESSAGES_PER_SEC": "1000000000"}
    )
    yield running
    stop_server(running)


async def test_a_ping_frame_flood_is_closed_with_4100_and_others_get_every_event(
    server: RunningServer,
) -> None:
    latencies, flooder = await flood_while_publishing(server)

    assert max(latencies) < LATENCY_BOUND, latencies
    assert flooder.close_code == 4100  # backoff, never 43xx: pusher-js would give up for good
    assert flooder.errors == [
        {
            "code": 4301,
            "message": "Rate limit exceeded: more than 200 messages per second "
            "(max_inbound_messages_per_sec); messages are being dropped",
        }
    ]
    assert flooder.pongs < 1000  # coalesced, and none over the rate: never one per ping


async def test_with_the_rate_lifted_the_read_budget_alone_keeps_others_served(
    lifted_rate: RunningServer,
) -> None:
    latencies, flooder = await flood_while_publishing(lifted_rate)

    assert max(latencies) < LATENCY_BOUND, latencies
    assert flooder.close_code == 1000  # never closed for it: the answer to its own close
    assert 0 < flooder.pongs < FLOOD_FRAMES // 10  # one pong per read, not one per ping
