"""Pre-built server text frames (RFC 6455 §5.2): unmasked, FIN + text opcode, 7/16/64-bit length."""

from __future__ import annotations

import pytest

from ressonance.protocol.frames import text_frame


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
