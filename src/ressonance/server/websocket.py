"""One WebSocket after the handshake: our own asyncio protocol on the connection's transport.

The front door (or, for the upgrades it hands on, aiohttp) answers the upgrade, then hands the
socket to a `WebSocket`, which from then on is the connection's only protocol. Per connection
it holds this slotted object, a `FrameReader` (empty while idle) and the session; no task while
the client is silent.

Rules:
1. Client frames are parsed by `protocol.websocket.FrameReader`; text messages go to the
   node's `receive` in order, one at a time. A task runs only while messages are being handled;
   at most `MAX_INBOX` messages wait: then the socket stops reading until they are handled.
2. Writes are pre-built frames straight to the transport (this object is the session's outlet).
   Until the session is open they are held with the 101 answer (`uncork`), so a connection's
   handshake and its first Pusher frames leave in one write.
3. Closing: the server sends a close frame and waits up to `CLOSE_TIMEOUT_SECONDS` for the
   client's; a client's close is answered with 1000, and then the TCP connection is closed
   (RFC 6455 §7.1.1). A protocol violation sends a close frame with 1002, 1007 or 1009 and
   half-closes; the connection ends at the client's EOF or the timeout.
4. When the connection is gone, `SessionRegistry.close_session` runs once, after any message
   in hand.
5. No connection takes more than a bounded share of a loop turn, whatever it sends: one turn
   parses at most `FRAMES_PER_TURN` frames or about `BYTES_PER_TURN` bytes of it. The rest
   of what was read waits in the reader while the socket stops reading; it is parsed on a
   later turn (`loop.call_soon`), and the socket reads again once nothing waits.
6. Every frame counts against the inbound rate (`protocol.connection` rule 4): a text message
   when it is handled, every other frame (ping, pong, close, fragment, binary) when it is
   parsed, charged once per read with `Connection.frames_received`. Those over the rate are
   dropped as text messages are (one 4301 warning, then close 4100 if it goes on). Before
   the session opens there is no rate yet: they are charged when it opens, and at most
   `MAX_EARLY_FRAMES` of them are parsed before it does.
7. Pongs are coalesced: the pings of one read get one pong, for the latest (RFC 6455
   §5.5.3), only when they were within the rate, and none while the client has more than
   the session's byte limit unread. So at most one pong is written per read, and only as
   many reads as the rate allows are answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from ressonance.protocol import messages as m
from ressonance.protocol.frames import close_frame, pong_frame, text_frame
from ressonance.protocol.websocket import (
    NORMAL_CLOSURE,
    BinaryReceived,
    CloseReceived,
    Failed,
    FrameEvent,
    FrameReader,
    PingReceived,
    TextReceived,
)
from ressonance.server.registry import SessionRegistry
from ressonance.server.session import Session

log = logging.getLogger(__name__)

INTERNAL_ERROR: Final = 1011
CLOSE_TIMEOUT_SECONDS: Final = 10.0
MAX_INBOX: Final = 64
# The read budget of one connection in one loop turn (rule 5): about 0.1 ms of parsing. Text
# messages parsed also wait in the inbox, so a turn parses no more than it has room for.
FRAMES_PER_TURN: Final = 64  # at most MAX_INBOX and MAX_EARLY_FRAMES (`_read` counts on it)
BYTES_PER_TURN: Final = 64 * 1024
MAX_EARLY_FRAMES: Final = 64  # frames other than text parsed before the session opens
BINARY_REFUSED: Final = "Binary frames are not supported; send JSON text"

Receive = Callable[[Session, str], Awaitable[None]]  # the node's dispatch of one text message


class Sockets:
    """Every taken-over WebSocket of one transport, and the tasks they started."""

    def __init__(
        self,
        *,
        receive: Receive,
        registry: SessionRegistry,
        clock: Callable[[], float],
        max_message_bytes: int,
    ) -> None:
        """`receive` handles one text message of a session (`Node.receive`); `registry`
        closes a session once its connection is gone."""
        self.receive = receive
        self.registry = registry
        self.clock = clock
        self.max_message_bytes = max_message_bytes
        self.open: set[WebSocket] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def adopt(self, transport: asyncio.Transport, preamble: bytes | None = None) -> WebSocket:
        """Make a new `WebSocket` the protocol of `transport`.

        With `preamble` (the server's answer to the upgrade), the socket holds it and every
        frame written after it until `uncork()`, so they leave in one write.
        """
        socket = WebSocket(self, transport, preamble)
        transport.set_protocol(socket)
        self.open.add(socket)
        return socket

    def spawn(self, socket: WebSocket) -> None:
        task = asyncio.get_running_loop().create_task(socket.work())
        socket.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close_all(self) -> None:
        """Drop every remaining connection (the node is stopping)."""
        for socket in list(self.open):
            socket.transport.close()

    async def wait_idle(self) -> None:
        """Wait for the tasks still handling messages or closing sessions."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class WebSocket(asyncio.Protocol):
    """A connection's protocol and its session's outlet."""

    __slots__ = (
        "_client_code",
        "_closing",
        "_corked",
        "_early",
        "_inbox",
        "_lost",
        "_next_read",
        "_paused",
        "_reader",
        "_sockets",
        "buffered",
        "session",
        "task",
        "transport",
    )

    def __init__(
        self, sockets: Sockets, transport: asyncio.Transport, preamble: bytes | None = None
    ) -> None:
        self._sockets = sockets
        self.transport = transport
        # The outlet's `buffered()` is the transport's own method: one call less per
        # recipient of a publish.
        self.buffered: Callable[[], int] = transport.get_write_buffer_size
        self._reader = FrameReader(sockets.max_message_bytes)
        self.session: Session | None = None
        self.task: asyncio.Task[None] | None = None
        self._inbox: deque[str] | None = None  # text messages waiting to be handled
        self._closing: asyncio.TimerHandle | None = None
        self._client_code: int | None = None  # the code of the client's Close, for metrics
        self._lost = False
        self._paused = False  # reading stopped: the inbox is full, or parsed bytes wait
        self._next_read: asyncio.Handle | None = None  # parsing what waits, on a later turn
        self._early = 0  # frames other than text before the session opened, not charged yet
        # Written while the upgrade is answered and the session opens; sent by uncork().
        self._corked = None if preamble is None else [preamble]

    # --- the session's outlet ------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        if self._corked is not None:
            self._corked.append(frame)
        elif not self.transport.is_closing():
            self.transport.write(frame)

    def uncork(self) -> None:
        """Send what was written while corked, in one write."""
        corked = self._corked
        if corked is not None:
            self._corked = None
            self.write(b"".join(corked))

    def close(self, code: int, reason: str) -> None:
        """Send a close frame with `code` and wait for the client's (idempotent)."""
        if self._closing is None and not self._lost:
            self.write(close_frame(code, reason))
            loop = asyncio.get_running_loop()
            # abort(), not close(): close() waits for the write buffer to drain, which a
            # client that stopped reading never lets happen, and its buffer would live on.
            self._closing = loop.call_later(CLOSE_TIMEOUT_SECONDS, self.transport.abort)

    @property
    def closing(self) -> bool:
        return self._closing is not None

    @property
    def over(self) -> bool:
        """Closing or closed: no session may start on it any more."""
        return self._closing is not None or self._lost

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, session: Session) -> None:
        """The session is open: handle what the client sent meanwhile, if anything."""
        self.session = session
        if self._early:
            early, self._early = self._early, 0
            self._within_rate(early)
        if self._lost or self._inbox:
            self._sockets.spawn(self)
        if self._paused or self._reader.backlog or self._inbox or self._early:
            self._pace()  # (with nothing paused or waiting, reading goes on as it is)

    def refuse(self, code: int, reason: str) -> None:
        """pusher:error with `code` first, then a close with the same code (reference §1)."""
        self.write(text_frame(m.error(reason, code)))
        self.close(code, reason)

    # --- asyncio.Protocol ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._read(data)

    def _read(self, data: bytes = b"") -> None:
        """Parse what the read budget allows of the bytes waiting and `data` (rule 5)."""
        self._next_read = None
        if self._lost:
            return
        reader = self._reader
        # Nothing waiting: the whole turn's budget (MAX_INBOX and MAX_EARLY_FRAMES are larger).
        budget = self._budget() if self._inbox or self._early else FRAMES_PER_TURN
        events = reader.feed(data, budget, BYTES_PER_TURN)
        if events or reader.frames:  # a header that fails is an event but no frame
            self._handle(events, reader.frames)
        # With nothing paused or waiting there is room and no backlog: nothing to pace.
        if self._paused or reader.backlog or self._inbox or self._early:
            self._pace()

    def _budget(self) -> int:
        """How many frames may be parsed now: within the turn's budget and the inbox."""
        inbox = self._inbox
        budget = min(FRAMES_PER_TURN, MAX_INBOX - (0 if inbox is None else len(inbox)))
        if self.session is None:
            budget = min(budget, MAX_EARLY_FRAMES - self._early)
        return budget

    def _pace(self) -> None:
        """Stop reading while parsed bytes wait or the inbox is full; read again after."""
        if self._lost or self.transport.is_closing():
            return
        backlog = self._reader.backlog
        room = self._budget() > 0
        if backlog or not room:
            if not self._paused:
                self._paused = True
                self.transport.pause_reading()
            if backlog and room and self._next_read is None:
                self._next_read = asyncio.get_running_loop().call_soon(self._read)
        elif self._paused:
            self._paused = False
            self.transport.resume_reading()

    def _handle(self, events: list[FrameEvent], frames: int) -> None:
        """Act on the events of one read, which parsed `frames` frames."""
        ping: bytes | None = None
        binaries = texts = 0
        for event in events:
            if isinstance(event, TextReceived):
                texts += 1
                self._queue(event.text)
            elif isinstance(event, PingReceived):
                ping = event.payload  # only the latest is answered (rule 7)
            elif isinstance(event, BinaryReceived):
                binaries += 1
            elif isinstance(event, CloseReceived):
                self._closed_by_client(event.code)
                return
            else:
                self._fail(event)
                return
        if frames > texts and self._within_rate(frames - texts):
            if ping is not None:
                self._pong(ping)
            if binaries and self.session is not None:
                for _ in range(binaries):  # one answer each, as for a text message
                    self.session.error(BINARY_REFUSED, None)

    def _within_rate(self, count: int) -> bool:
        """Charge `count` frames other than text to the inbound rate (rule 6)."""
        if self._closing is not None:
            return False  # the server sent Close: only the client's Close matters now
        session = self.session
        if session is None:
            self._early += count
            return True
        over = session.connection.frames_received(count, self._sockets.clock())
        if over is None:
            return True
        session.flush()  # the 4301 warning, once per flood
        for request in over:
            session.close(request.code, request.reason)
        return False

    def _pong(self, payload: bytes) -> None:
        session = self.session
        if session is not None and self.buffered() > session.max_buffer_bytes:
            return  # the client is not reading: its pongs would only pile up (rule 7)
        self.write(pong_frame(payload))

    def _closed_by_client(self, code: int) -> None:
        """The client's Close: answer it (unless it answers ours), then hang up (rule 3)."""
        self._client_code = code
        if self._closing is None:
            self.write(close_frame(NORMAL_CLOSURE))
        self.uncork()
        self.transport.close()

    def _fail(self, failure: Failed) -> None:
        """Close frame with the failure's code, then half-close (RFC 6455 §7.1.7).

        The client's frames can no longer be trusted, so its close reply cannot be waited for:
        the server sends FIN after its close frame and discards what arrives until the client
        closes its side (or the close timeout). Closing outright could reset the connection
        over unread bytes and lose the close frame.
        """
        if self.session is not None:
            self.session.close(failure.code, failure.reason)
        else:
            self.close(failure.code, failure.reason)
        self.uncork()
        if self.transport.can_write_eof():
            self.transport.write_eof()

    def _queue(self, text: str) -> None:
        if self._closing is not None:
            return  # the server sent Close: only the client's Close reply matters now
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        inbox.append(text)  # at most MAX_INBOX: the read budget holds the rest back
        if self.task is None and self.session is not None:
            self._sockets.spawn(self)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._sockets.open.discard(self)
        if self._closing is not None:
            self._closing.cancel()
        if self._next_read is not None:
            self._next_read.cancel()
            self._next_read = None
        if self.session is not None and self.task is None:
            self._sockets.spawn(self)

    async def work(self) -> None:
        """Handle waiting messages in order; once the connection is gone, close the session."""
        session = self.session
        assert session is not None
        sockets = self._sockets
        inbox = self._inbox
        try:
            while inbox and not self._lost:
                text = inbox.popleft()
                if len(inbox) == MAX_INBOX - 1:  # it was full: parse and read on
                    self._pace()
                if self._closing is not None:
                    continue
                try:
                    await sockets.receive(session, text)
                except Exception:
                    log.exception("event=session_failed socket_id=%s", session.socket_id)
                    session.close(INTERNAL_ERROR, "Internal server error")
                if inbox:
                    await asyncio.sleep(0)  # let other connections in between two messages
        finally:
            self.task = None
            if not inbox:
                self._inbox = None
        if self._lost:
            await sockets.registry.close_session(session, self._client_code)
            self.session = None  # no cycle with session.outlet: refcounting frees both
