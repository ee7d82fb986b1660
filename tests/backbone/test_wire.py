"""The backbone wire format (backbone/wire.py): exact bytes, round trips, and refusals."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

from ressonance.backbone.base import BackboneMessage
from ressonance.backbone.wire import VERSION, WireError, decode_message, encode_message
from ressonance.protocol.frames import text_frame

FRAME = text_frame(b'{"event":"e","channel":"c","data":"{}"}')


def test_the_layout_is_a_fixed_header_then_fields_then_the_frame() -> None:
    message = BackboneMessage("1:news", b"FRAME", "12.34", "node-a", 4009)

    data = encode_message(message)

    assert (
        data
        == (struct.pack("!BBHHBB", VERSION, 0b11, 4009, 6, 6, 5) + b"1:news" + b"node-a" + b"12.34")
        + b"FRAME"
    )


def test_absent_optional_fields_take_no_bytes() -> None:
    data = encode_message(BackboneMessage("1:news", b"FRAME"))

    assert data == struct.pack("!BBHHBB", VERSION, 0, 0, 6, 0, 0) + b"1:news" + b"FRAME"


@pytest.mark.parametrize(
    "message",
    [
        BackboneMessage("1:news", FRAME),
        BackboneMessage("1:presence-room.a#b@c,d;e=f", FRAME, "123.456", "3f2a9c1e0b7d4a65"),
        BackboneMessage("1:#watchlist-user 1", FRAME, None, "n", 4009),
        BackboneMessage("1:private-ça-été", b"", "", "", 0),  # empty, not absent
        BackboneMessage("9:" + "x" * 1000, bytes(range(256)) * 300, "1.2", "o", 0xFFFF),
    ],
    ids=["plain", "punctuation", "close code", "empty values", "large"],
)
def test_a_message_survives_the_round_trip(message: BackboneMessage) -> None:
    assert decode_message(encode_message(message)) == message


@given(
    topic=st.text(max_size=300),
    frame=st.binary(max_size=2000),
    except_socket_id=st.none() | st.text(max_size=60),
    origin=st.text(max_size=60),
    close_code=st.none() | st.integers(0, 0xFFFF),
)
def test_every_message_survives_the_round_trip(
    topic: str, frame: bytes, except_socket_id: str | None, origin: str, close_code: int | None
) -> None:
    message = BackboneMessage(topic, frame, except_socket_id, origin, close_code)

    assert decode_message(encode_message(message)) == message


GOOD = encode_message(BackboneMessage("1:news", FRAME, "1.2", "node"))


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "shorter than the header"),
        (GOOD[:7], "shorter than the header"),
        (bytes([VERSION + 1]) + GOOD[1:], "version 2"),
        (GOOD[:8] + b"1:ne", "shorter than its field lengths"),
        (struct.pack("!BBHHBB", VERSION, 0, 0, 2, 0, 0) + b"\xff\xfe", "not UTF-8"),
    ],
    ids=["empty", "short header", "newer version", "truncated fields", "not utf-8"],
)
def test_what_is_not_a_message_is_refused(data: bytes, complaint: str) -> None:
    with pytest.raises(WireError, match=complaint):
        decode_message(data)


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        (BackboneMessage("t" * 0x10000, b""), "topic is 65536 bytes"),
        (BackboneMessage("t", b"", None, "o" * 256), "fit in 255 bytes"),
        (BackboneMessage("t", b"", "s" * 256), "fit in 255 bytes"),
        (BackboneMessage("t", b"", None, "", 0x10000), "does not fit in 16 bits"),
        (BackboneMessage("t", b"", None, "", -1), "does not fit in 16 bits"),
    ],
    ids=["long topic", "long origin", "long socket id", "big close code", "negative close code"],
)
def test_what_does_not_fit_is_refused_when_encoding(
    message: BackboneMessage, complaint: str
) -> None:
    with pytest.raises(WireError, match=complaint):
        encode_message(message)


def test_a_wire_error_is_a_value_error() -> None:
    assert issubclass(WireError, ValueError)
