"""A connection's first frame, ping/pong, and frames that are not Pusher messages (§2.1).

Every frame is checked as the client receives it: decoded JSON, and raw bytes where the
double encoding matters (§0.1). Liveness timers are in test_liveness.py.
"""

from __future__ import annotations

import orjson
import pytest

from ressonance.protocol.connection import Connection

from .wire import (
    PONG,
    SOCKET_ID,
    T0,
    Frame,
    connect,
    error,
    frames,
    make_app,
)


@pytest.mark.parametrize("activity_timeout", [120, 30])
def test_connection_established_is_the_first_frame(activity_timeout: int) -> None:
    conn = Connection(make_app(activity_timeout=activity_timeout), SOCKET_ID, T0)

    [frame] = conn.data_to_send()

    # data is a JSON string holding socket_id and a positive activity_timeout (§0.1, §0.3).
    assert frame == (
        b'{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1234.1234\\",'
        b'\\"activity_timeout\\":%d}"}' % activity_timeout
    )
    data = orjson.loads(frame)["data"]
    assert isinstance(data, str)
    assert orjson.loads(data) == {"socket_id": SOCKET_ID, "activity_timeout": activity_timeout}
    assert conn.data_to_send() == []


@pytest.mark.parametrize(
    "ping",
    [
        '{"event":"pusher:ping","data":{}}',  # pusher-js
        '{"event":"pusher:ping","data":"{}"}',
        '{"event":"pusher:ping"}',
    ],
)
def test_ping_is_answered_with_pong(ping: str) -> None:
    conn = connect()

    assert conn.receive(ping, T0) == []
    assert conn.data_to_send() == [b'{"event":"pusher:pong","data":"{}"}']


def test_client_pong_gets_no_answer() -> None:
    conn = connect()

    assert conn.receive('{"event":"pusher:pong","data":{}}', T0) == []
    assert frames(conn) == []


# --- frames that are not Pusher messages ---------------------------------------------------


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        ("not json", error("Invalid JSON: the message could not be parsed")),
        ('{"event":"pusher:ping"', error("Invalid JSON: the message could not be parsed")),
        ("[1,2]", error("Invalid message: expected a JSON object")),
        ("42", error("Invalid message: expected a JSON object")),
        ('{"data":{}}', error("Invalid message: the 'event' property must be a non-empty string")),
        (
            '{"event":null}',
            error("Invalid message: the 'event' property must be a non-empty string"),
        ),
        ('{"event":"pusher:connect"}', error("Unsupported event 'pusher:connect'")),
        (
            '{"event":"pusher_internal:subscription_succeeded"}',
            error("Unsupported event 'pusher_internal:subscription_succeeded'"),
        ),
        ('{"event":"my-event","channel":"my-channel"}', error("Unsupported event 'my-event'")),
        (
            '{"event":"pusher:subscribe","data":"my-channel"}',
            error("Invalid 'data': not valid JSON"),
        ),
        (
            '{"event":"pusher:subscribe","data":null}',
            error("Invalid 'data' for pusher:subscribe: expected an object"),
        ),
        ('{"event":"pusher:subscribe","data":{"auth":""}}', error("'channel' must be a string")),
        (
            '{"event":"pusher:subscribe","data":{"channel":"private-a","auth":7}}',
            error("'auth' must be a string", channel="private-a"),
        ),
        (
            '{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"","channel_data":{"user_id":1}}}',
            error("'channel_data' must be a JSON string", channel="presence-a"),
        ),
        (
            '{"event":"pusher:unsubscribe","data":{"channel":null}}',
            error("'channel' must be a string"),
        ),
        ('{"event":"pusher:signin","data":{"auth":"x"}}', error("'user_data' must be a string")),
        ('{"event":"client-typing","data":{}}', error("Client event without a 'channel'")),
    ],
)
def test_bad_frames_get_a_pusher_error_and_the_connection_stays_open(
    received: str, expected: Frame
) -> None:
    conn = connect()

    assert conn.receive(received, T0) == []
    assert frames(conn) == [expected]
    conn.receive('{"event":"pusher:ping"}', T0)
    assert frames(conn) == [PONG]


def too_large(kb: int) -> str:
    return f"Message too large (max_event_payload_in_kb = {kb}, plus 4 KB)"


def padded_ping(length: int) -> str:
    """A valid pusher:ping frame exactly `length` characters long."""
    head, tail = '{"event":"pusher:ping","data":"', '"}'
    return head + "x" * (length - len(head) - len(tail)) + tail


@pytest.mark.parametrize(
    ("payload_kb", "length", "expected"),
    [
        # The soft limit is the payload limit plus 4 KB of envelope.
        (10, 10 * 1024 + 4096, PONG),
        (10, 10 * 1024 + 4097, error(too_large(10), 4301)),
        (1, 1024 + 4097, error(too_large(1), 4301)),
        (100, 100 * 1024 + 4096, PONG),
    ],
)
def test_oversized_frames_are_refused_before_parsing(
    payload_kb: int, length: int, expected: Frame
) -> None:
    conn = connect(make_app(max_event_payload_in_kb=payload_kb))

    assert conn.receive(padded_ping(length), T0) == []
    assert frames(conn) == [expected]


def test_oversized_garbage_is_not_parsed() -> None:
    conn = connect()

    conn.receive("{" * (10 * 1024 + 4097), T0)

    assert frames(conn) == [error(too_large(10), 4301)]
