"""A raw Pusher-protocol WebSocket client on aiohttp, for the Python end-to-end tests.

It speaks the wire protocol exactly as pusher-js does (reference §1 and §2) and hides
nothing: messages come back as the parsed JSON envelope, with `data` as sent by the server
(a JSON string for server events, an object for pusher:error). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from ressonance.protocol.signing import sign_request
from tests.e2e.conftest import RunningServer

PUSHER_QUERY = "protocol=7&client=js&version=8.4.0"
TIMEOUT = 5.0
# Sent on every subscribe/unsubscribe by an app with subscription counts enabled; the tests
# that are not about it skip it.
NOISE = frozenset({"pusher_internal:subscription_count"})

Message = dict[str, Any]


def ws_url(server: RunningServer, key: str | None = None, query: str = PUSHER_QUERY) -> str:
    scheme = "wss" if server.scheme == "https" else "ws"
    return f"{scheme}://{server.host}:{server.port}/app/{key or server.key}?{query}"


def data_of(message: Message) -> Any:
    """The `data` of a message, decoded when the server sent it as a JSON string."""
    data = message.get("data")
    return json.loads(data) if isinstance(data, str) else data


@dataclass
class PusherSocket:
    """One connected WebSocket, after pusher:connection_established."""

    ws: aiohttp.ClientWebSocketResponse
    socket_id: str
    established: Message

    async def send(self, event: str, data: object = None, channel: str | None = None) -> None:
        message: Message = {"event": event}
        if data is not None:
            message["data"] = data
        if channel is not None:
            message["channel"] = channel
        await self.ws.send_str(json.dumps(message))

    async def receive(self, within: float = TIMEOUT, skip: Iterable[str] = NOISE) -> Message:
        """The next text message, skipping events named in `skip`."""
        skipped = frozenset(skip)
        async with asyncio.timeout(within):
            while True:
                frame = await self.ws.receive()
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    raise AssertionError(
                        f"expected a text frame, got {frame.type.name} "
                        f"(data={frame.data!r}, extra={frame.extra!r})"
                    )
                message: Message = json.loads(frame.data)
                if message.get("event") not in skipped:
                    return message

    async def expect(
        self,
        event: str,
        channel: str | None = None,
        within: float = TIMEOUT,
        skip: Iterable[str] = NOISE,
    ) -> Message:
        """The next message (noise skipped), asserted to be `event` on `channel`."""
        message = await self.receive(within, skip)
        assert message.get("event") == event, f"expected {event}, got {message}"
        if channel is not None:
            assert message.get("channel") == channel, message
        return message

    async def subscribe(
        self, channel: str, auth: str = "", channel_data: str | None = None
    ) -> Message:
        """Subscribe and wait for pusher_internal:subscription_succeeded."""
        data: dict[str, str] = {"auth": auth, "channel": channel}
        if channel_data is not None:
            data["channel_data"] = channel_data
        await self.send("pusher:subscribe", data)
        return await self.expect("pusher_internal:subscription_succeeded", channel)

    async def ping(self) -> None:
        """Round-trip pusher:ping, proving the connection is open and served."""
        await self.send("pusher:ping", {})
        await self.expect("pusher:pong")

    async def expect_closed(self, code: int, within: float = TIMEOUT) -> None:
        """The server closes the connection with `code` (no more text messages first)."""
        async with asyncio.timeout(within):
            frame = await self.ws.receive()
        assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), (
            f"expected a close, got {frame.type.name} {frame.data!r}"
        )
        assert self.ws.close_code == code, (self.ws.close_code, frame.extra)


async def open_socket(
    http: aiohttp.ClientSession, url: str, origin: str | None = None
) -> aiohttp.ClientWebSocketResponse:
    async with asyncio.timeout(TIMEOUT):
        return await http.ws_connect(url, origin=origin, autoping=True)


@contextlib.asynccontextmanager
async def connect(
    http: aiohttp.ClientSession, server: RunningServer, origin: str | None = None
) -> AsyncIterator[PusherSocket]:
    """A Pusher connection that got pusher:connection_established."""
    ws = await open_socket(http, ws_url(server), origin)
    try:
        socket = PusherSocket(ws, "", {})
        established = await socket.expect("pusher:connection_established", skip=())
        socket.established = established
        socket.socket_id = data_of(established)["socket_id"]
        yield socket
    finally:
        await ws.close()


# --- HTTP API --------------------------------------------------------------------------------


def signed_query(
    server: RunningServer,
    method: str,
    path: str,
    body: bytes = b"",
    params: Mapping[str, str] | None = None,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The query string of a request signed as the Node SDK signs it (reference §5.6)."""
    query = {
        **(params or {}),
        "auth_key": server.key,
        "auth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "auth_version": "1.0",
    }
    if body:
        query["body_md5"] = hashlib.md5(body).hexdigest()
    query["auth_signature"] = sign_request(secret or server.secret, method, path, query)
    return query


def api_url(server: RunningServer, path: str, query: Mapping[str, str] | None = None) -> URL:
    return URL(server.http_url + path).with_query(dict(query or {}))


async def api_request(
    http: aiohttp.ClientSession,
    server: RunningServer,
    method: str,
    path: str,
    body: object = None,
    params: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """Send a correctly signed request; returns the status and the JSON body."""
    raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    query = signed_query(server, method, path, raw, params)
    headers = {"Content-Type": "application/json"} if raw else {}
    async with (
        asyncio.timeout(TIMEOUT),
        http.request(
            method, api_url(server, path, query), data=raw or None, headers=headers
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def trigger(
    http: aiohttp.ClientSession,
    server: RunningServer,
    channels: list[str],
    name: str,
    data: str,
    **extra: object,
) -> Any:
    status, body = await api_request(
        http,
        server,
        "POST",
        f"/apps/{server.app_id}/events",
        {"name": name, "data": data, "channels": channels, **extra},
    )
    assert status == 200, body
    return body
