"""SANS-I/O reader of the frames a WebSocket client sends (RFC 6455 §5).

Fed the bytes read from a socket, a `FrameReader` returns whole messages and the control
frames the server must answer. It checks everything a client frame must satisfy, and the
message size from the frame header before the payload is buffered:

- masked, no reserved bits (no extension is negotiated), a known opcode (§5.2);
- control frames unfragmented with at most 125 bytes (§5.5);
- continuation frames only inside a fragmented message, and no new message inside one (§5.4);
- a message over `max_message_bytes` fails with 1009, invalid UTF-8 in a text message or a
  close reason with 1007, anything else malformed with 1002 (§7.4.1).

After a close frame or a failure the reader ignores everything that follows.

A read budget bounds the work of one `feed`: it parses at most `max_frames` frames, and stops
after the frame that reaches `max_bytes`; the bytes after are held, unparsed and uncopied,
for the next call (`backlog` says so; `feed(b"")` goes on). `frames` counts every frame
parsed by the last call, control frames and fragments included, so a caller can charge them
to a rate without one event per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

NORMAL_CLOSURE: Final = 1000
PROTOCOL_ERROR: Final = 1002
NO_STATUS: Final = 1005
INVALID_DATA: Final = 1007
MESSAGE_TOO_BIG: Final = 1009

_CONTINUATION: Final = 0x0
_TEXT: Final = 0x1
_BINARY: Final = 0x2
_CLOSE: Final = 0x8
_PING: Final = 0x9
_PONG: Final = 0xA
_OPCODES: Final = frozenset((_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG))
_MAX_CONTROL_PAYLOAD: Final = 125
_UNUSABLE_CLOSE_CODES: Final = frozenset((1004, NO_STATUS, 1006))
UNLIMITED: Final = 1 << 62


# Not frozen (a frozen dataclass's __init__ sets each field through object.__setattr__:
# ~1 % of a connect or publish each); built per frame read, never changed once built.
@dataclass(slots=True)
class TextReceived:
    """A whole text message, decoded."""

    text: str


@dataclass(slots=True)
class BinaryReceived:
    """A whole binary message."""

    data: bytes


@dataclass(slots=True)
class PingReceived:
    """A ping: answer with a pong carrying the same payload."""

    payload: bytes


@dataclass(slots=True)
class CloseReceived:
    """The client's close frame; `code` is 1005 when it carried none."""

    code: int
    reason: str


@dataclass(slots=True)
class Failed:
    """The client broke the protocol: close with `code`."""

    code: int
    reason: str


FrameEvent = TextReceived | BinaryReceived | PingReceived | CloseReceived | Failed


def valid_close_code(code: int) -> bool:
    """A code a peer may send in a close frame (§7.4.1, §7.4.2 and the IANA registry)."""
    if 1000 <= code <= 1014:
        return code not in _UNUSABLE_CLOSE_CODES
    return 3000 <= code <= 4999


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR `payload` with the 4-byte `mask` repeated (§5.3), as one big-integer operation."""
    length = len(payload)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )


class FrameReader:
    """Turns the client's byte stream into messages and control events."""

    __slots__ = (
        "_buffer",
        "_done",
        "_fragments",
        "_need",
        "_opcode",
        "_size",
        "_start",
        "backlog",
        "frames",
        "max_bytes",
    )

    def __init__(self, max_message_bytes: int) -> None:
        self.max_bytes = max_message_bytes
        self._buffer: bytes | bytearray = b""  # bytes not parsed yet, from `_start` on
        self._start = 0
        self._need = 0  # bytes the buffered frame needs before parsing is worth trying again
        self._fragments: list[bytes] | None = None  # payloads of an unfinished message
        self._opcode = _TEXT  # opcode of the unfinished message
        self._size = 0  # its bytes so far
        self._done = False
        self.frames = 0  # frames parsed by the last `feed`
        self.backlog = False  # the last `feed` stopped at its budget with bytes left

    @property
    def buffered(self) -> int:
        """Bytes held: unparsed bytes and the fragments of an unfinished message."""
        return len(self._buffer) - self._start + self._size

    def feed(
        self, data: bytes, max_frames: int = UNLIMITED, max_bytes: int = UNLIMITED
    ) -> list[FrameEvent]:
        """The events completed by the held bytes and `data`, in order, within the budget."""
        self.frames = 0
        self.backlog = False
        buffer = self._take(data)
        if buffer is None:
            return []
        events: list[FrameEvent] = []
        position = begin = self._start
        end = len(buffer)
        frames = 0
        while end - position >= 2:
            if frames >= max_frames or position - begin >= max_bytes:
                self.frames = frames
                self.backlog = True
                self._buffer, self._start = buffer, position  # held as is: no copy
                return events
            first = buffer[position]
            second = buffer[position + 1]
            header, length = _lengths(buffer, position, second & 0x7F)
            if end - position < header:
                break
            failure = self._check(first, second, length)
            if failure is not None:
                self.frames = frames
                return self._finish(events, failure)
            start = position + header + 4
            if end < start + length:
                self._need = start + length - position
                break
            mask = bytes(buffer[start - 4 : start])
            payload = unmask(bytes(buffer[start : start + length]), mask)
            position = start + length
            frames += 1
            event = self._frame(first, payload)
            if event is not None:
                if isinstance(event, CloseReceived | Failed):
                    self.frames = frames
                    return self._finish(events, event)
                events.append(event)
        self.frames = frames
        self._buffer = buffer[position:] if position < end else b""
        self._start = 0
        return events

    def _take(self, data: bytes) -> bytes | bytearray | None:
        """The held bytes and `data`, or None when no frame can be complete yet."""
        if self._done:
            return None
        buffer, start = self._buffer, self._start
        if start == len(buffer):
            self._need = 0
            self._start = 0
            return data
        if data:
            if start or isinstance(buffer, bytes):
                buffer = bytearray(memoryview(buffer)[start:])
                self._start = 0
            buffer += data
            self._buffer = buffer
        if len(buffer) - self._start < self._need:
            return None
        self._need = 0
        return buffer

    def _check(self, first: int, second: int, length: int) -> Failed | None:
        """What is wrong with a frame header, checked before its payload is read."""
        opcode = first & 0x0F
        if first & 0x70:
            return Failed(PROTOCOL_ERROR, "Reserved bits must be 0")
        if opcode not in _OPCODES:
            return Failed(PROTOCOL_ERROR, f"Unknown opcode {opcode}")
        if not second & 0x80:
            return Failed(PROTOCOL_ERROR, "Client frames must be masked")
        if opcode & 0x8:
            return _check_control(first, length)
        if opcode == _CONTINUATION:
            if self._fragments is None:
                return Failed(PROTOCOL_ERROR, "Continuation frame outside a message")
        elif self._fragments is not None:
            return Failed(PROTOCOL_ERROR, "New message inside a fragmented message")
        if self._size + length > self.max_bytes:
            return Failed(MESSAGE_TOO_BIG, f"Message over {self.max_bytes} bytes")
        return None

    def _frame(self, first: int, payload: bytes) -> FrameEvent | None:
        """The event a complete, checked frame makes, if any."""
        opcode = first & 0x0F
        if opcode == _PING:
            return PingReceived(payload)
        if opcode == _PONG:
            return None
        if opcode == _CLOSE:
            return _close(payload)
        if not first & 0x80:  # a fragment: keep it until the final one
            if self._fragments is None:
                self._fragments = []
                self._opcode = opcode
            self._fragments.append(payload)
            self._size += len(payload)
            return None
        if opcode == _CONTINUATION:
            assert self._fragments is not None  # checked with the header
            self._fragments.append(payload)
            payload = b"".join(self._fragments)
            opcode = self._opcode
            self._fragments = None
            self._size = 0
        if opcode == _BINARY:
            return BinaryReceived(payload)
        try:
            return TextReceived(payload.decode())
        except UnicodeDecodeError:
            return Failed(INVALID_DATA, "Text message is not valid UTF-8")

    def _finish(self, events: list[FrameEvent], last: FrameEvent) -> list[FrameEvent]:
        self._done = True
        self._buffer, self._start = b"", 0
        self._fragments = None
        self._size = 0
        events.append(last)
        return events


def _lengths(buffer: bytes | bytearray, position: int, length: int) -> tuple[int, int]:
    """The header size of the frame at `position`, and its payload length (0 until known)."""
    if length < 126:
        return 2, length
    header = 4 if length == 126 else 10
    if len(buffer) - position < header:
        return header, 0
    return header, int.from_bytes(buffer[position + 2 : position + header], "big")


def _check_control(first: int, length: int) -> Failed | None:
    if not first & 0x80:
        return Failed(PROTOCOL_ERROR, "Control frames must not be fragmented")
    if length > _MAX_CONTROL_PAYLOAD:
        return Failed(PROTOCOL_ERROR, "Control frame payload over 125 bytes")
    return None


def _close(payload: bytes) -> CloseReceived | Failed:
    if not payload:
        return CloseReceived(NO_STATUS, "")
    if len(payload) == 1:
        return Failed(PROTOCOL_ERROR, "Close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not valid_close_code(code):
        return Failed(PROTOCOL_ERROR, f"Invalid close code {code}")
    try:
        return CloseReceived(code, payload[2:].decode())
    except UnicodeDecodeError:
        return Failed(INVALID_DATA, "Close reason is not valid UTF-8")
