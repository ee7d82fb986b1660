"""Parsing client frames and encoding server frames, byte for byte (§2).

Server->client `data` is a JSON string (§0.1), except in pusher:error and
pusher:subscription_error, whose shapes follow Soketi (§2.1, §2.2). Client->server `data`
may be an object or a JSON string (§0.2).
"""

from __future__ import annotations

import pytest

from ressonance.protocol import messages as m
from ressonance.protocol.errors import ErrorCode, ProtocolError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"event":"pusher:ping","data":{}}', m.Ping()),
        ('{"event":"pusher:ping"}', m.Ping()),
        ('{"event":"pusher:pong","data":{}}', m.Pong()),
        (
            '{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}',
            m.Subscribe("my-channel", "", None),
        ),
        (
            '{"event":"pusher:subscribe","data":{"channel":"my-channel"}}',
            m.Subscribe("my-channel", "", None),
        ),
        (
            '{"event":"pusher:subscribe","data":"{\\"auth\\":\\"k:s\\",\\"channel\\":\\"private-a\\"}"}',
            m.Subscribe("private-a", "k:s", None),
        ),
        (
            '{"event":"pusher:subscribe","data":{"auth":"k:s","channel":"presence-a",'
            '"channel_data":"{\\"user_id\\": 7}"}}',
            m.Subscribe("presence-a", "k:s", '{"user_id": 7}'),
        ),
        (
            '{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}',
            m.Unsubscribe("my-channel"),
        ),
        (
            '{"event":"pusher:unsubscribe","data":"{\\"channel\\":\\"my-channel\\"}"}',
            m.Unsubscribe("my-channel"),
        ),
        (
            '{"event":"pusher:signin","data":{"auth":"k:s","user_data":"{\\"id\\": \\"1\\"}"}}',
            m.Signin("k:s", '{"id": "1"}'),
        ),
        (
            '{"event":"client-typing","data":{"x":1},"channel":"private-chat"}',
            m.ClientEvent("private-chat", "client-typing", {"x": 1}),
        ),
        (
            '{"event":"client-typing","data":"{\\"x\\":1}","channel":"private-chat"}',
            m.ClientEvent("private-chat", "client-typing", '{"x":1}'),
        ),
        (
            '{"event":"client-typing","channel":"private-chat"}',
            m.ClientEvent("private-chat", "client-typing", None),
        ),
    ],
)
def test_parse_client_message(text: str, message: m.ClientMessage) -> None:
    assert m.parse_client_message(text) == message


@pytest.mark.parametrize(
    ("text", "reason", "channel"),
    [
        ("{", "Invalid JSON: the message could not be parsed", None),
        ("", "Invalid JSON: the message could not be parsed", None),
        ("[]", "Invalid message: expected a JSON object", None),
        ('"pusher:ping"', "Invalid message: expected a JSON object", None),
        ("{}", "Invalid message: the 'event' property must be a non-empty string", None),
        ('{"event":""}', "Invalid message: the 'event' property must be a non-empty string", None),
        ('{"event":7}', "Invalid message: the 'event' property must be a non-empty string", None),
        ('{"event":"pusher:bogus"}', "Unsupported event 'pusher:bogus'", None),
        ('{"event":"my-event"}', "Unsupported event 'my-event'", None),
        ('{"event":"' + "x" * 300 + '"}', "Unsupported event '" + "x" * 100 + "'", None),
        ('{"event":"client-x","data":{}}', "Client event without a 'channel'", None),
        ('{"event":"client-x","channel":5}', "Client event without a 'channel'", None),
        (
            '{"event":"pusher:subscribe"}',
            "Invalid 'data' for pusher:subscribe: expected an object",
            None,
        ),
        (
            '{"event":"pusher:subscribe","data":[]}',
            "Invalid 'data' for pusher:subscribe: expected an object",
            None,
        ),
        (
            '{"event":"pusher:subscribe","data":"[1]"}',
            "Invalid 'data' for pusher:subscribe: expected an object",
            None,
        ),
        ('{"event":"pusher:subscribe","data":"{"}', "Invalid 'data': not valid JSON", None),
        ('{"event":"pusher:subscribe","data":{}}', "'channel' must be a string", None),
        ('{"event":"pusher:subscribe","data":{"channel":1}}', "'channel' must be a string", None),
        (
            '{"event":"pusher:subscribe","data":{"channel":"private-a","auth":null}}',
            "'auth' must be a string",
            "private-a",
        ),
        (
            '{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"k:s",'
            '"channel_data":{"user_id":"1"}}}',
            "'channel_data' must be a JSON string",
            "presence-a",
        ),
        ('{"event":"pusher:unsubscribe","data":{}}', "'channel' must be a string", None),
        ('{"event":"pusher:signin","data":{"user_data":"{}"}}', "'auth' must be a string", None),
        ('{"event":"pusher:signin","data":{"auth":"k:s"}}', "'user_data' must be a string", None),
        (
            '{"event":"pusher:signin","data":{"auth":"k:s","user_data":{"id":"1"}}}',
            "'user_data' must be a string",
            None,
        ),
    ],
)
def test_parse_client_message_rejects(text: str, reason: str, channel: str | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        m.parse_client_message(text)

    assert (caught.value.message, caught.value.code, caught.value.channel) == (
        reason,
        None,
        channel,
    )


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            m.connection_established("123456.7890123", 120),
            b'{"event":"pusher:connection_established",'
            b'"data":"{\\"socket_id\\":\\"123456.7890123\\",\\"activity_timeout\\":120}"}',
        ),
        (m.PONG_MESSAGE, b'{"event":"pusher:pong","data":"{}"}'),
        (m.PING_MESSAGE, b'{"event":"pusher:ping","data":"{}"}'),
        (
            m.encode(m.SUBSCRIPTION_SUCCEEDED, {}, "my-channel"),
            b'{"event":"pusher_internal:subscription_succeeded","channel":"my-channel",'
            b'"data":"{}"}',
        ),
        (
            m.encode(m.CACHE_MISS, channel="cache-x"),
            b'{"event":"pusher:cache_miss","channel":"cache-x"}',
        ),
        (
            m.encode(m.MEMBER_REMOVED, {"user_id": "7"}, "presence-a"),
            b'{"event":"pusher_internal:member_removed","channel":"presence-a",'
            b'"data":"{\\"user_id\\":\\"7\\"}"}',
        ),
        # A string is taken as already encoded.
        (
            m.encode(m.SIGNIN_SUCCESS, '{"user_data":"x"}'),
            b'{"event":"pusher:signin_success","data":"{\\"user_data\\":\\"x\\"}"}',
        ),
        (
            m.encode(
                m.SUBSCRIPTION_SUCCEEDED,
                m.presence_roster({"7": {"name": "A"}, "9": None}),
                "presence-room",
            ),
            b'{"event":"pusher_internal:subscription_succeeded","channel":"presence-room",'
            b'"data":"{\\"presence\\":{\\"ids\\":[\\"7\\",\\"9\\"],'
            b'\\"hash\\":{\\"7\\":{\\"name\\":\\"A\\"},\\"9\\":null},\\"count\\":2}}"}',
        ),
        (
            m.error("Existing subscription to channel x", None),
            b'{"event":"pusher:error","data":{"code":null,'
            b'"message":"Existing subscription to channel x"}}',
        ),
        (
            m.error("Client events are not enabled", ErrorCode.CLIENT_EVENT_REJECTED, "private-a"),
            b'{"event":"pusher:error","data":{"code":4301,'
            b'"message":"Client events are not enabled"},"channel":"private-a"}',
        ),
        (
            m.subscription_error("private-x", "AuthError", "The connection is unauthorized.", 401),
            b'{"event":"pusher:subscription_error","channel":"private-x",'
            b'"data":{"type":"AuthError","error":"The connection is unauthorized.","status":401}}',
        ),
        # Channel events relay `data` as given: the HTTP API's string, a client's object.
        (
            m.encode_channel_event("orders", "order-shipped", '{"id":1}'),
            b'{"event":"order-shipped","channel":"orders","data":"{\\"id\\":1}"}',
        ),
        (
            m.encode_channel_event("presence-a", "client-typing", {"x": 1}, "7"),
            b'{"event":"client-typing","channel":"presence-a","data":{"x":1},"user_id":"7"}',
        ),
    ],
)
def test_server_frames(frame: bytes, expected: bytes) -> None:
    assert frame == expected


def test_empty_presence_roster() -> None:
    assert m.presence_roster({}) == {"presence": {"ids": [], "hash": {}, "count": 0}}
