"""pusher:signin: signatures, user_data rules, one user per connection, watchlists (§2.5)."""

from __future__ import annotations

import orjson
import pusher
import pytest

from ressonance.protocol import messages as m
from ressonance.protocol.connection import SignedIn, User
from ressonance.protocol.signing import channel_auth, user_auth

from .wire import (
    KEY,
    SECRET,
    SOCKET_ID,
    T0,
    Frame,
    connect,
    error,
    frames,
    make_app,
    nested_json,
    sign_in,
    signin,
    subscribe,
    text,
)


@pytest.mark.parametrize(
    ("user_data", "user"),
    [
        ('{"id":"12345"}', User("12345", None, ())),
        (
            '{"id":"42","user_info":{"name":"A"},"watchlist":["7","9"]}',
            User("42", {"name": "A"}, ("7", "9")),
        ),
        # Python's SDK serialises with spaces; user_data is echoed back byte for byte.
        ('{"id": "42", "user_info": {"name": "A"}}', User("42", {"name": "A"}, ())),
        ('{"id":"42","watchlist":null}', User("42", None, ())),
        ('{"id":"42","watchlist":[]}', User("42", None, ())),
        (orjson.dumps({"id": "u" * 128}).decode(), User("u" * 128, None, ())),
    ],
)
def test_signin_success(user_data: str, user: User) -> None:
    conn = connect()

    assert conn.receive(signin(user_data), T0) == [SignedIn(user)]
    [frame] = conn.data_to_send()
    # data is a JSON string whose user_data is the exact string that was signed (§2.5).
    assert orjson.loads(frame) == {
        "event": "pusher:signin_success",
        "data": orjson.dumps({"user_data": user_data}).decode(),
    }


def test_signin_known_answer() -> None:
    conn = connect()
    token = f"{KEY}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"

    assert conn.receive(signin('{"id":"12345"}', token), T0) == [SignedIn(User("12345", None, ()))]
    assert conn.data_to_send() == [
        b'{"event":"pusher:signin_success","data":"{\\"user_data\\":\\"{\\\\\\"id\\\\\\":'
        b'\\\\\\"12345\\\\\\"}\\"}"}'
    ]


def test_signin_with_the_python_sdk_token() -> None:
    response = pusher.Pusher("1", KEY, SECRET).authenticate_user(
        SOCKET_ID, {"id": "42", "user_info": {"name": "A"}}
    )
    conn = connect()

    events = conn.receive(signin(response["user_data"], response["auth"]), T0)

    assert events == [SignedIn(User("42", {"name": "A"}, ()))]


BAD_USER_DATA = "user_data must be a JSON object with a string id"


@pytest.mark.parametrize(
    ("request_text", "message"),
    [
        pytest.param(
            signin('{"id":"42"}', user_auth(KEY, SECRET, SOCKET_ID, '{"id":"43"}')),
            "Invalid signature for pusher:signin",
            id="signed-for-other-user-data",
        ),
        pytest.param(
            signin('{"id":"42"}', user_auth(KEY, SECRET, "1.2", '{"id":"42"}')),
            "Invalid signature for pusher:signin",
            id="signed-for-other-socket",
        ),
        pytest.param(
            signin('{"id":"42"}', user_auth("other", SECRET, SOCKET_ID, '{"id":"42"}')),
            "Invalid signature for pusher:signin",
            id="wrong-key",
        ),
        pytest.param(
            signin('{"id":"42"}', channel_auth(KEY, SECRET, SOCKET_ID, '{"id":"42"}')),
            "Invalid signature for pusher:signin",
            id="channel-style-signature",
        ),
        pytest.param(
            signin('{"id":"42"}', ""), "Invalid signature for pusher:signin", id="empty-auth"
        ),
        # pusher-js requires a non-empty string id (§2.5).
        pytest.param(signin('{"id":42}'), BAD_USER_DATA, id="numeric-id"),
        pytest.param(signin('{"user_id":"42"}'), BAD_USER_DATA, id="missing-id"),
        pytest.param(signin('{"id":""}'), BAD_USER_DATA, id="empty-id"),
        pytest.param(signin(orjson.dumps({"id": "u" * 129}).decode()), BAD_USER_DATA, id="long-id"),
        pytest.param(signin("not json"), BAD_USER_DATA, id="not-json"),
        pytest.param(signin('["42"]'), BAD_USER_DATA, id="array"),
        pytest.param(
            signin('{"id":"42","watchlist":"7"}'),
            "watchlist must be a list of user ids",
            id="watchlist-string",
        ),
        pytest.param(
            signin('{"id":"42","watchlist":[7]}'),
            "watchlist must be a list of user ids",
            id="watchlist-numbers",
        ),
        # Presence rosters carry user_info; the JSON encoder stops at 255 levels.
        pytest.param(
            signin('{"id":"42","user_info":' + nested_json(101) + "}"),
            "user_info is nested deeper than 100 levels",
            id="user-info-too-deep",
        ),
    ],
)
def test_signin_failure_is_a_4009_error_that_keeps_the_connection(
    request_text: str, message: str
) -> None:
    conn = connect()

    assert conn.receive(request_text, T0) == []
    assert frames(conn) == [error(message, 4009)]
    # Not signed in: the user's own channel stays closed to this connection.
    conn.receive(subscribe("#server-to-user-42"), T0)
    assert frames(conn)[0]["event"] == "pusher:subscription_error"


@pytest.mark.parametrize(
    ("second", "expected_events", "expected_frames"),
    [
        (
            '{"id":"43"}',
            [],
            [error("This connection is already signed in as user 42", 4009)],
        ),
        (
            '{"id":"42","user_info":{"name":"B"}}',
            [SignedIn(User("42", {"name": "B"}, ()))],
            [
                {
                    "event": "pusher:signin_success",
                    "data": orjson.dumps(
                        {"user_data": '{"id":"42","user_info":{"name":"B"}}'}
                    ).decode(),
                }
            ],
        ),
    ],
    ids=["different-user", "same-user-again"],
)
def test_signin_twice(
    second: str, expected_events: list[SignedIn], expected_frames: list[Frame]
) -> None:
    conn = connect()
    sign_in(conn, '{"id":"42"}')

    assert conn.receive(signin(second), T0) == expected_events
    assert frames(conn) == expected_frames


@pytest.mark.parametrize(
    ("limit", "watchlist", "watched"),
    [
        (2, ["1", "2", "3"], ("1", "2")),
        (100, [str(i) for i in range(101)], tuple(str(i) for i in range(100))),
    ],
)
def test_a_long_watchlist_is_cut_and_reported_after_signin_success(
    limit: int, watchlist: list[str], watched: tuple[str, ...]
) -> None:
    conn = connect(make_app(max_watchlist_size=limit, watchlist=True))
    user_data = orjson.dumps({"id": "42", "watchlist": watchlist}).decode()

    assert conn.receive(signin(user_data), T0) == [SignedIn(User("42", None, watched))]
    assert frames(conn) == [
        {"event": "pusher:signin_success", "data": orjson.dumps({"user_data": user_data}).decode()},
        error(f"Watchlist is longer than {limit}; the first {limit} are watched", 4302),
    ]


def test_a_long_watchlist_is_not_reported_when_watchlist_events_are_off() -> None:
    conn = connect(make_app(max_watchlist_size=1))
    user_data = orjson.dumps({"id": "42", "watchlist": ["1", "2"]}).decode()

    assert conn.receive(signin(user_data), T0) == [SignedIn(User("42", None, ("1",)))]
    assert [frame["event"] for frame in frames(conn)] == ["pusher:signin_success"]


@pytest.mark.parametrize("user_id", ["auth0|123", "a b", "42#x", "é"])
def test_user_ids_keep_channel_name_rules(user_id: str) -> None:
    conn = connect()
    user_data = orjson.dumps({"id": user_id}).decode()

    assert conn.receive(signin(user_data), T0) == []
    assert frames(conn) == [error("user id may only contain letters, digits and -_=@,.;", 4009)]


def test_signin_data_may_be_a_json_string() -> None:
    conn = connect()
    user_data = '{"id":"42"}'
    data = {"auth": user_auth(KEY, SECRET, SOCKET_ID, user_data), "user_data": user_data}

    events = conn.receive(text(m.SIGNIN, orjson.dumps(data).decode()), T0)

    assert events == [SignedIn(User("42", None, ()))]
    assert [frame["event"] for frame in frames(conn)] == ["pusher:signin_success"]
