"""The listening port's first protocol: answers the two hot requests itself, hands on the rest.

Every accepted connection starts with a `FrontDoor`. For each request it reads the head
(`protocol.request_head`), resolves the path once (`server.routes`), and answers, without the
web library:
- WebSocket upgrades to `/app/{key}` (`protocol.handshake.read_handshake`): the 101 is built
  here, a `WebSocket` takes the transport, and the `Gate` opens the session or refuses it,
  as it does for an upgrade the web library answered. The 101 and the first Pusher frames
  leave in one write.
- signed publishes (`POST /apps/{id}/events`, `/batch_events`): the body is read (its
  Content-Length bounded before), `HttpApi.handle` answers it with the route resolved here
  and counts it, as it does for the web library's requests, and the connection stays open
  for the next request.

Rules:
1. Anything else, and anything `request_head` or `read_handshake` does not fully understand,
   goes to the web library's protocol with every byte read so far, before this door has
   answered anything of it. After that the door is gone; the web library owns the connection.
2. Requests on one connection are answered in order: while one is being handled, the next
   bytes wait (reading pauses past `MAX_WAITING_BYTES`).
3. A connection with no request in progress is closed after `IDLE_TIMEOUT_SECONDS`, the web
   library's keep-alive timeout, by a sweep (no timer per connection).
4. Responses carry the same status lines, headers and JSON bodies as the web library's.
5. No web library, and nothing of the transport (import-linter checks both).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final, cast

import orjson

from ressonance.protocol.handshake import Handshake, accept_key, read_handshake
from ressonance.protocol.request_head import RequestHead, Verdict, body_length, read_head
from ressonance.server import routes
from ressonance.server.gate import Gate
from ressonance.server.http_api import ApiRequest, ApiResponse, HttpApi
from ressonance.server.routes import Route
from ressonance.server.websocket import Sockets

log = logging.getLogger(__name__)

IDLE_TIMEOUT_SECONDS: Final = 3630.0  # aiohttp's keepalive_timeout
SWEEP_SECONDS: Final = 60.0
MAX_WAITING_BYTES: Final = 1 << 20

# What the door answers: (head, route, the upgrade's handshake or the publish's body length).
Answerable = tuple[RequestHead, Route, Handshake | int]
_PUBLISHES: Final = frozenset((routes.EVENTS, routes.BATCH_EVENTS))


def read_request(
    buffer: bytes | bytearray, max_body_bytes: int, start: int = 0
) -> Answerable | Verdict:
    """What the door does with the request at `start` in `buffer`: answer it, or a Verdict."""
    head = read_head(buffer, start)
    if isinstance(head, Verdict):
        return head
    route = routes.resolve(head.path)
    endpoint = route.endpoint
    answer: Handshake | int | None = None
    if endpoint in _PUBLISHES:
        answer = body_length(head, max_body_bytes)
    elif endpoint is routes.WEBSOCKET:
        answer = read_handshake(head, route.params["key"])
    return Verdict.FOREIGN if answer is None else (head, route, answer)


class FrontDoors:
    """What the doors of one listener share, and the doors still open."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        api: HttpApi,
        sockets: Sockets,
        gate: Gate,
        fallback: Callable[[], asyncio.Protocol],
        max_body_bytes: int,
        server_header: str,
    ) -> None:
        self.loop = loop  # kept: asyncio.get_running_loop() costs a getpid() syscall
        self.api = api
        self.sockets = sockets
        self.gate = gate
        self.fallback = fallback
        self.max_body_bytes = max_body_bytes
        self.server_header = server_header
        self.open: set[FrontDoor] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.sweeps = 0  # sweeps so far: a door's last activity, counted without a clock
        self._second = 0
        self._date = ""
        self._empty_ok = b""  # 200 with `{}`, the answer to nearly every publish

    def __call__(self) -> FrontDoor:
        """A door for a new connection (the listener's protocol factory)."""
        return FrontDoor(self)

    def date(self) -> str:
        """The Date header's value, formatted once a second."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._date = formatdate(now, usegmt=True)
            self._empty_ok = self._response(200, {}, b"{}")
        return self._date

    def switching_protocols(self, accept: str) -> bytes:
        return (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\nDate: {self.date()}\r\n"
            f"Server: {self.server_header}\r\n\r\n"
        ).encode()

    def response(self, response: ApiResponse) -> bytes:
        """The HTTP/1.1 response for `response`, as aiohttp writes a JSON `web.Response`."""
        self.date()  # brings _date and _empty_ok up to this second
        if response.status == 200 and not response.body and not response.headers:
            return self._empty_ok
        return self._response(response.status, response.headers, orjson.dumps(response.body))

    def _response(self, status: int, headers: Mapping[str, str], body: bytes) -> bytes:
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Date: {self._date}\r\nServer: {self.server_header}\r\n\r\n"
        )
        return head.encode() + body

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def sweep(self) -> None:
        """Close the doors idle for longer than the keep-alive timeout."""
        self.sweeps += 1
        oldest = self.sweeps - int(IDLE_TIMEOUT_SECONDS // SWEEP_SECONDS)
        for door in list(self.open):
            if door.idle_since <= oldest:
                door.transport.close()

    def close(self) -> None:
        """Close every idle door; a busy one closes once its response is written."""
        for door in list(self.open):
            door.close()

    async def wait_idle(self) -> None:
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


class FrontDoor(asyncio.Protocol):
    """One connection until it is upgraded, handed on, or closed."""

    __slots__ = (
        "_buffer",
        "_busy",
        "_closing",
        "_doors",
        "_paused",
        "_start",
        "idle_since",
        "transport",
    )

    transport: asyncio.Transport

    def __init__(self, doors: FrontDoors) -> None:
        self._doors = doors
        self._buffer: bytes | bytearray = b""  # received; handled up to `_start`
        self._start = 0
        self._busy = False  # a request is being handled
        self._closing = False
        self._paused = False
        self.idle_since = doors.sweeps

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        self._doors.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._doors.open.discard(self)

    def eof_received(self) -> bool | None:
        return None  # close, as the web library does

    def close(self) -> None:
        self._closing = True
        if not self._busy:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer, start = self._buffer, self._start
        if start < len(buffer):  # bytes of an unfinished request wait: append behind them
            if start or isinstance(buffer, bytes):
                buffer = bytearray(memoryview(buffer)[start:])
                self._start = 0
            buffer += data
            self._buffer = buffer
        else:
            self._buffer, self._start = data, 0
        if self._busy:
            if len(self._buffer) - self._start > MAX_WAITING_BYTES and not self._paused:
                self._paused = True
                self.transport.pause_reading()
            return
        self._serve()

    def _serve(self) -> None:
        """Answer the next complete request in the buffer, unless it has to wait for more."""
        buffer, start = self._buffer, self._start
        if start >= len(buffer) or self._closing:
            return
        request = read_request(buffer, self._doors.max_body_bytes, start)
        if request is Verdict.INCOMPLETE:
            return
        if request is Verdict.FOREIGN:
            self._hand_on(bytes(memoryview(buffer)[start:]))
            return
        head, route, answer = request
        body_start = start + head.size
        if isinstance(answer, Handshake):
            self._upgrade(head, answer, bytes(memoryview(buffer)[body_start:]))
            return
        end = body_start + answer
        if len(buffer) < end:
            return  # the body is still arriving
        self._start = end
        body = bytes(memoryview(buffer)[body_start:end])
        self._busy = True
        key = head.headers.get("idempotency-key")
        api_request = ApiRequest("POST", head.path, head.query, body, route, key)
        self._doors.spawn(self._answer(api_request))

    async def _answer(self, request: ApiRequest) -> None:
        try:
            response = await self._doors.api.handle(request)
        except Exception:
            log.exception("event=front_door_failed path=%s", request.path[:100])
            self.transport.close()
            return
        self._busy = False
        self.idle_since = self._doors.sweeps
        if self.transport.is_closing():
            return
        self.transport.write(self._doors.response(response))
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        if self._closing:
            self.transport.close()
        else:
            self._serve()

    def _hand_on(self, data: bytes) -> None:
        """The web library takes the connection, with everything read so far."""
        self._leave()
        protocol = self._doors.fallback()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(data)

    def _upgrade(self, head: RequestHead, handshake: Handshake, tail: bytes) -> None:
        """Answer 101 and give the transport to a `WebSocket`; the gate opens it."""
        self._leave()
        doors = self._doors
        accept = accept_key(head.headers["sec-websocket-key"])
        socket = doors.sockets.adopt(self.transport, doors.switching_protocols(accept))
        if tail:
            socket.data_received(tail)
        doors.spawn(doors.gate.open(socket, handshake))

    def _leave(self) -> None:
        self._closing = True  # nothing more for this door to do
        self._buffer, self._start = b"", 0
        self._doors.open.discard(self)
