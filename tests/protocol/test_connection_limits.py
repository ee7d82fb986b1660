"""Per-connection abuse limits: channels, subscriptions per second, messages per second.

Issue "Apps, plans and protection" §4. Each limit is hit on purpose; what the client reads is
compared whole, and every message names the setting that was hit.
"""

from __future__ import annotations

import pytest

from ressonance.protocol.connection import CloseRequested, Connection, SubscribeRequested
from ressonance.protocol.errors import ErrorCode

from .wire import (
    PONG,
    T0,
    connect,
    error,
    frames,
    join,
    make_app,
    subscribe,
    subscription_error,
    text,
)

PING = text("pusher:ping", {})


def too_many_channels(channel: str, limit: int) -> dict[str, object]:
    return subscription_error(
        channel,
        "LimitReached",
        f"Too many channels on this connection: at most {limit} (max_channels_per_connection)",
        4301,
    )


def too_fast(channel: str, limit: int) -> dict[str, object]:
    return subscription_error(
        channel,
        "LimitReached",
        f"Subscribing too fast: more than {limit} subscriptions per second "
        "(max_subscriptions_per_sec)",
        4301,
    )


def flood_warning(limit: int) -> dict[str, object]:
    return error(
        f"Rate limit exceeded: more than {limit} messages per second "
        "(max_inbound_messages_per_sec); messages are being dropped",
        4301,
    )


# --- defaults --------------------------------------------------------------------------------


def test_defaults_let_a_page_subscribe_to_200_channels_at_once() -> None:
    conn = connect()

    for index in range(200):
        [event] = conn.receive(subscribe(f"c-{index}"), T0)
        assert isinstance(event, SubscribeRequested)
    assert frames(conn) == []
    assert conn.app.max_channels_per_connection == 200


# --- max_channels_per_connection -------------------------------------------------------------


def test_a_subscription_past_max_channels_is_refused_and_the_connection_stays() -> None:
    conn = connect(make_app(max_channels_per_connection=3))
    for name in ("a", "b", "c"):
        join(conn, name)

    assert conn.receive(subscribe("d"), T0) == []

    assert frames(conn) == [too_many_channels("d", 3)]
    assert "d" not in conn.pending
    assert conn.receive(PING, T0) == []
    assert frames(conn) == [PONG]


def test_pending_subscriptions_count_towards_max_channels() -> None:
    conn = connect(make_app(max_channels_per_connection=2))
    conn.receive(subscribe("a"), T0)
    conn.receive(subscribe("b"), T0)  # neither answered by the node yet

    assert conn.receive(subscribe("c"), T0) == []
    assert frames(conn) == [too_many_channels("c", 2)]


def test_unsubscribing_frees_a_channel_slot() -> None:
    conn = connect(make_app(max_channels_per_connection=1))
    join(conn, "a")
    conn.receive(text("pusher:unsubscribe", {"channel": "a"}), T0)

    [event] = conn.receive(subscribe("b"), T0)

    assert isinstance(event, SubscribeRequested)
    assert event.channel.name == "b"


def test_resubscribing_a_joined_channel_at_the_limit_says_existing_subscription() -> None:
    conn = connect(make_app(max_channels_per_connection=1))
    join(conn, "a")

    conn.receive(subscribe("a"), T0)

    assert frames(conn) == [error("Existing subscription to channel a", None, "a")]


# --- max_subscriptions_per_sec ---------------------------------------------------------------


def test_subscriptions_burst_to_max_channels_then_come_at_the_rate() -> None:
    app = make_app(max_subscriptions_per_sec=2, max_channels_per_connection=5)
    conn = connect(app)
    for index in range(5):  # the burst: as many as the connection may hold
        join(conn, f"c-{index}")
        conn.receive(text("pusher:unsubscribe", {"channel": f"c-{index}"}), T0)

    assert conn.receive(subscribe("x"), T0) == []
    assert frames(conn) == [too_fast("x", 2)]
    assert "x" not in conn.pending

    [event] = conn.receive(subscribe("x"), T0 + 0.5)  # one token back after half a second
    assert isinstance(event, SubscribeRequested)
    assert conn.receive(subscribe("y"), T0 + 0.5) == []
    assert frames(conn) == [too_fast("y", 2)]


def test_the_subscription_burst_is_the_rate_when_that_is_larger() -> None:
    conn = connect(make_app(max_subscriptions_per_sec=4, max_channels_per_connection=2))
    for index in range(4):
        [event] = conn.receive(subscribe(f"c-{index}"), T0)
        assert isinstance(event, SubscribeRequested)
        conn.pending.discard(f"c-{index}")  # as if the node refused it: slot free again
    assert conn.receive(subscribe("z"), T0) == []
    assert frames(conn) == [too_fast("z", 4)]


def test_refusals_before_the_rate_check_spend_no_subscription_token() -> None:
    conn = connect(make_app(max_subscriptions_per_sec=1, max_channels_per_connection=1))
    conn.receive(subscribe("bad name!"), T0)  # invalid name
    assert frames(conn)[0]["data"]["type"] == "InvalidChannel"  # type: ignore[index]
    join(conn, "a")  # the one token
    conn.receive(subscribe("a"), T0)  # existing subscription
    conn.receive(subscribe("b"), T0)  # over the channel limit

    assert frames(conn) == [
        error("Existing subscription to channel a", None, "a"),
        too_many_channels("b", 1),
    ]
    conn.receive(text("pusher:unsubscribe", {"channel": "a"}), T0)
    conn.receive(subscribe("c"), T0)  # the token is spent: now the rate refuses
    assert frames(conn) == [too_fast("c", 1)]


# --- max_inbound_messages_per_sec ------------------------------------------------------------


def flood_app(limit: int = 5, channels: int = 3) -> Connection:
    """A connection whose inbound burst is `limit + channels` frames."""
    return connect(
        make_app(max_inbound_messages_per_sec=limit, max_channels_per_connection=channels)
    )


def test_frames_past_the_inbound_burst_are_dropped_with_one_warning() -> None:
    conn = flood_app(limit=5, channels=3)  # burst 8
    for _ in range(8):
        assert conn.receive(PING, T0) == []
    assert frames(conn) == [PONG] * 8

    for _ in range(3):
        assert conn.receive(PING, T0) == []

    assert frames(conn) == [flood_warning(5)]  # one warning, no pong: the pings were dropped


def test_dropped_frames_are_not_handled() -> None:
    conn = flood_app(limit=1, channels=1)
    conn.receive(PING, T0)
    conn.receive(PING, T0)
    frames(conn)

    assert conn.receive(subscribe("a"), T0) == []  # dropped: no SubscribeRequested
    assert "a" not in conn.pending


def test_a_client_that_keeps_flooding_is_closed_with_4100() -> None:
    conn = flood_app(limit=5, channels=3)
    for _ in range(8):
        conn.receive(PING, T0)
    results = [conn.receive(PING, T0 + 0.001 * i) for i in range(6)]

    # The first dropped frame warns; the fifth dropped after it asks for the close.
    assert results[:5] == [[]] * 5
    assert results[5] == [
        CloseRequested(
            ErrorCode.OVER_CAPACITY,
            "Too many messages per second (max_inbound_messages_per_sec = 5)",
        )
    ]
    assert results[5][0].code == 4100  # backoff: pusher-js reconnects after 1 s, never 43xx
    assert frames(conn)[-1] == flood_warning(5)


def test_a_pause_of_a_second_ends_the_flood_and_the_warning_comes_again() -> None:
    conn = flood_app(limit=5, channels=3)
    for _ in range(9):
        conn.receive(PING, T0)  # eight pongs, then one drop with a warning
    assert frames(conn)[-1] == flood_warning(5)

    later = T0 + 1.0  # a second without a drop: five tokens back
    for _ in range(5):
        conn.receive(PING, later)
    for _ in range(5):  # another five dropped: a new flood, not a continuation
        assert conn.receive(PING, later) == []

    assert frames(conn) == [PONG] * 5 + [flood_warning(5)]


# --- frames other than text messages (pings, pongs, closes, fragments, binary) -----------------


def flood_close(limit: int) -> CloseRequested:
    return CloseRequested(
        ErrorCode.OVER_CAPACITY,
        f"Too many messages per second (max_inbound_messages_per_sec = {limit})",
    )


def test_other_frames_take_inbound_tokens_like_text_messages() -> None:
    conn = flood_app(limit=5, channels=3)  # burst 8
    assert conn.frames_received(7, T0) is None  # within the burst: nothing to do
    assert conn.receive(PING, T0) == []
    assert frames(conn) == [PONG]

    assert conn.receive(PING, T0) == []  # the eight tokens are spent: dropped

    assert frames(conn) == [flood_warning(5)]


def test_other_frames_and_text_messages_share_one_flood() -> None:
    conn = flood_app(limit=5, channels=3)

    assert conn.frames_received(10, T0) == []  # two over: dropped, warned
    assert conn.frames_received(3, T0) == []  # five dropped in all: not yet closed
    assert frames(conn) == [flood_warning(5)]

    assert conn.receive(PING, T0) == [flood_close(5)]  # the sixth drop, a text message


def test_other_frames_that_keep_flooding_close_with_4100() -> None:
    conn = flood_app(limit=5, channels=3)

    assert conn.frames_received(13, T0) == []  # five dropped
    assert conn.frames_received(1, T0 + 0.01) == [flood_close(5)]  # the sixth, within 1 s

    assert conn.frames_received(50, T0 + 0.02) == []  # asked once; the socket closes
    assert frames(conn) == [flood_warning(5)]


def test_one_read_that_floods_is_warned_and_closed_at_once() -> None:
    conn = flood_app(limit=5, channels=3)

    assert conn.frames_received(1000, T0) == [flood_close(5)]

    assert frames(conn) == [flood_warning(5)]  # the warning goes before the close


def test_other_frames_refill_at_the_rate() -> None:
    conn = flood_app(limit=5, channels=3)
    assert conn.frames_received(8, T0) is None

    assert conn.frames_received(5, T0 + 1.0) is None  # five tokens back after a second
    assert conn.frames_received(1, T0 + 1.0) == []
    assert frames(conn) == [flood_warning(5)]


@pytest.mark.parametrize("rate", [200, 50])
def test_a_steady_client_at_the_rate_is_never_throttled(rate: int) -> None:
    conn = flood_app(limit=rate, channels=1)
    now = T0
    for _ in range(3 * rate):  # three seconds at exactly the rate
        now += 1 / rate
        conn.receive(PING, now)

    assert frames(conn) == [PONG] * (3 * rate)
