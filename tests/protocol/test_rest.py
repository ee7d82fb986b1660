"""HTTP API request validation (§5): 400 for a malformed request, 413 for too much data."""

from __future__ import annotations

import orjson
import pytest

from ressonance.protocol.app import App
from ressonance.protocol.errors import ApiError
from ressonance.protocol.rest import (
    HistoryQuery,
    Trigger,
    idempotency_key,
    parse_batch,
    parse_channel_query,
    parse_channels_query,
    parse_history_query,
    parse_trigger,
    require_presence,
    validate_user_id,
)

APP = App(id="3", key="key", secret="secret")
SMALL = App(
    id="3",
    key="key",
    secret="secret",
    max_event_name_length=5,
    max_event_payload_in_kb=1,
    max_event_channels_at_once=2,
    max_channel_name_length=10,
    max_event_batch_size=2,
)
NOTHING: frozenset[str] = frozenset()


def body(value: object) -> bytes:
    return orjson.dumps(value)


EVENT = {"name": "my-event", "data": '{"x":1}'}


@pytest.mark.parametrize(
    ("request_body", "app", "expected"),
    [
        # Node and Python send `channels`; PHP sends `channel` for one channel (§5.1).
        (
            body({**EVENT, "channels": ["a", "b"]}),
            APP,
            Trigger("my-event", '{"x":1}', ("a", "b"), None, NOTHING),
        ),
        (
            body({**EVENT, "channel": "a"}),
            APP,
            Trigger("my-event", '{"x":1}', ("a",), None, NOTHING),
        ),
        (
            body({**EVENT, "channels": "a"}),
            APP,
            Trigger("my-event", '{"x":1}', ("a",), None, NOTHING),
        ),
        (
            body({**EVENT, "channels": ["a"], "channel": "b"}),
            APP,
            Trigger("my-event", '{"x":1}', ("a",), None, NOTHING),
        ),
        (
            body({**EVENT, "channels": ["a"], "socket_id": "123.456"}),
            APP,
            Trigger("my-event", '{"x":1}', ("a",), "123.456", NOTHING),
        ),
        (
            body({**EVENT, "channels": ["a"], "socket_id": None, "info": ""}),
            APP,
            Trigger("my-event", '{"x":1}', ("a",), None, NOTHING),
        ),
        (
            body({**EVENT, "channels": ["presence-a"], "info": "user_count,subscription_count"}),
            APP,
            Trigger(
                "my-event",
                '{"x":1}',
                ("presence-a",),
                None,
                frozenset({"user_count", "subscription_count"}),
            ),
        ),
        (
            body({**EVENT, "channels": ["a"], "info": " subscription_count , "}),
            APP,
            Trigger("my-event", '{"x":1}', ("a",), None, frozenset({"subscription_count"})),
        ),
        # Laravel event names are not channel names (§2.3).
        (
            body(
                {"name": "App\\Events\\OrderShipped", "data": "", "channels": ["#server-to-user-7"]}
            ),
            APP,
            Trigger("App\\Events\\OrderShipped", "", ("#server-to-user-7",), None, NOTHING),
        ),
        # Limits are inclusive.
        (
            body({"name": "e" * 5, "data": "x" * 1024, "channels": ["a" * 10, "b"]}),
            SMALL,
            Trigger("e" * 5, "x" * 1024, ("a" * 10, "b"), None, NOTHING),
        ),
        (
            body({"name": "e" * 200, "data": "x" * 10240, "channels": ["a"]}),
            APP,
            Trigger("e" * 200, "x" * 10240, ("a",), None, NOTHING),
        ),
    ],
)
def test_parse_trigger(request_body: bytes, app: App, expected: Trigger) -> None:
    assert parse_trigger(request_body, app) == expected


@pytest.mark.parametrize(
    ("request_body", "app", "status", "message"),
    [
        (b"{", APP, 400, "Request body is not valid JSON"),
        (b"", APP, 400, "Request body is not valid JSON"),
        (b"[]", APP, 400, "Request body must be a JSON object"),
        (b'"event"', APP, 400, "Request body must be a JSON object"),
        (body({"data": "x", "channels": ["a"]}), APP, 400, "'name' must be a non-empty string"),
        (
            body({**EVENT, "name": "", "channels": ["a"]}),
            APP,
            400,
            "'name' must be a non-empty string",
        ),
        (
            body({**EVENT, "name": 7, "channels": ["a"]}),
            APP,
            400,
            "'name' must be a non-empty string",
        ),
        (
            body({**EVENT, "name": "e" * 201, "channels": ["a"]}),
            APP,
            400,
            "Event name is longer than 200 characters",
        ),
        (
            body({**EVENT, "name": "e" * 6, "channels": ["a"]}),
            SMALL,
            400,
            "Event name is longer than 5 characters",
        ),
        (
            body({"name": "e", "channels": ["a"]}),
            APP,
            400,
            "'data' must be a string (JSON-encode objects first)",
        ),
        (
            body({"name": "e", "data": {"x": 1}, "channels": ["a"]}),
            APP,
            400,
            "'data' must be a string (JSON-encode objects first)",
        ),
        (
            body({"name": "e", "data": "x" * 10241, "channels": ["a"]}),
            APP,
            413,
            "Event data is larger than 10 KB",
        ),
        # The limit is in bytes, not characters.
        (
            body({"name": "e", "data": "\u00e9" * 5121, "channels": ["a"]}),
            APP,
            413,
            "Event data is larger than 10 KB",
        ),
        (
            body({"name": "e", "data": "x" * 1025, "channels": ["a"]}),
            SMALL,
            413,
            "Event data is larger than 1 KB",
        ),
        (body(EVENT), APP, 400, "'channels' must be a non-empty list of channel names"),
        (
            body({**EVENT, "channels": []}),
            APP,
            400,
            "'channels' must be a non-empty list of channel names",
        ),
        (
            body({**EVENT, "channels": {"a": 1}}),
            APP,
            400,
            "'channels' must be a non-empty list of channel names",
        ),
        (
            body({**EVENT, "channels": [f"c{i}" for i in range(101)]}),
            APP,
            400,
            "Too many channels (101); the limit is 100",
        ),
        (
            body({"name": "e", "data": "", "channels": ["a", "b", "c"]}),
            SMALL,
            400,
            "Too many channels (3); the limit is 2",
        ),
        (
            body({**EVENT, "channels": ["a", "bad name"]}),
            APP,
            400,
            "Channel name may only contain letters, digits and -_=@,.;: 'bad name'",
        ),
        (
            body({**EVENT, "channels": ["a", 5]}),
            APP,
            400,
            "Channel name must be a non-empty string: '5'",
        ),
        (
            body({**EVENT, "channels": ["a" * 201]}),
            APP,
            400,
            "Channel name is longer than 200 characters: '" + "a" * 50 + "'",
        ),
        (
            body({**EVENT, "channels": ["a"], "socket_id": "abc"}),
            APP,
            400,
            "'socket_id' must look like 123.456",
        ),
        (
            body({**EVENT, "channels": ["a"], "socket_id": "123"}),
            APP,
            400,
            "'socket_id' must look like 123.456",
        ),
        (
            body({**EVENT, "channels": ["a"], "socket_id": "1.2.3"}),
            APP,
            400,
            "'socket_id' must look like 123.456",
        ),
        (
            body({**EVENT, "channels": ["a"], "socket_id": 123.456}),
            APP,
            400,
            "'socket_id' must look like 123.456",
        ),
        (
            body({**EVENT, "channels": ["a"], "info": "user_count,cache"}),
            APP,
            400,
            "Unknown info attribute(s): cache",
        ),
        (
            body({**EVENT, "channels": ["a"], "info": "b,a"}),
            APP,
            400,
            "Unknown info attribute(s): a, b",
        ),
        (
            body({**EVENT, "channels": ["a"], "info": ["user_count"]}),
            APP,
            400,
            "'info' must be a comma-separated string",
        ),
    ],
)
def test_parse_trigger_refuses(request_body: bytes, app: App, status: int, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_trigger(request_body, app)

    assert (caught.value.status, caught.value.message) == (status, message)


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (
            body({"batch": [{**EVENT, "channel": "a"}]}),
            [Trigger("my-event", '{"x":1}', ("a",), None, NOTHING)],
        ),
        (
            body(
                {
                    "batch": [
                        {**EVENT, "channel": "a", "socket_id": "1.2"},
                        {"name": "e", "data": "d", "channel": "presence-b", "info": "user_count"},
                    ]
                }
            ),
            [
                Trigger("my-event", '{"x":1}', ("a",), "1.2", NOTHING),
                Trigger("e", "d", ("presence-b",), None, frozenset({"user_count"})),
            ],
        ),
    ],
)
def test_parse_batch(request_body: bytes, expected: list[Trigger]) -> None:
    assert parse_batch(request_body, APP) == expected


@pytest.mark.parametrize(
    ("request_body", "app", "status", "message"),
    [
        (b"[]", APP, 400, "Request body must be a JSON object"),
        (body({}), APP, 400, "'batch' must be a non-empty list of events"),
        (body({"batch": []}), APP, 400, "'batch' must be a non-empty list of events"),
        (body({"batch": {"name": "e"}}), APP, 400, "'batch' must be a non-empty list of events"),
        (
            body({"batch": [{**EVENT, "channel": "a"}] * 11}),
            APP,
            400,
            "Batch has 11 events; the limit is 10",
        ),
        (
            body({"batch": [{**EVENT, "channel": "a"}] * 3}),
            SMALL,
            400,
            "Batch has 3 events; the limit is 2",
        ),
        (body({"batch": [{**EVENT, "channel": "a"}, "e"]}), APP, 400, "batch[1] must be an object"),
        (
            body({"batch": [{**EVENT, "channel": "a"}, {"data": "d", "channel": "a"}]}),
            APP,
            400,
            "batch[1]: 'name' must be a non-empty string",
        ),
        # One channel per batch item: `channels` is not read there (§5.2).
        (
            body({"batch": [{**EVENT, "channels": ["a"]}]}),
            APP,
            400,
            "batch[0]: 'channels' must be a non-empty list of channel names",
        ),
        (
            body({"batch": [{"name": "e", "data": "x" * 10241, "channel": "a"}]}),
            APP,
            413,
            "batch[0]: Event data is larger than 10 KB",
        ),
    ],
)
def test_parse_batch_refuses(request_body: bytes, app: App, status: int, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_batch(request_body, app)

    assert (caught.value.status, caught.value.message) == (status, message)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ("", NOTHING)),
        ({"filter_by_prefix": "private-"}, ("private-", NOTHING)),
        (
            {"filter_by_prefix": "presence-", "info": "user_count"},
            ("presence-", frozenset({"user_count"})),
        ),
        (
            {"filter_by_prefix": "presence-room-", "info": "user_count"},
            ("presence-room-", frozenset({"user_count"})),
        ),
        ({"info": "subscription_count"}, ("", frozenset({"subscription_count"}))),
    ],
)
def test_parse_channels_query(query: dict[str, str], expected: tuple[str, frozenset[str]]) -> None:
    assert parse_channels_query(query) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"info": "user_count"}, "info=user_count requires filter_by_prefix=presence-"),
        (
            {"filter_by_prefix": "private-", "info": "user_count"},
            "info=user_count requires filter_by_prefix=presence-",
        ),
        ({"info": "cache"}, "Unknown info attribute(s): cache"),
    ],
)
def test_parse_channels_query_refuses(query: dict[str, str], message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_channels_query(query)

    assert (caught.value.status, caught.value.message) == (400, message)


@pytest.mark.parametrize(
    ("channel", "query", "expected"),
    [
        ("my-channel", {}, NOTHING),
        ("my-channel", {"info": "subscription_count"}, frozenset({"subscription_count"})),
        (
            "presence-a",
            {"info": "user_count,subscription_count"},
            frozenset({"user_count", "subscription_count"}),
        ),
        ("presence-cache-a", {"info": "user_count,cache"}, frozenset({"user_count", "cache"})),
        ("cache-a", {"info": "cache"}, frozenset({"cache"})),
        ("private-encrypted-cache-a", {"info": "cache"}, frozenset({"cache"})),
    ],
)
def test_parse_channel_query(channel: str, query: dict[str, str], expected: frozenset[str]) -> None:
    assert parse_channel_query(channel, query, APP) == expected


@pytest.mark.parametrize(
    ("channel", "query", "message"),
    [
        ("bad name", {}, "Channel name may only contain letters, digits and -_=@,.;"),
        ("a" * 201, {}, "Channel name is longer than 200 characters"),
        (
            "my-channel",
            {"info": "user_count"},
            "user_count is only available for presence channels",
        ),
        ("private-a", {"info": "user_count"}, "user_count is only available for presence channels"),
        ("presence-a", {"info": "cache"}, "cache is only available for cache channels"),
        ("my-channel", {"info": "members"}, "Unknown info attribute(s): members"),
    ],
)
def test_parse_channel_query_refuses(channel: str, query: dict[str, str], message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_channel_query(channel, query, APP)

    assert (caught.value.status, caught.value.message) == (400, message)


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ("presence-a", None),
        ("presence-cache-a", None),
        ("my-channel", "Users can only be listed for presence channels"),
        ("private-a", "Users can only be listed for presence channels"),
        ("#server-to-user-1", "Users can only be listed for presence channels"),
        ("", "Channel name must be a non-empty string"),
        ("presence a", "Channel name may only contain letters, digits and -_=@,.;"),
    ],
)
def test_require_presence(channel: str, message: str | None) -> None:
    if message is None:
        require_presence(channel, APP)
        return
    with pytest.raises(ApiError) as caught:
        require_presence(channel, APP)

    assert (caught.value.status, caught.value.message) == (400, message)


@pytest.mark.parametrize(
    ("user_id", "valid"),
    [("1", True), ("u" * 128, True), ("", False), ("u" * 129, False)],
)
def test_validate_user_id(user_id: str, valid: bool) -> None:
    if valid:
        validate_user_id(user_id)
        return
    with pytest.raises(ApiError) as caught:
        validate_user_id(user_id)

    assert (caught.value.status, caught.value.message) == (
        400,
        "User id must be 1 to 128 characters",
    )


# --- idempotency keys and history reads -------------------------------------------------------


def test_an_event_body_may_carry_an_idempotency_key() -> None:
    trigger = parse_trigger(body({**EVENT, "channel": "a", "idempotency_key": "order-42"}), APP)

    assert trigger.idempotency_key == "order-42"


def test_a_batch_carries_its_idempotency_key_on_each_event_and_items_carry_none() -> None:
    item = {**EVENT, "channel": "a", "idempotency_key": "ignored"}
    keyed = parse_batch(body({"batch": [item, item], "idempotency_key": "b-1"}), APP)
    plain = parse_batch(body({"batch": [item]}), APP)

    assert [t.idempotency_key for t in keyed] == ["b-1", "b-1"]
    assert plain[0].idempotency_key is None


@pytest.mark.parametrize("value", ["", "x" * 256, "a b", "é", 42, ["k"]])
def test_a_bad_idempotency_key_is_a_400(value: object) -> None:
    with pytest.raises(ApiError, match="Idempotency key must be 1 to 255 visible ASCII") as caught:
        parse_trigger(body({**EVENT, "channel": "a", "idempotency_key": value}), APP)

    assert caught.value.status == 400


def test_a_header_key_is_checked_the_same_way() -> None:
    assert idempotency_key(None) is None
    assert idempotency_key("k" * 255) == "k" * 255
    with pytest.raises(ApiError):
        idempotency_key("a\tb")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, HistoryQuery(None, None, 100)),
        ({"limit": "1000"}, HistoryQuery(None, None, 1000)),
        ({"after": "5", "limit": "2"}, HistoryQuery(5, None, 2)),
        ({"before": "9"}, HistoryQuery(None, 9, 100)),
        ({"after": "0", "before": "1"}, HistoryQuery(0, 1, 100)),
    ],
)
def test_history_queries(query: dict[str, str], expected: HistoryQuery) -> None:
    parsed = parse_history_query("chat-1", query, APP)

    assert parsed == expected
    assert parsed.newest is (expected.after is None)


@pytest.mark.parametrize(
    ("channel", "query", "message"),
    [
        ("chat 1", {}, "Channel name may only contain"),
        ("chat-1", {"limit": "0"}, "'limit' must be 1 to 1000"),
        ("chat-1", {"limit": "1001"}, "'limit' must be 1 to 1000"),
        ("chat-1", {"limit": "ten"}, "'limit' must be a non-negative integer"),
        ("chat-1", {"after": "-1"}, "'after' must be a non-negative integer"),
        ("chat-1", {"before": "²"}, "'before' must be a non-negative integer"),
        ("chat-1", {"after": "1" * 17}, "'after' must be a non-negative integer"),
        ("chat-1", {"after": "5", "before": "5"}, "'before' must be greater than 'after'"),
    ],
)
def test_bad_history_queries_are_400(channel: str, query: dict[str, str], message: str) -> None:
    with pytest.raises(ApiError, match=message) as caught:
        parse_history_query(channel, query, APP)

    assert caught.value.status == 400


def test_a_publish_may_ask_for_the_serials_but_a_channel_listing_may_not() -> None:
    trigger = parse_trigger(body({**EVENT, "channel": "a", "info": "serial"}), APP)

    assert trigger.info == {"serial"}
    with pytest.raises(ApiError, match="Unknown info attribute"):
        parse_channels_query({"info": "serial"})
