"""poll(now): ping after activity_timeout, 4201 with no pong, 4009 with no sign-in (§2.1, §2.5)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ressonance.protocol.errors import ErrorCode

from .wire import (
    PING,
    T0,
    Frame,
    connect,
    error,
    frames,
    join,
    make_app,
    signed_subscribe,
    signin,
    subscribe,
)

Step = tuple[str, float, object, object]


def poll(at: float, code: ErrorCode | None = None, sent: Sequence[Frame] = ()) -> Step:
    """At `at`, poll() returns `code` and the connection has queued `sent`."""
    return ("poll", at, code, list(sent))


def recv(at: float, message: str) -> Step:
    return ("recv", at, message, None)


def joined(at: float, channel: str) -> Step:
    return ("join", at, channel, None)


PONG_TEXT = '{"event":"pusher:pong","data":{}}'
NOT_AUTHORIZED = error("Connection not authorized within timeout", 4009)


@pytest.mark.parametrize(
    ("settings", "steps"),
    [
        pytest.param({}, [poll(T0 + 119)], id="quiet-before-activity-timeout"),
        pytest.param({}, [poll(T0 + 120, None, [PING])], id="ping-after-activity-timeout"),
        pytest.param(
            {"activity_timeout": 30}, [poll(T0 + 29), poll(T0 + 30, None, [PING])], id="app-timeout"
        ),
        pytest.param(
            {}, [poll(T0 + 120, None, [PING]), poll(T0 + 149)], id="one-ping-while-waiting"
        ),
        pytest.param(
            {},
            [poll(T0 + 120, None, [PING]), poll(T0 + 150, ErrorCode.PONG_NOT_RECEIVED)],
            id="4201-without-pong",
        ),
        pytest.param(
            {},
            [
                poll(T0 + 120, None, [PING]),
                recv(T0 + 130, PONG_TEXT),
                poll(T0 + 160),
                poll(T0 + 249),
                poll(T0 + 250, None, [PING]),
            ],
            id="pong-resets-the-timer",
        ),
        # Any message counts as activity, not just pong.
        pytest.param(
            {},
            [
                recv(T0 + 100, subscribe("my-channel")),
                poll(T0 + 219),
                poll(T0 + 220, None, [PING]),
                recv(T0 + 240, "garbage"),
                poll(T0 + 269),
            ],
            id="any-message-is-activity",
        ),
        pytest.param(
            {"enable_user_authentication": True},
            [poll(T0 + 29), poll(T0 + 30, ErrorCode.UNAUTHORIZED, [NOT_AUTHORIZED])],
            id="4009-without-signin",
        ),
        pytest.param(
            {"enable_user_authentication": True, "user_authentication_timeout": 5},
            [poll(T0 + 4), poll(T0 + 5, ErrorCode.UNAUTHORIZED, [NOT_AUTHORIZED])],
            id="4009-app-timeout",
        ),
        pytest.param(
            {"enable_user_authentication": True},
            [recv(T0 + 10, signin('{"id":"42"}')), poll(T0 + 30), poll(T0 + 60)],
            id="signed-in-in-time",
        ),
        pytest.param(
            {"enable_user_authentication": True},
            [joined(T0 + 10, "private-a"), poll(T0 + 30)],
            id="joined-private-in-time",
        ),
        pytest.param(
            {"enable_user_authentication": True},
            [joined(T0 + 10, "presence-room"), poll(T0 + 30)],
            id="joined-presence-in-time",
        ),
        pytest.param(
            {"enable_user_authentication": True},
            [
                joined(T0 + 10, "my-channel"),
                poll(T0 + 30, ErrorCode.UNAUTHORIZED, [NOT_AUTHORIZED]),
            ],
            id="public-channel-is-not-enough",
        ),
        pytest.param(
            {"enable_user_authentication": True},
            [
                recv(T0 + 10, signed_subscribe("private-a")),
                poll(T0 + 30, ErrorCode.UNAUTHORIZED, [NOT_AUTHORIZED]),
            ],
            id="pending-private-is-not-enough",
        ),
        pytest.param(
            {"enable_user_authentication": True},
            [
                recv(T0 + 10, signin('{"id":42}')),
                poll(T0 + 30, ErrorCode.UNAUTHORIZED, [NOT_AUTHORIZED]),
            ],
            id="failed-signin-is-not-enough",
        ),
        pytest.param(
            {"enable_user_authentication": True, "activity_timeout": 10},
            [
                poll(T0 + 10, None, [PING]),
                poll(T0 + 30, ErrorCode.UNAUTHORIZED, [NOT_AUTHORIZED]),
            ],
            id="4009-while-waiting-for-pong",
        ),
        pytest.param({}, [poll(T0 + 30), poll(T0 + 119)], id="no-signin-needed-by-default"),
    ],
)
def test_poll(settings: dict[str, object], steps: list[Step]) -> None:
    conn = connect(make_app(**settings))
    for action, at, arg, sent in steps:
        if action == "recv":
            conn.receive(str(arg), at)
            conn.data_to_send()
        elif action == "join":
            data = '{"user_id":"7"}' if str(arg).startswith("presence-") else None
            join(conn, str(arg), data, now=at)
        else:
            assert (conn.poll(at), frames(conn)) == (arg, sent), f"poll at {at - T0:+}"
