"""Reading client WebSocket frames (RFC 6455 §5): messages, control frames and every failure."""

from __future__ import annotations

import pytest

from ressonance.protocol.websocket import (
    BinaryReceived,
    CloseReceived,
    Failed,
    FrameEvent,
    FrameReader,
    PingReceived,
    TextReceived,
    unmask,
    valid_close_code,
)
from tests.frames import BINARY, CLOSE, MASK, PING, PONG, TEXT, client_frame, close_payload

LIMIT = 70_000


def feed_all(wire: bytes, chunk: int | None = None) -> list[FrameEvent]:
    reader = FrameReader(LIMIT)
    if chunk is None:
        return reader.feed(wire)
    events: list[FrameEvent] = []
    for start in range(0, len(wire), chunk):
        events += reader.feed(wire[start : start + chunk])
    return events


MESSAGES = [
    pytest.param(client_frame(TEXT, b"hi"), [TextReceived("hi")], id="text"),
    pytest.param(client_frame(TEXT), [TextReceived("")], id="empty-text"),
    pytest.param(client_frame(TEXT, "é€😀".encode()), [TextReceived("é€😀")], id="utf8-text"),
    pytest.param(client_frame(TEXT, b"x" * 126), [TextReceived("x" * 126)], id="16-bit-length"),
    pytest.param(client_frame(TEXT, b"x" * 65536), [TextReceived("x" * 65536)], id="64-bit-length"),
    pytest.param(client_frame(BINARY, b"\x00\xff"), [BinaryReceived(b"\x00\xff")], id="binary"),
    pytest.param(client_frame(PING, b"are you there"), [PingReceived(b"are you there")], id="ping"),
    pytest.param(client_frame(PONG, b"yes"), [], id="pong-ignored"),
    pytest.param(
        client_frame(TEXT, b"a", fin=False)
        + client_frame(0, b"b", fin=False)
        + client_frame(0, b"c"),
        [TextReceived("abc")],
        id="fragmented-text",
    ),
    pytest.param(
        client_frame(BINARY, b"\x01", fin=False) + client_frame(0, b"\x02"),
        [BinaryReceived(b"\x01\x02")],
        id="fragmented-binary",
    ),
    pytest.param(
        client_frame(TEXT, "é".encode()[:1], fin=False) + client_frame(0, "é".encode()[1:]),
        [TextReceived("é")],
        id="character-split-over-fragments",
    ),
    pytest.param(
        client_frame(TEXT, b"a", fin=False) + client_frame(PING, b"p") + client_frame(0, b"b"),
        [PingReceived(b"p"), TextReceived("ab")],
        id="ping-inside-fragmented-message",
    ),
    pytest.param(
        client_frame(TEXT, b"1") + client_frame(TEXT, b"2") + client_frame(BINARY, b"3"),
        [TextReceived("1"), TextReceived("2"), BinaryReceived(b"3")],
        id="several-frames",
    ),
    pytest.param(client_frame(CLOSE), [CloseReceived(1005, "")], id="close-without-code"),
    pytest.param(
        client_frame(CLOSE, close_payload(1000, b"bye")),
        [CloseReceived(1000, "bye")],
        id="close-1000",
    ),
    pytest.param(
        client_frame(CLOSE, close_payload(1014)), [CloseReceived(1014, "")], id="close-1014"
    ),
    pytest.param(
        client_frame(CLOSE, close_payload(3000)), [CloseReceived(3000, "")], id="close-3000"
    ),
    pytest.param(
        client_frame(CLOSE, close_payload(4999)), [CloseReceived(4999, "")], id="close-4999"
    ),
    pytest.param(
        client_frame(TEXT, b"a")
        + client_frame(CLOSE, close_payload(1001))
        + client_frame(TEXT, b"after"),
        [TextReceived("a"), CloseReceived(1001, "")],
        id="nothing-after-close",
    ),
    pytest.param(
        client_frame(TEXT, b"x" * LIMIT), [TextReceived("x" * LIMIT)], id="message-at-the-limit"
    ),
]


@pytest.mark.parametrize(("wire", "events"), MESSAGES)
@pytest.mark.parametrize("chunk", [None, 1, 7, 1000], ids=["whole", "bytewise", "by-7", "by-1000"])
def test_messages(wire: bytes, events: list[FrameEvent], chunk: int | None) -> None:
    assert feed_all(wire, chunk) == events


def protocol_error(reason: str) -> Failed:
    return Failed(1002, reason)


FAILURES = [
    pytest.param(
        client_frame(TEXT, b"a", rsv=0x40), protocol_error("Reserved bits must be 0"), id="rsv1"
    ),
    pytest.param(
        client_frame(TEXT, b"a", rsv=0x10), protocol_error("Reserved bits must be 0"), id="rsv3"
    ),
    pytest.param(client_frame(3, b"a"), protocol_error("Unknown opcode 3"), id="opcode-3"),
    pytest.param(client_frame(0xB), protocol_error("Unknown opcode 11"), id="opcode-11"),
    pytest.param(
        client_frame(TEXT, b"a", masked=False),
        protocol_error("Client frames must be masked"),
        id="unmasked",
    ),
    pytest.param(
        client_frame(PING, b"p", fin=False),
        protocol_error("Control frames must not be fragmented"),
        id="fragmented-ping",
    ),
    pytest.param(
        client_frame(PING, b"p" * 126),
        protocol_error("Control frame payload over 125 bytes"),
        id="long-ping",
    ),
    pytest.param(
        client_frame(CLOSE, close_payload(1000, b"r" * 124)),
        protocol_error("Control frame payload over 125 bytes"),
        id="long-close",
    ),
    pytest.param(
        client_frame(0, b"a"),
        protocol_error("Continuation frame outside a message"),
        id="lone-continuation",
    ),
    pytest.param(
        client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"),
        protocol_error("New message inside a fragmented message"),
        id="text-inside-fragmented",
    ),
    pytest.param(
        client_frame(TEXT, b"a", fin=False) + client_frame(BINARY, b"b"),
        protocol_error("New message inside a fragmented message"),
        id="binary-inside-fragmented",
    ),
    pytest.param(
        client_frame(TEXT, b"x" * (LIMIT + 1)),
        Failed(1009, f"Message over {LIMIT} bytes"),
        id="message-over-the-limit",
    ),
    pytest.param(
        client_frame(TEXT, b"x" * 40_000, fin=False) + client_frame(0, b"x" * 40_000),
        Failed(1009, f"Message over {LIMIT} bytes"),
        id="fragments-over-the-limit",
    ),
    pytest.param(
        client_frame(BINARY, length=1 << 63),
        Failed(1009, f"Message over {LIMIT} bytes"),
        id="64-bit-length-with-top-bit",
    ),
    pytest.param(
        client_frame(TEXT, b"\xff"),
        Failed(1007, "Text message is not valid UTF-8"),
        id="invalid-utf8",
    ),
    pytest.param(
        client_frame(TEXT, b"\xc3", fin=False) + client_frame(0, b"(") + client_frame(TEXT, b"a"),
        Failed(1007, "Text message is not valid UTF-8"),
        id="invalid-utf8-over-fragments",
    ),
    pytest.param(
        client_frame(CLOSE, b"\x03"),
        protocol_error("Close frame with a 1-byte payload"),
        id="close-1-byte",
    ),
    pytest.param(
        client_frame(CLOSE, close_payload(1000, b"\xff")),
        Failed(1007, "Close reason is not valid UTF-8"),
        id="close-reason-invalid-utf8",
    ),
    *(
        pytest.param(
            client_frame(CLOSE, close_payload(code)),
            protocol_error(f"Invalid close code {code}"),
            id=f"close-code-{code}",
        )
        for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535)
    ),
]


@pytest.mark.parametrize(("wire", "failure"), FAILURES)
@pytest.mark.parametrize("chunk", [None, 1, 5], ids=["whole", "bytewise", "by-5"])
def test_failures(wire: bytes, failure: Failed, chunk: int | None) -> None:
    events = feed_all(wire, chunk)

    assert events[-1] == failure
    assert all(not isinstance(event, Failed) for event in events[:-1])


def test_events_before_a_failure_are_kept_and_nothing_after() -> None:
    reader = FrameReader(LIMIT)

    events = reader.feed(client_frame(TEXT, b"ok") + client_frame(3) + client_frame(TEXT, b"later"))

    assert events == [TextReceived("ok"), protocol_error("Unknown opcode 3")]
    assert reader.feed(client_frame(TEXT, b"more")) == []
    assert reader.buffered == 0


def test_nothing_is_read_after_a_close() -> None:
    reader = FrameReader(LIMIT)
    reader.feed(client_frame(CLOSE))

    assert reader.feed(client_frame(TEXT, b"a")) == []


def test_the_size_limit_is_checked_from_the_header_before_the_payload_arrives() -> None:
    reader = FrameReader(LIMIT)
    header = client_frame(TEXT, length=LIMIT + 1)  # no payload at all

    assert reader.feed(header) == [Failed(1009, f"Message over {LIMIT} bytes")]


@pytest.mark.parametrize(
    ("wire", "held"),
    [
        pytest.param(b"", 0, id="nothing"),
        pytest.param(client_frame(TEXT, b"abc")[:1], 1, id="first-header-byte"),
        pytest.param(client_frame(TEXT, b"abc")[:-1], 8, id="all-but-one-byte"),
        pytest.param(client_frame(TEXT, b"abc"), 0, id="whole-frame"),
        pytest.param(client_frame(TEXT, b"ab", fin=False), 2, id="one-fragment"),
        pytest.param(
            client_frame(TEXT, b"ab", fin=False) + client_frame(0, b"c")[:3],
            5,
            id="fragment-and-part",
        ),
    ],
)
def test_buffered_counts_partial_frames_and_fragments(wire: bytes, held: int) -> None:
    reader = FrameReader(LIMIT)
    reader.feed(wire)

    assert reader.buffered == held


def test_a_long_payload_in_small_chunks_is_parsed_once_complete() -> None:
    reader = FrameReader(LIMIT)
    wire = client_frame(TEXT, b"y" * 60_000)
    events: list[FrameEvent] = []
    for start in range(0, len(wire) - 1, 4096):
        events += reader.feed(wire[start : min(start + 4096, len(wire) - 1)])

    assert events == []
    assert reader.feed(wire[-1:]) == [TextReceived("y" * 60_000)]
    assert reader.buffered == 0


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        (999, False),
        (1000, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1014, True),
        (1015, False),
        (2999, False),
        (3000, True),
        (4999, True),
        (5000, False),
    ],
)
def test_valid_close_code(code: int, valid: bool) -> None:
    assert valid_close_code(code) is valid


@pytest.mark.parametrize("payload", [b"", b"a", b"abcd", b"abcde", bytes(range(256)) * 3])
def test_unmask_is_its_own_inverse_and_xors_the_repeated_key(payload: bytes) -> None:
    masked = unmask(payload, MASK)

    assert unmask(masked, MASK) == payload
    assert masked == bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


# --- the read budget and the frame count ---------------------------------------------------


def pings(count: int) -> bytes:
    return b"".join(client_frame(PING, str(index).encode()) for index in range(count))


def test_frames_counts_every_frame_parsed_events_or_not() -> None:
    reader = FrameReader(LIMIT)
    wire = (
        client_frame(PONG)
        + client_frame(TEXT, b"a", fin=False)
        + client_frame(PING)
        + client_frame(0, b"b")
    )

    assert reader.feed(wire) == [PingReceived(b""), TextReceived("ab")]
    assert reader.frames == 4
    assert not reader.backlog


def test_a_read_parses_at_most_max_frames_and_holds_the_rest() -> None:
    reader = FrameReader(LIMIT)
    wire = pings(7)

    assert reader.feed(wire, 3) == [PingReceived(b"0"), PingReceived(b"1"), PingReceived(b"2")]
    assert (reader.frames, reader.backlog) == (3, True)
    assert reader.buffered == len(wire) - 3 * len(client_frame(PING, b"0"))

    assert reader.feed(b"", 3) == [PingReceived(b"3"), PingReceived(b"4"), PingReceived(b"5")]
    assert reader.backlog
    assert reader.feed(b"", 3) == [PingReceived(b"6")]
    assert (reader.frames, reader.backlog, reader.buffered) == (1, False, 0)


def test_a_budget_of_no_frames_parses_nothing() -> None:
    reader = FrameReader(LIMIT)

    assert reader.feed(pings(2), 0) == []
    assert (reader.frames, reader.backlog) == (0, True)
    assert reader.feed(b"") == [PingReceived(b"0"), PingReceived(b"1")]


def test_a_read_stops_after_the_frame_that_reaches_max_bytes() -> None:
    reader = FrameReader(LIMIT)
    wire = b"".join(client_frame(TEXT, bytes([65 + index]) * 1000) for index in range(4))

    events = reader.feed(wire, max_bytes=1500)  # the second frame crosses 1500 bytes

    assert events == [TextReceived("A" * 1000), TextReceived("B" * 1000)]
    assert reader.backlog
    assert reader.feed(b"", max_bytes=1) == [TextReceived("C" * 1000)]
    assert reader.feed(b"") == [TextReceived("D" * 1000)]


def test_bytes_arriving_behind_held_bytes_are_read_after_them() -> None:
    reader = FrameReader(LIMIT)
    wire = pings(4) + client_frame(TEXT, b"last")
    cut = len(wire) - 3  # the text frame arrives in two parts

    assert reader.feed(wire[:cut], 2) == [PingReceived(b"0"), PingReceived(b"1")]
    assert reader.feed(wire[cut:], 2) == [PingReceived(b"2"), PingReceived(b"3")]
    assert reader.feed(b"", 2) == [TextReceived("last")]
    assert not reader.backlog


def test_a_held_partial_frame_waits_for_the_rest() -> None:
    reader = FrameReader(LIMIT)
    wire = client_frame(PING) + client_frame(TEXT, b"x" * 300)

    assert reader.feed(wire[:-1], 1) == [PingReceived(b"")]
    assert reader.backlog
    assert reader.feed(b"", 1) == []  # the text frame is one byte short
    assert (reader.frames, reader.backlog) == (0, False)
    assert reader.feed(b"", 1) == []  # still short: not parsed again
    assert reader.feed(wire[-1:], 1) == [TextReceived("x" * 300)]


def test_a_header_that_fails_is_no_frame() -> None:
    reader = FrameReader(LIMIT)

    assert reader.feed(client_frame(PING) + client_frame(3)) == [
        PingReceived(b""),
        protocol_error("Unknown opcode 3"),
    ]
    assert reader.frames == 1


def test_a_close_ends_a_budgeted_read_and_drops_what_was_held() -> None:
    reader = FrameReader(LIMIT)
    reader.feed(pings(2) + client_frame(CLOSE) + pings(3), 1)

    assert reader.feed(b"", 5) == [PingReceived(b"1"), CloseReceived(1005, "")]
    assert (reader.frames, reader.backlog, reader.buffered) == (2, False, 0)
    assert reader.feed(b"", 5) == []
