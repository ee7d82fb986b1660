"""Fakes for the server layer: an outlet that records what a client would read, and a clock.

`FakeOutlet` implements `ressonance.server.session.Outlet`. It decodes each WebSocket text
frame back to the JSON message a client would see, so tests assert on messages, not bytes.
`FakeClock` is the injected clock: it only moves when a test advances it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

START_TIME = 1_700_000_000.0

_NO_VALUE: Any = object()


def split_frames(data: bytes) -> list[bytes]:
    """The WebSocket frames of one write (a session may write several back to back)."""
    frames = []
    while data:
        length, offset = data[1] & 0x7F, 2
        if length == 126:
            (length,) = struct.unpack("!H", data[2:4])
            offset = 4
        elif length == 127:
            (length,) = struct.unpack("!Q", data[2:10])
            offset = 10
        assert len(data) >= offset + length, f"frame says {length} bytes, carries fewer"
        frames.append(data[: offset + length])
        data = data[offset + length :]
    return frames


def decode_text_frame(frame: bytes) -> dict[str, Any]:
    """The JSON message of one unmasked, final WebSocket text frame (RFC 6455 §5.2)."""
    assert frame[0] == 0x81, f"not a final text frame: first byte {frame[0]:#x}"
    assert not frame[1] & 0x80, "a server frame must not be masked"
    length, offset = frame[1] & 0x7F, 2
    if length == 126:
        (length,) = struct.unpack("!H", frame[2:4])
        offset = 4
    elif length == 127:
        (length,) = struct.unpack("!Q", frame[2:10])
        offset = 10
    payload = frame[offset:]
    assert len(payload) == length, f"frame says {length} bytes, carries {len(payload)}"
    message = json.loads(payload)
    assert isinstance(message, dict), f"not a JSON object: {message!r}"
    return message


def decoded_data(message: dict[str, Any]) -> Any:
    """A message's `data` as a client library sees it: JSON strings parsed, others as is."""
    data = message.get("data")
    if isinstance(data, str):
        try:
            return json.loads(data)
        except ValueError:
            return data
    return data


class FakeOutlet:
    """Records the frames a session writes and how it was closed.

    `buffered_bytes` is what `buffered()` reports: set it to simulate a client that does
    not read (its bytes pile up in the kernel and the transport's buffer). `writes` is what
    each `write()` got; `frames` the WebSocket frames in them, one by one.

    `settle` (a node's `flush`) runs before anything is read: a node writes fanout frames at
    the end of the event-loop turn, which has always happened by the time a real client
    could read them; settling stands for that end of turn, deterministically.
    """

    def __init__(self, settle: Callable[[], None] | None = None) -> None:
        self._writes: list[bytes] = []
        self._frames: list[bytes] = []
        self.buffered_bytes = 0
        self._close_code: int | None = None
        self._close_reason: str | None = None
        self._close_calls = 0
        self._settle = settle

    def settle(self) -> None:
        if self._settle is not None:
            self._settle()

    @property
    def writes(self) -> list[bytes]:
        self.settle()
        return self._writes

    @property
    def frames(self) -> list[bytes]:
        self.settle()
        return self._frames

    @property
    def close_code(self) -> int | None:
        self.settle()
        return self._close_code

    @property
    def close_reason(self) -> str | None:
        self.settle()
        return self._close_reason

    @property
    def close_calls(self) -> int:
        self.settle()
        return self._close_calls

    # --- Outlet ---------------------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        assert self._close_code is None, "wrote a frame after closing"
        self._writes.append(frame)
        self._frames.extend(split_frames(frame))

    def buffered(self) -> int:
        return self.buffered_bytes

    def close(self, code: int, reason: str) -> None:
        self._close_calls += 1
        if self._close_code is None:
            self._close_code = code
            self._close_reason = reason

    # --- what the client saw --------------------------------------------------------------

    def messages(self) -> list[dict[str, Any]]:
        """Every message received since the last `clear()`, in order."""
        return [decode_text_frame(frame) for frame in self.frames]

    def events(self) -> list[str]:
        return [message["event"] for message in self.messages()]

    def received(
        self, event: str, channel: str | None = None, data: Any = _NO_VALUE
    ) -> list[dict[str, Any]]:
        """Messages of `event` (and `channel`, and `data` raw or decoded, when given)."""
        found = []
        for message in self.messages():
            if message["event"] != event:
                continue
            if channel is not None and message.get("channel") != channel:
                continue
            if data is not _NO_VALUE and data not in (message.get("data"), decoded_data(message)):
                continue
            found.append(message)
        return found

    def clear(self) -> None:
        self.settle()
        self._writes.clear()
        self._frames.clear()

    # --- assertions -----------------------------------------------------------------------

    def assert_received(
        self, event: str, channel: str | None = None, data: Any = _NO_VALUE
    ) -> dict[str, Any]:
        """Assert exactly one matching message arrived; return it."""
        found = self.received(event, channel, data)
        assert len(found) == 1, (
            f"expected one {event!r} (channel={channel!r}, data={data!r}), "
            f"got {len(found)} in {self.messages()!r}"
        )
        return found[0]

    def assert_not_received(self, event: str, channel: str | None = None) -> None:
        found = self.received(event, channel)
        assert not found, f"did not expect {event!r}, got {found!r}"

    def assert_nothing_received(self) -> None:
        assert not self.frames, f"expected nothing, got {self.messages()!r}"

    def assert_closed(self, code: int) -> None:
        assert self.close_code == code, f"expected close {code}, got {self.close_code}"

    def assert_open(self) -> None:
        assert self.close_code is None, f"closed with {self.close_code} ({self.close_reason})"


class FakeClock:
    """A clock that stands still until advanced; pass it where a `() -> float` is injected."""

    def __init__(self, now: float = START_TIME) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
