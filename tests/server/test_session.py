"""A session: what the protocol core queues goes out as text frames, within a buffer bound."""

from __future__ import annotations

from ressonance.protocol import messages as m
from ressonance.protocol.connection import Connection
from ressonance.protocol.errors import ErrorCode
from ressonance.server.session import Session
from tests.fakes import START_TIME, FakeOutlet
from tests.server.conftest import APP


def new_session(max_buffer_bytes: int = 1000) -> tuple[Session, FakeOutlet]:
    outlet = FakeOutlet()
    session = Session(Connection(APP, "123.456", START_TIME), outlet, max_buffer_bytes)
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
