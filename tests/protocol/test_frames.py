"""Pre-built server text frames (RFC 6455 §5.2): unmasked, FIN + text opcode, 7/16/64-bit length."""

from __future__ import annotations

import pytest

from ressonance.protocol.frames import close_frame, pong_frame, text_frame


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (2, b"\x81\x02"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (70000, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x11\x70"),
    ],
)
def test_text_frame_header(length: int, header: bytes) -> None:
    payload = b"x" * length

    assert text_frame(payload) == header + payload


def test_a_pusher_message_frame_on_the_wire() -> None:
    message = b'{"event":"pusher:pong","data":"{}"}'

    assert text_frame(message) == b"\x81\x23" + message


@pytest.mark.parametrize(
    ("code", "reason", "frame"),
    [
        (4100, "", b"\x88\x02\x10\x04"),
        (4009, "bye", b"\x88\x05\x0f\xa9bye"),
        # cut to 123 bytes, and never in the middle of a UTF-8 character
        (4200, "x" * 200, b"\x88\x7d\x10\x68" + b"x" * 123),
        (4200, "x" * 122 + "é", b"\x88\x7c\x10\x68" + b"x" * 122),
    ],
)
def test_close_frame(code: int, reason: str, frame: bytes) -> None:
    assert close_frame(code, reason) == frame


@pytest.mark.parametrize(
    ("payload", "frame"),
    [(b"", b"\x8a\x00"), (b"hi", b"\x8a\x02hi"), (b"x" * 125, b"\x8a\x7d" + b"x" * 125)],
)
def test_pong_frame(payload: bytes, frame: bytes) -> None:
    assert pong_frame(payload) == frame
