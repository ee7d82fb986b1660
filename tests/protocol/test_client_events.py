"""Client events (§2.4): allowed only where the app, channel kind and subscription allow.

Accepted events go to the node as the exact frame other subscribers receive; the sender
never gets its own event back. Refusals are pusher:error 4301 on the event's channel.
"""

from __future__ import annotations

import orjson
import pytest

from ressonance.protocol import messages as m
from ressonance.protocol.channels import classify
from ressonance.protocol.connection import ClientEventReceived, Connection

from .wire import (
    T0,
    Frame,
    client_event,
    connect,
    error,
    frames,
    join,
    make_app,
    nested_json,
    sign_in,
    signed_subscribe,
    subscribe,
    text,
)


def chat_connection(**settings: object) -> Connection:
    """Signed in as 42 and subscribed to one channel of every kind."""
    conn = connect(make_app(**{"enable_client_messages": True, **settings}))
    sign_in(conn, '{"id":"42"}')
    for channel, channel_data in [
        ("my-channel", None),
        ("cache-c", None),
        ("private-chat", None),
        ("private-cache-c", None),
        ("private-encrypted-e", None),
        ("private-encrypted-cache-e", None),
        ("presence-room", '{"user_id":"7","user_info":{"name":"A"}}'),
        ("presence-cache-room", '{"user_id":8}'),
        ("#server-to-user-42", None),
    ]:
        join(conn, channel, channel_data)
    return conn


@pytest.mark.parametrize(
    ("request_text", "relayed"),
    [
        # pusher-js sends an object; it is relayed unchanged (§2.4, §9).
        (
            client_event("private-chat", data={"x": 1}),
            {"event": "client-typing", "channel": "private-chat", "data": {"x": 1}},
        ),
        (
            client_event("private-chat", data='{"x":1}'),
            {"event": "client-typing", "channel": "private-chat", "data": '{"x":1}'},
        ),
        (
            client_event("private-chat"),
            {"event": "client-typing", "channel": "private-chat", "data": None},
        ),
        (
            client_event("private-cache-c", "client-x", [1, 2]),
            {"event": "client-x", "channel": "private-cache-c", "data": [1, 2]},
        ),
        # On presence channels the sender's user_id is added (§2.3).
        (
            client_event("presence-room", data={"x": 1}),
            {
                "event": "client-typing",
                "channel": "presence-room",
                "data": {"x": 1},
                "user_id": "7",
            },
        ),
        (
            client_event("presence-cache-room", data="hi"),
            {
                "event": "client-typing",
                "channel": "presence-cache-room",
                "data": "hi",
                "user_id": "8",
            },
        ),
        (
            client_event("private-chat", "client-" + "e" * 193),
            {"event": "client-" + "e" * 193, "channel": "private-chat", "data": None},
        ),
        (
            client_event("private-chat", data="x" * 10240),
            {"event": "client-typing", "channel": "private-chat", "data": "x" * 10240},
        ),
    ],
)
def test_client_event_is_handed_to_the_node_and_not_echoed(
    request_text: str, relayed: Frame
) -> None:
    conn = chat_connection()

    [event] = conn.receive(request_text, T0)

    assert isinstance(event, ClientEventReceived)
    assert (event.channel, event.event) == (classify(str(relayed["channel"])), relayed["event"])
    assert orjson.loads(event.payload) == relayed
    assert frames(conn) == []


def test_presence_client_event_from_a_member_given_by_signin() -> None:
    conn = connect(make_app(enable_client_messages=True))
    sign_in(conn, '{"id":"42"}')
    join(conn, "presence-room")

    [event] = conn.receive(client_event("presence-room", data={}), T0)

    assert isinstance(event, ClientEventReceived)
    assert event.payload == (
        b'{"event":"client-typing","channel":"presence-room","data":{},"user_id":"42"}'
    )


NOT_ALLOWED = "Client events are only allowed on private and presence channels"


@pytest.mark.parametrize(
    ("settings", "request_text", "channel", "message"),
    [
        (
            {"enable_client_messages": False},
            client_event("private-chat"),
            "private-chat",
            "Client events are not enabled for this app (enable_client_messages)",
        ),
        ({}, client_event("my-channel"), "my-channel", NOT_ALLOWED),
        ({}, client_event("cache-c"), "cache-c", NOT_ALLOWED),
        # pusher-js cannot send them on encrypted channels; we refuse them too (§2.4).
        ({}, client_event("private-encrypted-e"), "private-encrypted-e", NOT_ALLOWED),
        ({}, client_event("private-encrypted-cache-e"), "private-encrypted-cache-e", NOT_ALLOWED),
        ({}, client_event("#server-to-user-42"), "#server-to-user-42", NOT_ALLOWED),
        (
            {},
            client_event("private-other"),
            "private-other",
            "No current subscription to channel private-other, or subscription in progress",
        ),
        (
            {},
            client_event("presence-other"),
            "presence-other",
            "No current subscription to channel presence-other, or subscription in progress",
        ),
        (
            {},
            client_event("private-chat", "client-" + "e" * 194),
            "private-chat",
            "Event name is longer than 200 characters",
        ),
        (
            {"max_event_name_length": 10},
            client_event("private-chat", "client-abcd"),
            "private-chat",
            "Event name is longer than 10 characters",
        ),
        (
            {},
            client_event("private-chat", data="x" * (10240 + 300)),
            "private-chat",
            "Client event data is larger than 10 KB",
        ),
        (
            {"max_event_payload_in_kb": 1},
            client_event("presence-room", data={"text": "x" * 1300}),
            "presence-room",
            "Client event data is larger than 1 KB",
        ),
        (
            {},
            '{"event":"client-typing","channel":"private-chat","data":' + nested_json(300) + "}",
            "private-chat",
            "Client event data is nested too deeply",
        ),
    ],
)
def test_client_event_refused_with_4301(
    settings: dict[str, object], request_text: str, channel: str, message: str
) -> None:
    conn = chat_connection(**settings)

    assert conn.receive(request_text, T0) == []
    assert frames(conn) == [error(message, 4301, channel)]


@pytest.mark.parametrize("state", ["pending", "refused", "unsubscribed"])
def test_client_event_needs_a_confirmed_subscription(state: str) -> None:
    conn = connect(make_app(enable_client_messages=True))
    if state == "pending":
        conn.receive(signed_subscribe("private-chat"), T0)
    elif state == "refused":
        conn.receive(subscribe("private-chat", "bad"), T0)
    else:
        join(conn, "private-chat")
        conn.receive(text(m.UNSUBSCRIBE, {"channel": "private-chat"}), T0)
    conn.data_to_send()

    assert conn.receive(client_event("private-chat"), T0) == []
    assert frames(conn) == [
        error(
            "No current subscription to channel private-chat, or subscription in progress",
            4301,
            "private-chat",
        )
    ]
