"""The HTTP API (§5) as an SDK sees it: signed requests in, 200 + a JSON object or an error out.

Success is HTTP 200 with a JSON object, `{}` at least (§0.7); every failure is a JSON body
`{"error": message, "code": status}`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest

from ressonance.protocol.app import App
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.signing import sign_request
from ressonance.server.http_api import ApiRequest, ApiResponse, HttpApi
from ressonance.server.node import Node
from ressonance.server.service import http_api
from tests.fakes import FakeClock
from tests.server.clients import Client
from tests.server.conftest import APP, Connect, MakeNode

EMPTY_MD5 = hashlib.md5(b"").hexdigest()


def signed(
    clock: FakeClock,
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, str] | None = None,
    *,
    app: App = APP,
) -> ApiRequest:
    """A request signed the way the official SDKs sign it (§5.6)."""
    raw = b"" if body is None else json.dumps(body).encode()
    params = {
        "auth_key": app.key,
        "auth_timestamp": str(int(clock())),
        "auth_version": "1.0",
        **(query or {}),
    }
    if raw:
        params["body_md5"] = hashlib.md5(raw).hexdigest()
    params["auth_signature"] = sign_request(app.secret, method, path, params)
    return ApiRequest.at(method, path, params, raw)


def ok(response: ApiResponse) -> dict[str, object]:
    assert response.status == 200, response.body
    assert isinstance(response.body, dict)
    json.dumps(response.body)  # serializable as the transport will
    return response.body


def error(response: ApiResponse, status: int) -> str:
    assert response.status == status, response.body
    assert set(response.body) == {"error", "code"}
    assert response.body["code"] == status
    message = response.body["error"]
    assert isinstance(message, str)
    assert message
    return message


@pytest.fixture
def api(node: Node) -> HttpApi:
    return http_api(node)


async def subscribe(connect: Connect, channel: str, user_id: str | None = None) -> Client:
    client = connect()
    await client.subscribe(channel, user_id=user_id)
    client.outlet.assert_received("pusher_internal:subscription_succeeded", channel=channel)
    client.outlet.clear()
    return client


# --- POST /apps/{id}/events -----------------------------------------------------------------


async def test_events_are_published_and_answered_with_an_empty_object(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    client = await subscribe(connect, "orders")
    body = {"name": "order-shipped", "channels": ["orders"], "data": '{"id":7}'}

    response = await api.handle(signed(clock, "POST", "/apps/1/events", body))

    assert ok(response) == {}
    assert client.outlet.messages() == [
        {"event": "order-shipped", "channel": "orders", "data": '{"id":7}'}
    ]


async def test_events_accept_a_single_channel_as_php_sends_it(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    client = await subscribe(connect, "orders")
    body = {"name": "order-shipped", "channel": "orders", "data": "x"}

    assert ok(await api.handle(signed(clock, "POST", "/apps/1/events", body))) == {}
    client.outlet.assert_received("order-shipped", channel="orders", data="x")


async def test_events_exclude_the_given_socket_id(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    sender = await subscribe(connect, "private-chat")
    other = await subscribe(connect, "private-chat")
    body = {
        "name": "said",
        "channels": ["private-chat"],
        "data": "hi",
        "socket_id": sender.socket_id,
    }

    ok(await api.handle(signed(clock, "POST", "/apps/1/events", body)))

    sender.outlet.assert_nothing_received()
    other.outlet.assert_received("said")


async def test_events_with_info_answer_the_counts_of_each_channel(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    await subscribe(connect, "presence-room", "alice")
    await subscribe(connect, "presence-room", "alice")
    await subscribe(connect, "presence-room", "bob")
    await subscribe(connect, "news")
    body = {
        "name": "e",
        "channels": ["presence-room", "news", "empty"],
        "data": "{}",
        "info": "user_count,subscription_count",
    }

    response = await api.handle(signed(clock, "POST", "/apps/1/events", body))

    assert ok(response) == {
        "channels": {
            "presence-room": {"user_count": 2},
            "news": {"subscription_count": 1},
            "empty": {"subscription_count": 0},
        }
    }


# --- POST /apps/{id}/batch_events -----------------------------------------------------------


async def test_batch_events_are_all_published_and_answered_with_an_empty_object(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    client = connect()
    await client.subscribe("a")
    await client.subscribe("b")
    client.outlet.clear()
    body = {
        "batch": [
            {"name": "one", "channel": "a", "data": "1"},
            {"name": "two", "channel": "b", "data": "2"},
        ]
    }

    assert ok(await api.handle(signed(clock, "POST", "/apps/1/batch_events", body))) == {}
    assert client.outlet.messages() == [
        {"event": "one", "channel": "a", "data": "1"},
        {"event": "two", "channel": "b", "data": "2"},
    ]


async def test_batch_info_is_aligned_with_the_batch(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    await subscribe(connect, "presence-room", "alice")
    await subscribe(connect, "news")
    await subscribe(connect, "news")
    body = {
        "batch": [
            {"name": "e", "channel": "news", "data": "1", "info": "subscription_count"},
            {"name": "e", "channel": "presence-room", "data": "2"},
            {"name": "e", "channel": "presence-room", "data": "3", "info": "user_count"},
        ]
    }

    response = await api.handle(signed(clock, "POST", "/apps/1/batch_events", body))

    assert ok(response) == {
        "batch": [{"subscription_count": 2}, {}, {"user_count": 1}],
    }


# --- GET /apps/{id}/channels ----------------------------------------------------------------


async def test_channels_lists_occupied_channels_only(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    await subscribe(connect, "news")
    left = await subscribe(connect, "sports")
    await left.unsubscribe("sports")
    signed_in = connect()
    await signed_in.signin("42")
    await signed_in.subscribe("#server-to-user-42")  # a user channel is not an occupied channel

    response = await api.handle(signed(clock, "GET", "/apps/1/channels"))

    assert ok(response) == {"channels": {"news": {}}}


async def test_channels_with_nothing_occupied(api: HttpApi, clock: FakeClock) -> None:
    assert ok(await api.handle(signed(clock, "GET", "/apps/1/channels"))) == {"channels": {}}


async def test_channels_filter_by_prefix_with_user_count(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    await subscribe(connect, "presence-a", "alice")
    await subscribe(connect, "presence-a", "bob")
    await subscribe(connect, "presence-b", "alice")
    await subscribe(connect, "news")
    query = {"filter_by_prefix": "presence-", "info": "user_count"}

    response = await api.handle(signed(clock, "GET", "/apps/1/channels", query=query))

    assert ok(response) == {
        "channels": {"presence-a": {"user_count": 2}, "presence-b": {"user_count": 1}}
    }


async def test_channels_with_subscription_count(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    await subscribe(connect, "private-x")
    await subscribe(connect, "private-x")
    query = {"filter_by_prefix": "private-", "info": "subscription_count"}

    response = await api.handle(signed(clock, "GET", "/apps/1/channels", query=query))

    assert ok(response) == {"channels": {"private-x": {"subscription_count": 2}}}


async def test_channels_user_count_without_a_presence_filter_is_a_400(
    api: HttpApi, clock: FakeClock
) -> None:
    query = {"info": "user_count"}

    response = await api.handle(signed(clock, "GET", "/apps/1/channels", query=query))

    assert "filter_by_prefix=presence-" in error(response, 400)


async def test_channels_accepts_the_python_sdks_body_md5_on_get(
    api: HttpApi, clock: FakeClock
) -> None:
    request = signed(clock, "GET", "/apps/1/channels", query={"body_md5": EMPTY_MD5})

    assert ok(await api.handle(request)) == {"channels": {}}


# --- GET /apps/{id}/channels/{channel} ------------------------------------------------------


async def test_channel_of_nobody_is_not_occupied(api: HttpApi, clock: FakeClock) -> None:
    response = await api.handle(signed(clock, "GET", "/apps/1/channels/news"))

    assert ok(response) == {"occupied": False}


async def test_channel_with_subscription_count(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    await subscribe(connect, "news")
    await subscribe(connect, "news")
    query = {"info": "subscription_count"}

    response = await api.handle(signed(clock, "GET", "/apps/1/channels/news", query=query))

    assert ok(response) == {"occupied": True, "subscription_count": 2}


async def test_presence_channel_with_user_count(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    await subscribe(connect, "presence-room", "alice")
    await subscribe(connect, "presence-room", "alice")
    query = {"info": "user_count"}

    response = await api.handle(signed(clock, "GET", "/apps/1/channels/presence-room", query=query))

    assert ok(response) == {"occupied": True, "user_count": 1}


async def test_cache_channel_info_shows_the_cached_event_and_its_ttl(
    api: HttpApi, clock: FakeClock
) -> None:
    query = {"info": "cache"}
    path = "/apps/1/channels/cache-prices"
    assert ok(await api.handle(signed(clock, "GET", path, query=query))) == {
        "occupied": False,
        "cache": None,
    }
    body = {"name": "price", "channels": ["cache-prices"], "data": '{"v":1}'}
    ok(await api.handle(signed(clock, "POST", "/apps/1/events", body)))

    clock.advance(600)
    response = await api.handle(signed(clock, "GET", path, query=query))

    assert ok(response) == {"occupied": False, "cache": {"data": '{"v":1}', "ttl": 1200}}
    clock.advance(1200)
    expired = await api.handle(signed(clock, "GET", path, query=query))
    assert ok(expired) == {"occupied": False, "cache": None}


@pytest.mark.parametrize(
    ("channel", "info", "problem"),
    [
        ("news", "user_count", "presence"),
        ("news", "cache", "cache"),
        ("news", "bogus", "bogus"),
        ("bad%name", "", "may only contain"),
    ],
)
async def test_channel_info_that_does_not_apply_is_a_400(
    api: HttpApi, clock: FakeClock, channel: str, info: str, problem: str
) -> None:
    query = {"info": info} if info else {}

    response = await api.handle(signed(clock, "GET", f"/apps/1/channels/{channel}", query=query))

    assert problem in error(response, 400)


# --- GET /apps/{id}/channels/{channel}/users ------------------------------------------------


async def test_users_of_a_presence_channel(
    api: HttpApi, connect: Connect, clock: FakeClock
) -> None:
    await subscribe(connect, "presence-room", "alice")
    await subscribe(connect, "presence-room", "bob")
    await subscribe(connect, "presence-room", "alice")

    response = await api.handle(signed(clock, "GET", "/apps/1/channels/presence-room/users"))

    assert ok(response) == {"users": [{"id": "alice"}, {"id": "bob"}]}


async def test_users_of_an_empty_presence_channel(api: HttpApi, clock: FakeClock) -> None:
    response = await api.handle(signed(clock, "GET", "/apps/1/channels/presence-room/users"))

    assert ok(response) == {"users": []}


@pytest.mark.parametrize("channel", ["news", "private-x", "bad%name"])
async def test_users_of_other_channels_is_a_400(
    api: HttpApi, clock: FakeClock, channel: str
) -> None:
    response = await api.handle(signed(clock, "GET", f"/apps/1/channels/{channel}/users"))

    error(response, 400)


# --- POST .../users/{id}/terminate_connections ----------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/apps/1/users/alice/terminate_connections",
        "/users/alice/terminate_connections",  # what the PyPI SDK requests and signs (§5.5)
    ],
)
async def test_terminate_connections_closes_the_users_connections(
    api: HttpApi, connect: Connect, clock: FakeClock, path: str
) -> None:
    alice = connect()
    await alice.signin("alice")
    bob = connect()
    await bob.signin("bob")

    response = await api.handle(signed(clock, "POST", path, {}))

    assert ok(response) == {}
    alice.outlet.assert_closed(ErrorCode.UNAUTHORIZED)
    bob.outlet.assert_open()


async def test_terminate_connections_with_a_too_long_user_id_is_a_400(
    api: HttpApi, clock: FakeClock
) -> None:
    path = f"/apps/1/users/{'u' * 129}/terminate_connections"

    error(await api.handle(signed(clock, "POST", path, {})), 400)


async def test_terminate_connections_on_the_sdk_path_needs_a_known_auth_key(
    api: HttpApi, clock: FakeClock
) -> None:
    stranger = App(id="9", key="unknown-key", secret="s")
    request = signed(clock, "POST", "/users/alice/terminate_connections", {}, app=stranger)

    assert "auth_key" in error(await api.handle(request), 401)


# --- errors ---------------------------------------------------------------------------------


async def test_unknown_path_is_a_404(api: HttpApi, clock: FakeClock) -> None:
    error(await api.handle(signed(clock, "GET", "/apps/1/nothing-here")), 404)


async def test_wrong_method_is_a_405_naming_the_right_one(api: HttpApi, clock: FakeClock) -> None:
    response = await api.handle(signed(clock, "GET", "/apps/1/events"))
    message = error(response, 405)

    assert "POST" in message
    assert response.headers == {"Allow": "POST"}


async def test_unknown_app_id_is_a_404(api: HttpApi, clock: FakeClock) -> None:
    message = error(await api.handle(signed(clock, "GET", "/apps/999/channels")), 404)

    assert "999" in message


async def test_disabled_app_is_a_403(make_node: MakeNode, clock: FakeClock) -> None:
    disabled = dataclasses.replace(APP, enabled=False)
    api = http_api(await make_node(disabled))

    response = await api.handle(signed(clock, "GET", "/apps/1/channels", app=disabled))

    assert "disabled" in error(response, 403)


async def test_a_disabled_app_still_needs_a_valid_signature(
    make_node: MakeNode, clock: FakeClock
) -> None:
    disabled = dataclasses.replace(APP, enabled=False)
    api = http_api(await make_node(disabled))
    request = signed(clock, "GET", "/apps/1/channels", app=dataclasses.replace(APP, secret="x"))

    error(await api.handle(request), 401)


def tampered(request: ApiRequest, **changes: str | None) -> ApiRequest:
    query = {k: v for k, v in {**request.query, **changes}.items() if v is not None}
    return dataclasses.replace(request, query=query)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"auth_signature": None}, "auth_signature"),
        ({"auth_key": None}, "auth_key"),
        ({"auth_timestamp": None}, "auth_timestamp"),
        ({"auth_signature": "0" * 64}, "Invalid signature"),
        ({"auth_key": "other-key"}, "auth_key"),
        ({"auth_timestamp": "soon"}, "auth_timestamp"),
        ({"body_md5": EMPTY_MD5}, "body_md5"),
        ({"body_md5": None}, "body_md5"),
    ],
)
async def test_badly_signed_requests_are_a_401(
    api: HttpApi, clock: FakeClock, changes: dict[str, str | None], problem: str
) -> None:
    request = signed(clock, "POST", "/apps/1/events", {"name": "e", "channel": "c", "data": ""})

    response = await api.handle(tampered(request, **changes))

    assert problem in error(response, 401)


async def test_an_old_timestamp_is_a_401(api: HttpApi, clock: FakeClock) -> None:
    request = signed(clock, "GET", "/apps/1/channels")
    clock.advance(601)

    assert "Timestamp expired" in error(await api.handle(request), 401)


async def test_a_request_signed_for_another_path_is_a_401(api: HttpApi, clock: FakeClock) -> None:
    request = signed(clock, "GET", "/apps/1/channels")

    response = await api.handle(dataclasses.replace(request, path="/apps/1/channels/news"))

    error(response, 401)


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        (b"not json", 400, "JSON"),
        (b"[]", 400, "object"),
        (b'{"channels":["a"],"data":"x"}', 400, "name"),
        (b'{"name":"e","channels":["a"],"data":{"x":1}}', 400, "data"),
        (b'{"name":"e","channels":[],"data":"x"}', 400, "channels"),
        (b'{"name":"e","channels":["bad name"],"data":"x"}', 400, "may only contain"),
        (b'{"name":"e","channels":["a"],"data":"x","socket_id":"nope"}', 400, "socket_id"),
        (b'{"name":"e","channels":["a"],"data":"x","info":"bogus"}', 400, "bogus"),
        (b'{"name":"e","channels":["a"],"data":"' + b"x" * 10241 + b'"}', 413, "10 KB"),
    ],
)
async def test_invalid_events_are_refused_and_nothing_is_published(
    api: HttpApi, connect: Connect, clock: FakeClock, body: bytes, status: int, problem: str
) -> None:
    client = await subscribe(connect, "a")
    request = signed(clock, "POST", "/apps/1/events")
    params = {k: v for k, v in request.query.items() if k != "auth_signature"}
    params["body_md5"] = hashlib.md5(body).hexdigest()
    params["auth_signature"] = sign_request(APP.secret, "POST", "/apps/1/events", params)

    response = await api.handle(ApiRequest.at("POST", "/apps/1/events", params, body))

    assert problem in error(response, status)
    client.outlet.assert_nothing_received()


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        ([], "non-empty"),
        ([{"name": "e", "channel": "a", "data": "x"}] * 11, "limit is 10"),
        (["not an object"], "batch[0]"),
        ([{"name": "e", "channel": "a", "data": "x"}, {"name": "e", "data": "x"}], "batch[1]"),
    ],
)
async def test_invalid_batches_are_refused_and_nothing_is_published(
    api: HttpApi, connect: Connect, clock: FakeClock, batch: list[object], problem: str
) -> None:
    client = await subscribe(connect, "a")

    response = await api.handle(signed(clock, "POST", "/apps/1/batch_events", {"batch": batch}))

    assert problem in error(response, 400)
    client.outlet.assert_nothing_received()
