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
3. Every connection is counted (`census`) from `connection_made`, and every phase the
   client controls has a deadline (`deadlines`: first byte, request, keep-alive), checked by
   one sweep a tick (no timer per connection). A request that does not arrive in time gets
   408; a silent or idle connection is closed.
4. Request heads are bounded while they arrive (`ConnectionLimits.head`): one over a limit is
   answered 431 at once, whoever would have answered it, and never buffered further.
5. Responses carry the same status lines, headers and JSON bodies as the web library's. A
   refusal (408, 431, 503) closes the connection, after reading and dropping what the client
   still sends for a moment, so that it reads the answer instead of a reset.
6. No web library, and nothing of the transport (import-linter checks both).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final

import orjson

from ressonance.protocol.handshake import Handshake, accept_key, read_handshake
from ressonance.protocol.request_head import (
    DEFAULT_HEAD_LIMITS,
    HeadLimits,
    RequestHead,
    TooLarge,
    Verdict,
    body_length,
    read_head,
    request_path,
)
from ressonance.server import routes
from ressonance.server.census import PROBE_PATHS, Census
from ressonance.server.deadlines import TICK_SECONDS, Deadlines, Phase
from ressonance.server.gate import Gate
from ressonance.server.http_api import ApiRequest, ApiResponse, HttpApi
from ressonance.server.limits import ConnectionLimits
from ressonance.server.metrics import Metrics
from ressonance.server.routes import Route
from ressonance.server.websocket import Sockets

log = logging.getLogger(__name__)

SWEEP_SECONDS: Final = TICK_SECONDS
MAX_WAITING_BYTES: Final = 1 << 20
OVER_CAPACITY: Final = (
    "Server over capacity: only /healthz, /readyz and /metrics are served now; retry later"
)
TIMED_OUT: Final = {
    Phase.REQUEST: "Request not received in time (request_timeout)",
    Phase.TOO_SLOW: "Request arriving too slowly (min_request_bytes_per_sec)",
}

# What the door answers: (head, route, the upgrade's handshake or the publish's body length).
Answerable = tuple[RequestHead, Route, Handshake | int]
_PUBLISHES: Final = frozenset((routes.EVENTS, routes.BATCH_EVENTS))


def read_request(
    buffer: bytes | bytearray,
    max_body_bytes: int,
    start: int = 0,
    limits: HeadLimits = DEFAULT_HEAD_LIMITS,
) -> Answerable | TooLarge | Verdict:
    """What the door does with the request at `start` in `buffer`: answer it, refuse it as
    too large (431), or a Verdict."""
    head = read_head(buffer, start, limits)
    if not isinstance(head, RequestHead):
        return head
    route = routes.TABLE.resolve(head.path)
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
        metrics: Metrics,
        fallback: Callable[[], asyncio.Protocol],
        max_body_bytes: int,
        server_header: str,
        limits: ConnectionLimits | None = None,
        capacity: int | None = None,
    ) -> None:
        """`limits` bound each connection until it is a session; `capacity` is how many
        connections the node serves normally (`census.descriptor_budget`; None: no limit)."""
        self.loop = loop  # kept: asyncio.get_running_loop() costs a getpid() syscall
        self.api = api
        self.sockets = sockets
        self.gate = gate
        self.fallback = fallback
        self.max_body_bytes = max_body_bytes
        self.server_header = server_header
        self.open: set[FrontDoor] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.limits = limits = limits or ConnectionLimits()
        self.head_limits = limits.head
        self.metrics = metrics
        metrics.connection_capacity = capacity
        self.deadlines: Deadlines[FrontDoor] = Deadlines(limits)
        self.census: Census[FrontDoor] = Census(
            self.deadlines,
            websockets=sockets.open.__len__,  # the set's own method: no Python frame
            capacity=capacity,
            dropped=metrics.connection_dropped,
        )
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

    def refusal(self, status: int, message: str) -> bytes:
        """An error answer after which the connection closes."""
        self.date()
        body = orjson.dumps({"error": message, "code": status})
        return self._response(status, {"Connection": "close"}, body)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def sweep(self) -> None:
        """One tick: end the doors whose phase is over, then update the census."""
        for door, phase in self.deadlines.tick():
            door.expire(phase)
        self.census.tick()
        self.metrics.open_connections = self.census.open_connections()

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
        "probes_only",
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
        self.probes_only = False  # admitted into the descriptor reserve (`census`)

    @property
    def busy(self) -> bool:
        return self._busy

    def pending_bytes(self) -> int:
        return len(self._buffer) - self._start

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transport does not subclass asyncio.Transport (no cast(): a call less)
        self.transport = transport  # type: ignore[assignment]
        self._doors.open.add(self)
        self._doors.census.arrive(self)  # counted, first-byte deadline; or closed at once

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._doors.open.discard(self)
        self._doors.census.leave(self)

    def eof_received(self) -> bool | None:
        return None  # close, as the web library does

    def close(self) -> None:
        self._closing = True
        if not self._busy:
            self.transport.close()

    def expire(self, phase: Phase) -> None:
        """The deadline of `phase` passed (never cuts a request being answered)."""
        if self._busy or self.transport.is_closing():
            return
        message = TIMED_OUT.get(phase)
        if message is not None:
            self.refuse(408, message, phase.value)
            return
        if phase is not Phase.LINGER:  # a lingering door was counted when it was refused
            self._doors.metrics.connection_dropped(phase.value)
        self.transport.close()

    def refuse(self, status: int, message: str, reason: str) -> None:
        """Answer `status` with a JSON error and close; then read and drop what the client
        still sends, for `deadlines.LINGER_SECONDS` at most (a close with unread bytes would
        reset the connection, and the client might never read the answer)."""
        doors = self._doors
        doors.metrics.connection_dropped(reason)
        self._closing = True
        self._buffer, self._start = b"", 0
        self.transport.write(doors.refusal(status, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            doors.deadlines.start(self, Phase.LINGER)
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._closing and not self._busy:
            return  # refused: dropped while lingering
        buffer, start = self._buffer, self._start
        if start < len(buffer):  # bytes of an unfinished request wait: append behind them
            if start or isinstance(buffer, bytes):
                buffer = bytearray(memoryview(buffer)[start:])
                self._start = 0
            buffer += data
            self._buffer = buffer
        else:
            self._buffer, self._start = data, 0
            if not self._busy:
                self._serve()
                if not (self._busy or self._closing) and self._start < len(self._buffer):
                    # Its first byte, and the request is not whole yet: timed from now on.
                    # (One answered at once keeps the phase it had, and stops it if it leaves.)
                    self._doors.deadlines.start(self, Phase.REQUEST)
                return
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
        doors = self._doors
        request = read_request(buffer, doors.max_body_bytes, start, doors.head_limits)
        if request is Verdict.INCOMPLETE:
            return
        if isinstance(request, TooLarge):
            self.refuse(431, request.reason, "head_too_large")
            return
        if self.probes_only and request_path(buffer, start) not in PROBE_PATHS:
            self.refuse(503, OVER_CAPACITY, "over_capacity")
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
        doors.spawn(self._answer(api_request))

    async def _answer(self, request: ApiRequest) -> None:
        try:
            response = await self._doors.api.handle(request)
        except Exception:
            log.exception("event=front_door_failed path=%s", request.path[:100])
            self.transport.close()
            return
        self._busy = False
        if self.transport.is_closing():
            return
        self.transport.write(self._doors.response(response))
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        if self._closing:
            self.transport.close()
        else:
            waiting = self._start < len(self._buffer)
            self._doors.deadlines.start(self, Phase.REQUEST if waiting else Phase.KEEPALIVE)
            self._serve()

    def _hand_on(self, data: bytes) -> None:
        """The web library takes the connection, with everything read so far."""
        self._doors.census.hand_on(self)
        self._leave()
        protocol = self._doors.fallback()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(data)

    def _upgrade(self, head: RequestHead, handshake: Handshake, tail: bytes) -> None:
        """Answer 101 and give the transport to a `WebSocket`; the gate opens it."""
        self._doors.census.leave(self)  # counted as a WebSocket from now on
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
