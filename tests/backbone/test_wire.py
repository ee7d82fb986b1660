"""The backbone wire format (backbone/wire.py): exact bytes, round trips, and refusals.

Version 2 is written; version 1 (what nodes before it wrote) is still read, and still
written when asked, so both are checked alike.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

from ressonance.backbone.base import BackboneMessage, Topic
from ressonance.backbone.wire import (
    PREVIOUS_VERSION,
    VERSION,
    WireError,
    decode_message,
    encode_message,
)
from ressonance.protocol.frames import text_frame

FRAME = text_frame(b'{"event":"e","channel":"c","data":"{}"}')
NEWS = Topic("1", "news")
VERSIONS = [VERSION, PREVIOUS_VERSION]


def test_the_versions_are_2_written_and_1_still_read() -> None:
    assert (VERSION, PREVIOUS_VERSION) == (2, 1)


def test_the_layout_is_a_fixed_header_then_fields_then_the_frame() -> None:
    message = BackboneMessage(NEWS, b"FRAME", "12.34", "node-a", 4009)

    data = encode_message(message)

    header = struct.pack("!BBHHHBB", 2, 0b11, 4009, 1, 4, 6, 5)
    assert data == header + b"1" + b"news" + b"node-a" + b"12.34" + b"FRAME"


def test_the_layout_of_version_1_has_one_topic_field() -> None:
    message = BackboneMessage(NEWS, b"FRAME", "12.34", "node-a", 4009)

    data = encode_message(message, PREVIOUS_VERSION)

    header = struct.pack("!BBHHBB", 1, 0b11, 4009, 6, 6, 5)
    assert data == header + b"1:news" + b"node-a" + b"12.34" + b"FRAME"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (2, struct.pack("!BBHHHBB", 2, 0, 0, 1, 4, 0, 0) + b"1news" + b"FRAME"),
        (1, struct.pack("!BBHHBB", 1, 0, 0, 6, 0, 0) + b"1:news" + b"FRAME"),
    ],
)
def test_absent_optional_fields_take_no_bytes(version: int, expected: bytes) -> None:
    assert encode_message(BackboneMessage(NEWS, b"FRAME"), version) == expected


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "message",
    [
        BackboneMessage(NEWS, FRAME),
        BackboneMessage(Topic("1", "presence-room.a#b@c,d;e=f:g"), FRAME, "123.456", "3f2a9c1e"),
        BackboneMessage(Topic("1", "#watchlist-user 1"), FRAME, None, "n", 4009),
        BackboneMessage(Topic("1", "private-ça-été"), b"", "", "", 0),  # empty, not absent
        BackboneMessage(Topic("", ""), b"", None, ""),
        BackboneMessage(Topic("9", "x" * 1000), bytes(range(256)) * 300, "1.2", "o", 0xFFFF),
    ],
    ids=["plain", "punctuation", "close code", "empty values", "empty topic", "large"],
)
def test_a_message_survives_the_round_trip(message: BackboneMessage, version: int) -> None:
    assert decode_message(encode_message(message, version)) == message


@given(
    version=st.sampled_from(VERSIONS),
    app_id=st.text(max_size=30).filter(lambda text: ":" not in text),
    channel=st.text(max_size=300),
    frame=st.binary(max_size=2000),
    except_socket_id=st.none() | st.text(max_size=60),
    origin=st.text(max_size=60),
    close_code=st.none() | st.integers(0, 0xFFFF),
)
def test_every_message_survives_the_round_trip(
    version: int,
    app_id: str,
    channel: str,
    frame: bytes,
    except_socket_id: str | None,
    origin: str,
    close_code: int | None,
) -> None:
    message = BackboneMessage(Topic(app_id, channel), frame, except_socket_id, origin, close_code)

    assert decode_message(encode_message(message, version)) == message


def test_an_app_id_with_a_colon_survives_version_2() -> None:
    message = BackboneMessage(Topic("a:b", "c"), FRAME)

    assert decode_message(encode_message(message)) == message


GOOD = encode_message(BackboneMessage(NEWS, FRAME, "1.2", "node"))
GOOD_V1 = encode_message(BackboneMessage(NEWS, FRAME, "1.2", "node"), PREVIOUS_VERSION)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "shorter than the header"),
        (GOOD[:9], "shorter than the header"),
        (GOOD_V1[:7], "shorter than the header"),
        (bytes([VERSION + 1]) + GOOD[1:], "version 3; this node reads 1 and 2"),
        (bytes([0]) + GOOD[1:], "version 0"),
        (GOOD[:10] + b"1ne", "shorter than its field lengths"),
        (GOOD_V1[:8] + b"1:ne", "shorter than its field lengths"),
        (struct.pack("!BBHHHBB", 2, 0, 0, 2, 0, 0, 0) + b"\xff\xfe", "not UTF-8"),
        (struct.pack("!BBHHHBB", 2, 0, 0, 0, 2, 0, 0) + b"\xff\xfe", "not UTF-8"),
        (struct.pack("!BBHHHBB", 2, 0, 0, 0, 0, 2, 0) + b"\xff\xfe", "not UTF-8"),
        (struct.pack("!BBHHBB", 1, 0, 0, 2, 0, 0) + b"\xff\xfe", "not UTF-8"),
        (struct.pack("!BBHHBB", 1, 0, 0, 4, 0, 0) + b"news", "no ':' between app id and"),
    ],
    ids=[
        "empty",
        "short header",
        "short header v1",
        "newer version",
        "unknown version",
        "truncated fields",
        "truncated fields v1",
        "app id not utf-8",
        "channel not utf-8",
        "origin not utf-8",
        "topic not utf-8 v1",
        "topic without app v1",
    ],
)
def test_what_is_not_a_message_is_refused(data: bytes, complaint: str) -> None:
    with pytest.raises(WireError, match=complaint):
        decode_message(data)


@pytest.mark.parametrize(
    ("message", "version", "complaint"),
    [
        (BackboneMessage(Topic("1", "t" * 0x10000), b""), 2, "field is 65536 bytes"),
        (BackboneMessage(Topic("1" * 0x10000, "t"), b""), 2, "field is 65536 bytes"),
        (BackboneMessage(Topic("1", "t" * 0xFFFE), b""), 1, "field is 65536 bytes"),
        (BackboneMessage(Topic("a:b", "t"), b""), 1, "which version 1 cannot carry"),
        (BackboneMessage(NEWS, b"", None, "o" * 256), 2, "fit in 255 bytes"),
        (BackboneMessage(NEWS, b"", "s" * 256), 2, "fit in 255 bytes"),
        (BackboneMessage(NEWS, b"", None, "", 0x10000), 2, "does not fit in 16 bits"),
        (BackboneMessage(NEWS, b"", None, "", -1), 2, "does not fit in 16 bits"),
        (BackboneMessage(NEWS, b""), 3, "version 3 is not 1 or 2"),
    ],
    ids=[
        "long channel",
        "long app id",
        "long topic v1",
        "app id with a colon v1",
        "long origin",
        "long socket id",
        "big close code",
        "negative close code",
        "unknown version",
    ],
)
def test_what_does_not_fit_is_refused_when_encoding(
    message: BackboneMessage, version: int, complaint: str
) -> None:
    with pytest.raises(WireError, match=complaint):
        encode_message(message, version)


def test_a_wire_error_is_a_value_error() -> None:
    assert issubclass(WireError, ValueError)
