"""A session: what the protocol core queues goes out as text frames, within a buffer bound."""

from __future__ import annotations

import dataclasses

from ressonance.protocol import messages as m
from ressonance.protocol.connection import Connection
from ressonance.protocol.errors import ErrorCode
from ressonance.server.session import OutputLimits, Session
from tests.fakes import START_TIME, FakeOutlet
from tests.server.conftest import APP


def new_session(
    max_buffer_bytes: int = 1000, max_buffer_messages: int = 100
) -> tuple[Session, FakeOutlet]:
    outlet = FakeOutlet()
    limits = OutputLimits(max_buffer_bytes, max_buffer_messages)
    session = Session(Connection(APP, "123.456", START_TIME), outlet, limits)
    return session, outlet


def test_flush_sends_each_queued_message_as_one_text_frame_in_order() -> None:
    session, outlet = new_session()

    session.flush()
    session.connection.send(m.PONG_MESSAGE)
    session.flush()

    assert outlet.messages() == [
        {
            "event": "pusher:connection_established",
            "data": '{"socket_id":"123.456","activity_timeout":120}',
        },
        {"event": "pusher:pong", "data": "{}"},
    ]
    session.flush()
    assert len(outlet.frames) == 2  # nothing queued twice


def test_session_takes_its_socket_id_from_the_connection() -> None:
    session, _ = new_session()

    assert session.socket_id == "123.456"
    assert session.topics == set()
    assert not session.closed


def test_error_sends_a_pusher_error_with_code_and_channel() -> None:
    session, outlet = new_session()

    session.error("Too fast", ErrorCode.CLIENT_EVENT_REJECTED, "private-chat")
    session.error("Just so you know", None)

    assert outlet.messages() == [
        {
            "event": "pusher:error",
            "channel": "private-chat",
            "data": {"code": 4301, "message": "Too fast"},
        },
        {"event": "pusher:error", "data": {"code": None, "message": "Just so you know"}},
    ]
    outlet.assert_open()


def test_a_client_over_the_buffer_limit_is_closed_with_4100_and_gets_nothing_more() -> None:
    session, outlet = new_session(max_buffer_bytes=1000)
    session.send(b'{"event":"a"}')
    outlet.buffered_bytes = 1001

    session.send(b'{"event":"b"}')
    outlet.buffered_bytes = 0
    session.send(b'{"event":"c"}')

    assert outlet.events() == ["a"]
    outlet.assert_closed(ErrorCode.OVER_CAPACITY)
    assert session.closed


def test_a_client_at_the_buffer_limit_still_receives() -> None:
    session, outlet = new_session(max_buffer_bytes=1000)
    outlet.buffered_bytes = 1000

    session.send(b'{"event":"a"}')

    outlet.assert_received("a")
    outlet.assert_open()


def test_close_is_idempotent_and_keeps_the_first_code() -> None:
    session, outlet = new_session()

    session.close(ErrorCode.UNAUTHORIZED, "Terminated")
    session.close(ErrorCode.GENERIC_RECONNECT, "Shutting down")
    session.send(b'{"event":"late"}')

    outlet.assert_closed(ErrorCode.UNAUTHORIZED)
    assert outlet.close_reason == "Terminated"
    assert outlet.close_calls == 1
    outlet.assert_nothing_received()


def test_large_messages_use_extended_frame_lengths() -> None:
    session, outlet = new_session(max_buffer_bytes=1 << 30)
    medium = "x" * 1000
    large = "y" * 70_000

    session.send(m.encode("e", medium))
    session.send(m.encode("e", large))

    assert [message["data"] for message in outlet.messages()] == [medium, large]


# --- output limits and the slow-client policy ------------------------------------------------

DROP_OLDEST = dataclasses.replace(APP, slow_client_policy="drop_oldest")


def drop_oldest_session(
    max_buffer_bytes: int = 1000, max_buffer_messages: int = 3
) -> tuple[Session, FakeOutlet]:
    outlet = FakeOutlet()
    limits = OutputLimits(max_buffer_bytes, max_buffer_messages)
    session = Session(Connection(DROP_OLDEST, "123.456", START_TIME), outlet, limits)
    session.flush()  # connection_established
    outlet.clear()
    return session, outlet


def event(name: str) -> bytes:
    return m.encode(name, {})


def test_the_message_limit_closes_a_client_whose_buffer_never_empties() -> None:
    session, outlet = new_session(max_buffer_bytes=1 << 20, max_buffer_messages=3)
    outlet.buffered_bytes = 10  # a little is always waiting: the client reads, but too slowly

    for name in ["a", "b", "c", "d"]:
        session.send(event(name))

    assert outlet.events() == ["a", "b", "c"]
    outlet.assert_closed(ErrorCode.OVER_CAPACITY)
    assert outlet.close_reason == "Client is not reading fast enough"
    assert session.counters.slow_disconnects == 1


def test_the_message_count_starts_again_whenever_the_buffer_is_seen_empty() -> None:
    session, outlet = new_session(max_buffer_bytes=1 << 20, max_buffer_messages=3)

    for round_ in range(3):
        outlet.buffered_bytes = 10
        for index in range(3):
            session.send(event(f"{round_}-{index}"))
        outlet.buffered_bytes = 0  # the kernel took everything
        session.send(event(f"{round_}-drained"))

    assert len(outlet.events()) == 12
    outlet.assert_open()
    assert session.counters.slow_disconnects == 0


def test_drop_oldest_holds_frames_instead_of_closing() -> None:
    session, outlet = drop_oldest_session(max_buffer_bytes=1000)
    session.send(event("a"))
    outlet.buffered_bytes = 1001

    session.send(event("b"))
    session.send(event("c"))

    outlet.assert_open()
    assert outlet.events() == ["a"]  # nothing more reached the transport
    assert session.held == 2


def test_drop_oldest_keeps_at_most_the_message_limit_and_counts_what_it_drops() -> None:
    session, outlet = drop_oldest_session(max_buffer_messages=3)
    outlet.buffered_bytes = 1001

    for name in ["a", "b", "c", "d", "e", "f"]:
        session.send(event(name))

    assert session.held == 3
    assert session.counters.dropped == 3
    outlet.buffered_bytes = 0
    session.send(event("g"))  # the next write finds the transport drained

    assert outlet.events() == ["d", "e", "f", "g"]  # the newest three held, then "g"
    assert session.counters.dropped == 3
    assert len(outlet.writes) == 1  # the held frames left in one write
    assert session.held == 0


def test_drop_oldest_keeps_at_most_the_byte_limit() -> None:
    big = "x" * 300
    session, outlet = drop_oldest_session(max_buffer_bytes=1000, max_buffer_messages=100)
    outlet.buffered_bytes = 1001

    for index in range(10):
        session.send(m.encode(f"e{index}", big))

    assert session.held == 3  # three ~320-byte frames fit in 1000 bytes, four do not
    assert session.counters.dropped == 7
    outlet.buffered_bytes = 0
    session.flush()
    assert outlet.events() == ["e7", "e8", "e9"]


def test_drop_oldest_always_keeps_the_newest_frame_even_when_it_alone_is_too_big() -> None:
    session, outlet = drop_oldest_session(max_buffer_bytes=100)
    outlet.buffered_bytes = 101

    session.send(m.encode("huge", "x" * 500))

    assert session.held == 1
    outlet.buffered_bytes = 0
    session.flush()
    outlet.assert_received("huge")


def test_held_frames_are_released_by_flush_once_the_transport_drains() -> None:
    session, outlet = drop_oldest_session()
    outlet.buffered_bytes = 1001
    session.send(event("a"))

    session.flush()  # the timer sweep: still not drained
    assert outlet.events() == []
    outlet.buffered_bytes = 0
    session.flush()

    assert outlet.events() == ["a"]
    assert session.held == 0


def test_after_a_release_the_released_frames_count_towards_the_message_limit() -> None:
    session, outlet = drop_oldest_session(max_buffer_messages=3)
    outlet.buffered_bytes = 1001
    for name in ["a", "b", "c"]:
        session.send(event(name))
    outlet.buffered_bytes = 0

    outlet.write = lambda frame: (  # type: ignore[method-assign]
        FakeOutlet.write(outlet, frame),
        setattr(outlet, "buffered_bytes", 10),  # the kernel took none of it
    )
    session.flush()
    session.send(event("d"))  # three frames still queued: over the message limit again

    assert outlet.events() == ["a", "b", "c"]
    assert session.held == 1
    outlet.assert_open()


def test_closing_a_drop_oldest_session_discards_what_it_held() -> None:
    session, outlet = drop_oldest_session()
    outlet.buffered_bytes = 1001
    session.send(event("a"))

    session.close(ErrorCode.GENERIC_RECONNECT, "Restarting")
    outlet.buffered_bytes = 0
    session.flush()

    assert session.held == 0
    outlet.assert_nothing_received()
    outlet.assert_closed(ErrorCode.GENERIC_RECONNECT)


def test_a_session_counts_the_frames_it_sends_itself() -> None:
    session, outlet = new_session()

    session.flush()  # connection_established
    session.send(event("a"))

    assert session.counters.messages_out == 2
    assert session.counters.bytes_out == sum(len(frame) for frame in outlet.frames)
