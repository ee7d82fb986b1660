"""Subscribing and unsubscribing: names, signatures, presence members (§2.2, §3, §4).

The connection checks what it can alone and hands a SubscribeRequested to the node; the
client hears nothing until the node answers with subscription_succeeded or a refusal.
"""

from __future__ import annotations

import orjson
import pusher
import pytest

from ressonance.protocol import messages as m
from ressonance.protocol.channels import classify
from ressonance.protocol.connection import Member, SubscribeRequested, Unsubscribed
from ressonance.protocol.errors import SubscriptionError
from ressonance.protocol.signing import channel_auth

from .wire import (
    KEY,
    SECRET,
    SOCKET_ID,
    T0,
    Frame,
    connect,
    error,
    frames,
    join,
    make_app,
    member_of_size,
    nested_json,
    presence_data,
    sign_in,
    signed_subscribe,
    subscribe,
    subscription_error,
    succeeded,
    text,
)

# Tokens straight from the reference's known answers (§4).
PRIVATE_FOOBAR_AUTH = f"{KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
MR_PUSHER = '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}'


@pytest.mark.parametrize(
    ("request_text", "channel", "member"),
    [
        pytest.param(subscribe("my-channel"), "my-channel", None, id="public"),
        pytest.param(subscribe("my-channel", auth=None), "my-channel", None, id="public-no-auth"),
        # `auth` is ignored on public channels (§3).
        pytest.param(subscribe("my-channel", "garbage"), "my-channel", None, id="public-junk-auth"),
        pytest.param(subscribe("cache-x"), "cache-x", None, id="cache"),
        pytest.param(
            subscribe("private-foobar", PRIVATE_FOOBAR_AUTH),
            "private-foobar",
            None,
            id="private-kat",
        ),
        pytest.param(
            signed_subscribe("private-cache-x"), "private-cache-x", None, id="private-cache"
        ),
        pytest.param(
            signed_subscribe("private-encrypted-x"), "private-encrypted-x", None, id="encrypted"
        ),
        pytest.param(
            signed_subscribe("private-encrypted-cache-x"),
            "private-encrypted-cache-x",
            None,
            id="encrypted-cache",
        ),
        # An SDK given custom data signs socket:channel:data for any channel type.
        pytest.param(
            signed_subscribe("private-x", '{"custom":1}'),
            "private-x",
            None,
            id="private-custom-data",
        ),
        # A numeric user_id, as in the docs' example, becomes a string (§4).
        pytest.param(
            signed_subscribe("presence-foobar", MR_PUSHER),
            "presence-foobar",
            Member("10", {"name": "Mr. Pusher"}),
            id="presence-numeric-id",
        ),
        pytest.param(
            signed_subscribe("presence-room", '{"user_id":"7"}'),
            "presence-room",
            Member("7", None),
            id="presence-no-info",
        ),
        pytest.param(
            signed_subscribe("presence-cache-room", presence_data("u" * 128, {"a": [1, 2]})),
            "presence-cache-room",
            Member("u" * 128, {"a": [1, 2]}),
            id="presence-cache-longest-id",
        ),
        pytest.param(
            signed_subscribe("presence-room", presence_data(-3)),
            "presence-room",
            Member("-3", None),
            id="presence-negative-id",
        ),
        # The size limit is inclusive: exactly 1 KB of channel_data is fine.
        pytest.param(
            signed_subscribe("presence-room", member_of_size(1024)),
            "presence-room",
            Member("7", "x" * (1024 - 30)),
            id="presence-1kb-member",
        ),
        # user_info may nest 100 levels (rosters wrap it in 3 more; the encoder stops at 255).
        pytest.param(
            signed_subscribe(
                "presence-room", '{"user_id":"7","user_info":' + nested_json(100) + "}"
            ),
            "presence-room",
            Member("7", orjson.loads(nested_json(100))),
            id="presence-info-100-levels",
        ),
        # data as a JSON string rather than an object (§0.2).
        pytest.param(
            text(
                m.SUBSCRIBE,
                orjson.dumps(
                    {
                        "channel": "presence-room",
                        "auth": channel_auth(
                            KEY, SECRET, SOCKET_ID, "presence-room", '{"user_id":"7"}'
                        ),
                        "channel_data": '{"user_id":"7"}',
                    }
                ).decode(),
            ),
            "presence-room",
            Member("7", None),
            id="data-as-string",
        ),
    ],
)
def test_subscribe_is_confirmed_after_the_node_accepts(
    request_text: str, channel: str, member: Member | None
) -> None:
    conn = connect()

    events = conn.receive(request_text, T0)

    assert events == [SubscribeRequested(classify(channel), member)]
    assert frames(conn) == []  # nothing until the node answers
    conn.subscription_succeeded(classify(channel), member, None)
    [frame] = conn.data_to_send()
    assert frame == (
        b'{"event":"pusher_internal:subscription_succeeded","channel":"%s","data":"{}"}'
        % channel.encode()
    )


def test_presence_subscription_succeeded_carries_the_roster() -> None:
    conn = connect()
    [event] = conn.receive(signed_subscribe("presence-foobar", MR_PUSHER), T0)
    assert isinstance(event, SubscribeRequested)
    roster = {"10": {"name": "Mr. Pusher"}, "9": {"name": "B"}}

    conn.subscription_succeeded(event.channel, event.member, m.presence_roster(roster))

    [frame] = frames(conn)
    assert frame == succeeded(
        "presence-foobar",
        '{"presence":{"ids":["10","9"],"hash":{"10":{"name":"Mr. Pusher"},"9":{"name":"B"}},'
        '"count":2}}',
    )


INVALID_SIGNATURE = "Invalid signature: expected HMAC SHA256 hex digest of "
BAD_CHANNEL_DATA = "channel_data must be a JSON object with a user_id of 1 to 128 characters"
CHARSET = "Channel name may only contain letters, digits and -_=@,.;"


def auth_error(channel: str, subject: str) -> Frame:
    return subscription_error(channel, "AuthError", INVALID_SIGNATURE + subject, 401)


def bad_member(channel_data: str) -> tuple[str, Frame]:
    return (
        signed_subscribe("presence-room", channel_data),
        subscription_error("presence-room", "AuthError", BAD_CHANNEL_DATA, 400),
    )


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        pytest.param(
            subscribe("private-foobar"),
            auth_error("private-foobar", "1234.1234:private-foobar"),
            id="private-empty-auth",
        ),
        pytest.param(
            subscribe("private-foobar", auth=None),
            auth_error("private-foobar", "1234.1234:private-foobar"),
            id="private-no-auth",
        ),
        pytest.param(
            subscribe("private-foobar", channel_auth(KEY, SECRET, "1234.1235", "private-foobar")),
            auth_error("private-foobar", "1234.1234:private-foobar"),
            id="signed-for-another-socket",
        ),
        pytest.param(
            subscribe("private-foobar", channel_auth(KEY, SECRET, SOCKET_ID, "private-other")),
            auth_error("private-foobar", "1234.1234:private-foobar"),
            id="signed-for-another-channel",
        ),
        pytest.param(
            subscribe(
                "private-foobar", channel_auth("other-key", SECRET, SOCKET_ID, "private-foobar")
            ),
            auth_error("private-foobar", "1234.1234:private-foobar"),
            id="wrong-key",
        ),
        pytest.param(
            subscribe(
                "private-foobar", channel_auth(KEY, "other-secret", SOCKET_ID, "private-foobar")
            ),
            auth_error("private-foobar", "1234.1234:private-foobar"),
            id="wrong-secret",
        ),
        pytest.param(
            subscribe("private-foobar", PRIVATE_FOOBAR_AUTH.partition(":")[2]),
            auth_error("private-foobar", "1234.1234:private-foobar"),
            id="digest-without-key",
        ),
        pytest.param(
            subscribe("private-encrypted-x"),
            auth_error("private-encrypted-x", "1234.1234:private-encrypted-x"),
            id="encrypted-no-auth",
        ),
        pytest.param(
            subscribe("private-cache-x"),
            auth_error("private-cache-x", "1234.1234:private-cache-x"),
            id="private-cache-no-auth",
        ),
        pytest.param(
            subscribe(
                "presence-room",
                channel_auth(KEY, SECRET, SOCKET_ID, "presence-room", '{"user_id":"7"}'),
                '{"user_id":"1"}',
            ),
            auth_error("presence-room", '1234.1234:presence-room:{"user_id":"1"}'),
            id="presence-tampered-channel-data",
        ),
        # channel_data is signed as received: re-serialising it would change the digest.
        pytest.param(
            subscribe(
                "presence-room",
                channel_auth(KEY, SECRET, SOCKET_ID, "presence-room", '{"user_id":"7"}'),
                '{"user_id": "7"}',
            ),
            auth_error("presence-room", '1234.1234:presence-room:{"user_id": "7"}'),
            id="presence-reserialised-channel-data",
        ),
        pytest.param(
            subscribe(
                "presence-room",
                channel_auth(KEY, SECRET, SOCKET_ID, "presence-room"),
                '{"user_id":"7"}',
            ),
            auth_error("presence-room", '1234.1234:presence-room:{"user_id":"7"}'),
            id="presence-signed-without-channel-data",
        ),
        pytest.param(
            signed_subscribe("presence-room"),
            subscription_error(
                "presence-room", "AuthError", "Presence channels need channel_data", 401
            ),
            id="presence-without-channel-data-not-signed-in",
        ),
        pytest.param(*bad_member("not json"), id="channel-data-not-json"),
        pytest.param(*bad_member('["7"]'), id="channel-data-array"),
        pytest.param(*bad_member("{}"), id="missing-user-id"),
        pytest.param(*bad_member('{"id":"7"}'), id="id-instead-of-user-id"),
        pytest.param(*bad_member(presence_data("")), id="empty-user-id"),
        pytest.param(*bad_member(presence_data("u" * 129)), id="user-id-too-long"),
        pytest.param(*bad_member(presence_data(None)), id="null-user-id"),
        pytest.param(*bad_member(presence_data(True)), id="bool-user-id"),
        pytest.param(*bad_member(presence_data(1.5)), id="float-user-id"),
        pytest.param(*bad_member(presence_data(["7"])), id="list-user-id"),
        pytest.param(
            signed_subscribe("presence-room", member_of_size(1025)),
            subscription_error(
                "presence-room", "LimitReached", "Presence member data is larger than 1 KB", 4301
            ),
            id="member-too-large",
        ),
        pytest.param(
            signed_subscribe(
                "presence-room", '{"user_id":"7","user_info":' + nested_json(101) + "}"
            ),
            subscription_error(
                "presence-room",
                "LimitReached",
                "Presence user_info is nested deeper than 100 levels",
                4301,
            ),
            id="user-info-too-deep",
        ),
        pytest.param(
            subscribe(""),
            subscription_error(
                "", "InvalidChannel", "Channel name must be a non-empty string", 400
            ),
            id="empty-name",
        ),
        pytest.param(
            subscribe("my channel"),
            subscription_error("my channel", "InvalidChannel", CHARSET, 400),
            id="space-in-name",
        ),
        pytest.param(
            subscribe("#my-channel"),
            subscription_error("#my-channel", "InvalidChannel", CHARSET, 400),
            id="reserved-hash",
        ),
        pytest.param(
            subscribe("a" * 201),
            subscription_error(
                "a" * 201, "InvalidChannel", "Channel name is longer than 200 characters", 400
            ),
            id="name-too-long",
        ),
        pytest.param(
            signed_subscribe("private-" + "a" * 193),
            subscription_error(
                "private-" + "a" * 193,
                "InvalidChannel",
                "Channel name is longer than 200 characters",
                400,
            ),
            id="signed-name-too-long",
        ),
        pytest.param(
            subscribe("#server-to-user-42"),
            subscription_error(
                "#server-to-user-42",
                "AuthError",
                "Sign in as this user to subscribe to its channel",
                403,
            ),
            id="user-channel-not-signed-in",
        ),
    ],
)
def test_subscribe_refused(request_text: str, expected: Frame) -> None:
    conn = connect()

    assert conn.receive(request_text, T0) == []
    assert frames(conn) == [expected]


@pytest.mark.parametrize(
    ("settings", "request_text", "expected"),
    [
        (
            {"max_channel_name_length": 10},
            subscribe("channel-11c"),
            subscription_error(
                "channel-11c", "InvalidChannel", "Channel name is longer than 10 characters", 400
            ),
        ),
        (
            {"max_presence_member_size_in_kb": 2},
            signed_subscribe("presence-room", member_of_size(2049)),
            subscription_error(
                "presence-room", "LimitReached", "Presence member data is larger than 2 KB", 4301
            ),
        ),
    ],
)
def test_subscribe_limits_follow_the_app(
    settings: dict[str, int], request_text: str, expected: Frame
) -> None:
    conn = connect(make_app(**settings))

    assert conn.receive(request_text, T0) == []
    assert frames(conn) == [expected]


@pytest.mark.parametrize(
    ("signed_in_as", "request_text", "expected"),
    [
        # Presence auth without channel_data: the signed-in user is the member (§4).
        (
            '{"id":"42","user_info":{"name":"A"}}',
            signed_subscribe("presence-room"),
            [SubscribeRequested(classify("presence-room"), Member("42", {"name": "A"}))],
        ),
        (
            '{"id":"42"}',
            signed_subscribe("presence-room"),
            [SubscribeRequested(classify("presence-room"), Member("42", None))],
        ),
        # With channel_data, channel_data names the member.
        (
            '{"id":"42"}',
            signed_subscribe("presence-room", '{"user_id":"7"}'),
            [SubscribeRequested(classify("presence-room"), Member("7", None))],
        ),
        # pusher-js subscribes to its user channel with auth "" after signin (§2.5).
        (
            '{"id":"42"}',
            subscribe("#server-to-user-42"),
            [SubscribeRequested(classify("#server-to-user-42"), None)],
        ),
    ],
)
def test_subscribe_as_a_signed_in_user(
    signed_in_as: str, request_text: str, expected: list[SubscribeRequested]
) -> None:
    conn = connect()
    sign_in(conn, signed_in_as)

    assert conn.receive(request_text, T0) == expected
    assert frames(conn) == []


def test_user_channel_of_another_user_is_refused() -> None:
    conn = connect()
    sign_in(conn, '{"id":"42"}')

    assert conn.receive(subscribe("#server-to-user-43"), T0) == []
    assert frames(conn) == [
        subscription_error(
            "#server-to-user-43",
            "AuthError",
            "Sign in as this user to subscribe to its channel",
            403,
        )
    ]


@pytest.mark.parametrize("answered", [False, True], ids=["pending", "subscribed"])
def test_duplicate_subscribe_is_an_informational_error(answered: bool) -> None:
    conn = connect()
    [event] = conn.receive(signed_subscribe("private-a"), T0)
    if answered:
        assert isinstance(event, SubscribeRequested)
        conn.subscription_succeeded(event.channel, event.member, None)
        conn.data_to_send()

    assert conn.receive(signed_subscribe("private-a"), T0) == []
    # Real Pusher sends code null and keeps the socket open (§2.2).
    assert frames(conn) == [
        error("Existing subscription to channel private-a", channel="private-a")
    ]


def test_a_refused_subscription_can_be_retried() -> None:
    conn = connect()
    conn.receive(subscribe("private-a"), T0)
    conn.data_to_send()

    assert conn.receive(signed_subscribe("private-a"), T0) == [
        SubscribeRequested(classify("private-a"), None)
    ]


def test_the_node_can_refuse_a_subscription() -> None:
    conn = connect()
    [event] = conn.receive(signed_subscribe("presence-room", '{"user_id":"7"}'), T0)
    assert isinstance(event, SubscribeRequested)

    conn.subscription_refused(
        SubscriptionError("presence-room", "LimitReached", "Presence channel is full", 4100)
    )

    assert frames(conn) == [
        subscription_error("presence-room", "LimitReached", "Presence channel is full", 4100)
    ]
    assert conn.receive(signed_subscribe("presence-room", '{"user_id":"7"}'), T0) == [event]


# The PyPI SDK serialises channel_data with spaces; it is verified as sent (§4).
SDK = pusher.Pusher("1", KEY, SECRET)
SDK_PRIVATE = SDK.authenticate("private-foobar", SOCKET_ID)
SDK_PRESENCE = SDK.authenticate(
    "presence-foobar", SOCKET_ID, {"user_id": 10, "user_info": {"name": "Mr. Pusher"}}
)


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        (
            subscribe("private-foobar", SDK_PRIVATE["auth"]),
            SubscribeRequested(classify("private-foobar"), None),
        ),
        (
            subscribe("presence-foobar", SDK_PRESENCE["auth"], SDK_PRESENCE["channel_data"]),
            SubscribeRequested(classify("presence-foobar"), Member("10", {"name": "Mr. Pusher"})),
        ),
    ],
    ids=["private", "presence"],
)
def test_tokens_from_the_python_sdk_are_accepted(
    request_text: str, expected: SubscribeRequested
) -> None:
    conn = connect()

    assert conn.receive(request_text, T0) == [expected]
    assert frames(conn) == []


# --- unsubscribing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "channel_data", "request_text", "expected"),
    [
        (
            "my-channel",
            None,
            text(m.UNSUBSCRIBE, {"channel": "my-channel"}),
            [Unsubscribed(classify("my-channel"), None)],
        ),
        (
            "private-a",
            None,
            text(m.UNSUBSCRIBE, '{"channel":"private-a"}'),
            [Unsubscribed(classify("private-a"), None)],
        ),
        (
            "presence-room",
            MR_PUSHER,
            text(m.UNSUBSCRIBE, {"channel": "presence-room"}),
            [Unsubscribed(classify("presence-room"), Member("10", {"name": "Mr. Pusher"}))],
        ),
        # Unsubscribing from a channel we are not on is silently ignored.
        ("my-channel", None, text(m.UNSUBSCRIBE, {"channel": "other"}), []),
    ],
)
def test_unsubscribe(
    channel: str, channel_data: str | None, request_text: str, expected: list[Unsubscribed]
) -> None:
    conn = connect()
    join(conn, channel, channel_data)

    assert conn.receive(request_text, T0) == expected
    assert frames(conn) == []  # the server sends no reply (§2.2)


def test_after_unsubscribing_the_channel_can_be_joined_again() -> None:
    conn = connect()
    join(conn, "private-a")
    conn.receive(text(m.UNSUBSCRIBE, {"channel": "private-a"}), T0)

    assert conn.receive(signed_subscribe("private-a"), T0) == [
        SubscribeRequested(classify("private-a"), None)
    ]
