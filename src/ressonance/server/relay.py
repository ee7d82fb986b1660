"""Between a handed-on connection and the web library: bounds on the heads it reads next.

The front door checks the first request of every connection. When it hands a connection to
the web library (`FrontDoor._hand_on`), the next requests on it reach the library's parser
directly, and that parser, once it has refused a line as too long, keeps parsing whatever
else arrives into large error messages (about 2 MB kept for a 1 MB header line). A `Relay`
is the transport's protocol instead, passing every event on to the library's, and bounding
what reaches it.

Rules:
1. Once a request is done (`request_done`: the library answers it and its body is all in),
   the next head must end (CRLF CRLF) within `max_head_bytes`: past that the client gets
   431 and the connection is closed (after reading and dropping what it still sends for
   `LINGER_SECONDS`, as the door does); the library sees at most that many bytes of it.
2. Bodies are the library's (it streams them, and discards what a handler did not read),
   and so is a head sent before the previous request was done (pipelined: its own line and
   header limits apply). The first request, read by the door, is not checked again.
3. Every event passes through unchanged and in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

from ressonance.server.deadlines import LINGER_SECONDS

HEAD_END: Final = b"\r\n\r\n"


class Relay(asyncio.Protocol):
    """The protocol of a connection the web library took; `inner` is the library's."""

    __slots__ = (
        "_dropped",
        "_head_bytes",
        "_inner",
        "_max_head",
        "_refusal",
        "_refused",
        "_tail",
        "_transport",
    )

    def __init__(
        self,
        inner: asyncio.Protocol,
        *,
        max_head_bytes: int,
        refusal: Callable[[int, str], bytes],
        dropped: Callable[[str], None],
    ) -> None:
        self._inner = inner
        self._max_head = max_head_bytes
        self._refusal = refusal
        self._dropped = dropped
        self._head_bytes = -1  # of the next head so far; -1: not followed (a request is on)
        self._tail = b""  # the last bytes of the head in progress (an end may straddle)
        self._refused = False
        self._transport: asyncio.Transport | None = None

    @property
    def inner(self) -> asyncio.Protocol:
        return self._inner

    def request_done(self) -> None:
        """The request in progress is answered and read: what arrives next is a new head."""
        self._head_bytes = 0
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._refused or self._transport.is_closing():
            return
        if self._head_bytes >= 0 and not self._head_checked(data):
            return
        self._inner.data_received(data)

    def _head_checked(self, data: bytes) -> bool:
        """Follow the head in progress through `data`; False when it is over the limit."""
        room = self._max_head - self._head_bytes
        window = self._tail + data[: room + 1]
        if HEAD_END in window:
            self._head_bytes = -1
            return True
        if len(data) >= room:
            assert self._transport is not None
            self._dropped("head_too_large")
            limit = self._max_head
            size = f"{limit // 1024} KB" if limit % 1024 == 0 else f"{limit} bytes"
            self._refuse(431, f"Request head is larger than {size}")
            return False
        self._head_bytes += len(data)
        self._tail = window[-3:]
        return True

    def _refuse(self, status: int, message: str) -> None:
        transport = self._transport
        assert transport is not None
        self._refused = True
        transport.write(self._refusal(status, message))
        if transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()
