"""One WebSocket connection: feeds the protocol core and writes what it produces.

Rules:
1. Outbound bytes go straight to the transport's write buffer; a client whose buffer grows
   past `max_buffer_bytes` is closed with 4100 (pusher-js reconnects after 1 s, §7), so a slow
   reader never grows the server's memory without bound or delays anyone else.
2. A session never logs on the per-recipient path.
"""

from __future__ import annotations

from typing import Protocol

from ressonance.protocol import messages as m
from ressonance.protocol.connection import Connection
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.frames import text_frame


class Outlet(Protocol):
    """The part of a WebSocket a session writes to; provided by the transport."""

    def write(self, frame: bytes) -> None:
        """Queue a complete, pre-built WebSocket frame."""
        ...

    def buffered(self) -> int:
        """Bytes queued and not yet taken by the kernel."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Start a close handshake with `code` (idempotent)."""
        ...


class Session:
    """A connection's protocol state, its outlet and the topics it is indexed under."""

    __slots__ = ("closed", "connection", "max_buffer_bytes", "outlet", "socket_id", "topics")

    def __init__(self, connection: Connection, outlet: Outlet, max_buffer_bytes: int) -> None:
        self.connection = connection
        self.outlet = outlet
        self.socket_id = connection.socket_id
        self.max_buffer_bytes = max_buffer_bytes
        self.topics: set[str] = set()
        self.closed = False

    def write(self, frame: bytes) -> None:
        if self.closed:
            return
        if self.outlet.buffered() > self.max_buffer_bytes:
            self.close(ErrorCode.OVER_CAPACITY, "Client is not reading fast enough")
            return
        self.outlet.write(frame)

    def flush(self) -> None:
        """Send what the protocol core queued, each message as one text frame."""
        for message in self.connection.data_to_send():
            self.write(text_frame(message))

    def send(self, message: bytes) -> None:
        self.write(text_frame(message))

    def error(self, message: str, code: int | None, channel: str | None = None) -> None:
        self.send(m.error(message, code, channel))

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.outlet.close(code, reason)
