"""One WebSocket connection: feeds the protocol core and writes what it produces, within bounds.

Rules:
1. Outbound bytes go to the transport's write buffer. What a connection has not yet taken is
   bounded twice: in bytes (the transport's `buffered()`) and in messages (frames written
   while that buffer was not empty, counted since it was last seen empty; an upper bound on
   the frames queued, kept with one integer, so a write stays O(1) and allocates nothing).
   Fanout frames (`write`) of a session that belongs to a node wait in the session until the
   end of the event-loop turn (`flush_pending`, called by the node's one `call_soon` per
   turn), so the frames of several publishes handled in one turn leave in one
   `transport.write` (one syscall); the first frame of a turn only puts the session on the
   node's dirty list. Frames that leave together into an empty transport buffer count as
   written while it was empty; into a non-empty one they are counted, and the limits applied,
   one by one, as separate writes would be. At most `max_messages` frames wait in a turn.
   Everything else a session writes (its own answers, its close) first writes what is
   pending, so the order holds.
2. Over either limit, the app's `slow_client_policy` decides:
   - "close" (default): close with 4100, so pusher-js reconnects after 1 s (reference §7);
     the session writes nothing more. Its close frame waits behind what is queued: a client
     that reads on sees it; one that does not is cut off by the transport's close timeout.
   - "drop_oldest": stop writing to the transport and hold frames in a deque bounded by the
     same two limits, dropping the oldest when it is full (each drop is counted). Once the
     transport's buffer is empty again, the held frames leave in one write.
   Either way a slow reader holds at most the limits in the transport (and, with drop_oldest,
   as much again in its deque), and never delays anyone else.
3. The drain is noticed by looking, not by a callback: on the session's next write, and on
   each `flush()`, which the node's timer sweep calls for every session (so a quiet
   connection gets its held frames at most one `timer_interval` late). asyncio's
   `resume_writing()` belongs to aiohttp's protocol object, which exposes no hook for it;
   catching it would mean swapping the transport's protocol behind aiohttp's back.
4. Drop-oldest drops any frame, the server's answers to the client (`pusher:pong`,
   `subscription_succeeded`) included: the session does not look inside frames.
5. Counting is plain integer adds on the app's counters, never per recipient of a publish
   (the node counts those once per publish), and a session never logs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ressonance.backbone.base import Topic
from ressonance.protocol import messages as m
from ressonance.protocol.connection import Connection
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.frames import text_frame
from ressonance.server.metrics import AppCounters

SLOW_REASON = "Client is not reading fast enough"


class Outlet(Protocol):
    """The part of a WebSocket a session writes to; provided by the transport."""

    def write(self, frame: bytes) -> None:
        """Queue complete, pre-built WebSocket frames (one or several, back to back)."""
        ...

    def buffered(self) -> int:
        """Bytes queued and not yet taken by the kernel."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Start a close handshake with `code` (idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class OutputLimits:
    """How much may wait for one connection: bytes and messages."""

    max_bytes: int = 1 << 20
    max_messages: int = 4096


class Session:
    """A connection's protocol state, its outlet and the topics it is indexed under."""

    __slots__ = (
        "_dirty",
        "_drop_oldest",
        "_held",
        "_held_bytes",
        "_pending",
        "_queued",
        "close_code",
        "close_reason",
        "closed",
        "connection",
        "counters",
        "max_buffer_bytes",
        "max_buffer_messages",
        "outlet",
        "socket_id",
        "topics",
    )

    def __init__(
        self,
        connection: Connection,
        outlet: Outlet,
        limits: OutputLimits,
        counters: AppCounters | None = None,
        dirty: list[Session] | None = None,
    ) -> None:
        self.connection = connection
        self.outlet = outlet
        self.socket_id = connection.socket_id
        self.max_buffer_bytes = limits.max_bytes
        self.max_buffer_messages = limits.max_messages
        self.counters = AppCounters() if counters is None else counters
        self.topics: set[Topic] = set()
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._drop_oldest = connection.app.slow_client_policy == "drop_oldest"
        self._queued = 0  # frames written while the transport's buffer was not empty
        self._held: deque[bytes] | None = None  # drop_oldest: frames kept back, oldest first
        self._held_bytes = 0
        # With a node: sessions with pending fanout frames, flushed once per loop turn.
        self._dirty = dirty
        self._pending: bytes | list[bytes] | None = None  # fanout frames not yet written

    def write(self, frame: bytes) -> None:
        """A fanout frame: written at the end of the loop turn with the others (O(1))."""
        if self.closed:
            return
        pending = self._pending
        if pending is None:
            dirty = self._dirty
            if dirty is None:
                self._write(frame)
                return
            self._pending = frame
            dirty.append(self)
        elif isinstance(pending, bytes):
            self._pending = [pending, frame]
        else:
            pending.append(frame)
            if len(pending) >= self.max_buffer_messages:  # bounded within one turn too
                self.flush_pending()

    def flush_pending(self) -> None:
        """Write the pending fanout frames: one write when the transport's buffer is empty."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if self.closed or self._held is not None or self.outlet.buffered():
            if isinstance(pending, bytes):
                self._write(pending)
            else:
                for frame in pending:  # a slow reader: counted and bounded frame by frame
                    self._write(frame)
            return
        # The usual case, inlined from `_write` (this runs once per recipient of a publish):
        # nothing is waiting in the transport, so the limits cannot be over.
        self._queued = 0
        self.outlet.write(pending if isinstance(pending, bytes) else b"".join(pending))

    def _write(self, frame: bytes) -> None:
        """Write `frame` to the transport, or apply the slow-client policy (O(1))."""
        if self.closed:
            return
        if self._held is not None:
            self._hold(self._held, frame)
            return
        buffered = self.outlet.buffered()
        if buffered:
            self._queued += 1
            if buffered > self.max_buffer_bytes or self._queued > self.max_buffer_messages:
                self._overflow(frame)
                return
        else:
            self._queued = 0
        self.outlet.write(frame)

    def _overflow(self, frame: bytes) -> None:
        if self._drop_oldest:
            self._held = deque((frame,))
            self._held_bytes = len(frame)
        else:
            self.counters.slow_disconnects += 1
            self.close(ErrorCode.OVER_CAPACITY, SLOW_REASON)

    def _hold(self, held: deque[bytes], frame: bytes) -> None:
        held.append(frame)
        self._held_bytes += len(frame)
        if self.release():
            return
        while len(held) > 1 and (
            len(held) > self.max_buffer_messages or self._held_bytes > self.max_buffer_bytes
        ):
            self._held_bytes -= len(held.popleft())
            self.counters.dropped += 1

    def release(self) -> bool:
        """Write the held frames in one write once the transport has drained; True if done."""
        held = self._held
        if held is None or self.outlet.buffered():
            return False
        self._held = None
        self._held_bytes = 0
        self.outlet.write(held[0] if len(held) == 1 else b"".join(held))
        self._queued = len(held) if self.outlet.buffered() else 0
        return True

    @property
    def held(self) -> int:
        """Frames kept back by the drop_oldest policy."""
        return 0 if self._held is None else len(self._held)

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    def flush(self) -> None:
        """Send what the protocol core queued, each message as one text frame."""
        if self._pending is not None:
            self.flush_pending()
        if self._held is not None:
            self.release()
        counters = self.counters
        for message in self.connection.data_to_send():
            frame = text_frame(message)
            counters.sent(frame)
            self._write(frame)

    def send(self, message: bytes) -> None:
        if self._pending is not None:
            self.flush_pending()
        frame = text_frame(message)
        self.counters.sent(frame)
        self._write(frame)

    def send_frames(self, frames: bytes, count: int) -> None:
        """`count` whole frames built for this session alone (a history replay), in one write
        after whatever is pending."""
        if self._pending is not None:
            self.flush_pending()
        counters = self.counters
        counters.messages_out += count
        counters.bytes_out += len(frames)
        self._write(frames)

    def error(self, message: str, code: int | None, channel: str | None = None) -> None:
        self.send(m.error(message, code, channel))

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            if self._pending is not None:
                self.flush_pending()
            if self.closed:  # writing what was pending found a slow client
                return
            self.closed = True
            self.close_code = code
            self.close_reason = reason
            self._held = None
            self.outlet.close(code, reason)
