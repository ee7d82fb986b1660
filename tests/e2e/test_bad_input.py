"""Every bad input gets a clear error, and one bad client never stalls or breaks another.

WebSocket clients are raw aiohttp sockets (the protocol as pusher-js speaks it, reference §1
and §2); HTTP requests are plain aiohttp requests signed as the SDKs sign them (§5.6).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ressonance.protocol.signing import channel_auth, sign_request
from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.pusher_ws import (
    PUSHER_QUERY,
    TIMEOUT,
    PusherSocket,
    api_request,
    api_url,
    connect,
    data_of,
    open_socket,
    signed_query,
    trigger,
    ws_url,
)

pytestmark = pytest.mark.e2e

SOFT_LIMIT = 10 * 1024 + 4096  # the app's 10 KB payload limit plus room for the envelope
HARD_LIMIT = 256 * 1024  # the server's WebSocket max message size
MESSAGE_TOO_BIG = 1009


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One node for the module (overrides conftest's): no case here leaves state behind.

    Settings as conftest's `server`; the tests that need other settings start their own.
    """
    running = start_server(tmp_path_factory.mktemp("bad-input"))
    yield running
    stop_server(running)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def assert_error(message: dict[str, Any], code: int | None, *, contains: str = "") -> str:
    """A pusher:error with `code` and a non-empty message; returns the message."""
    assert message["event"] == "pusher:error", message
    assert message["data"]["code"] == code, message
    text = message["data"]["message"]
    assert isinstance(text, str), message
    assert text, message
    assert contains.lower() in text.lower(), message
    return text


async def subscribe_private(socket: PusherSocket, server: RunningServer, channel: str) -> None:
    token = channel_auth(server.key, server.secret, socket.socket_id, channel)
    await socket.subscribe(channel, token)


# --- WebSocket: malformed messages -----------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "contains"),
    [
        pytest.param('{"event": "pusher:ping", ', "json", id="malformed-json"),
        pytest.param("not json at all", "json", id="not-json"),
        pytest.param('[{"event": "pusher:ping"}]', "object", id="json-array"),
        pytest.param('"pusher:ping"', "object", id="json-string"),
        pytest.param("null", "object", id="json-null"),
        pytest.param('{"data": {}}', "event", id="missing-event"),
        pytest.param('{"event": 42}', "event", id="event-not-a-string"),
        pytest.param('{"event": ""}', "event", id="empty-event"),
        pytest.param('{"event": "pusher:hello", "data": {}}', "pusher:hello", id="unknown-pusher"),
        pytest.param('{"event": "hello"}', "hello", id="unknown-plain-event"),
        pytest.param('{"event": "pusher:subscribe"}', "data", id="subscribe-without-data"),
        pytest.param(
            '{"event": "pusher:subscribe", "data": "{oops"}', "data", id="subscribe-bad-data"
        ),
        pytest.param(
            '{"event": "pusher:subscribe", "data": {"channel": 7}}',
            "channel",
            id="subscribe-channel-not-a-string",
        ),
        pytest.param(
            '{"event": "pusher:signin", "data": {"auth": "x"}}', "user_data", id="signin-no-data"
        ),
        pytest.param('{"event": "client-x", "data": {}}', "channel", id="client-event-no-channel"),
    ],
)
async def test_malformed_message_gets_pusher_error_and_connection_stays_open(
    server: RunningServer, http: aiohttp.ClientSession, frame: str, contains: str
) -> None:
    async with connect(http, server) as socket:
        await socket.ws.send_str(frame)
        assert_error(await socket.receive(), None, contains=contains)
        await socket.ping()


async def test_binary_frame_gets_pusher_error_and_connection_stays_open(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as socket:
        await socket.ws.send_bytes(b'{"event": "pusher:ping", "data": {}}')
        assert_error(await socket.receive(), None, contains="binary")
        await socket.ping()


async def test_message_over_the_soft_limit_gets_pusher_error_and_stays_open(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as socket:
        padding = "x" * SOFT_LIMIT
        await socket.send("pusher:ping", {"padding": padding})
        assert_error(await socket.receive(), 4301, contains="too large")
        await socket.ping()


async def test_message_over_the_hard_limit_closes_with_1009(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as socket, connect(http, server) as bystander:
        await bystander.subscribe("calm")
        await socket.send("pusher:ping", {"padding": "x" * HARD_LIMIT})
        await socket.expect_closed(MESSAGE_TOO_BIG)
        await trigger(http, server, ["calm"], "still-fine", "ok")
        assert (await bystander.expect("still-fine", "calm"))["data"] == "ok"


# --- WebSocket: subscriptions ----------------------------------------------------------------


@pytest.mark.parametrize(
    "channel",
    [
        pytest.param("has space", id="space"),
        pytest.param("bang!", id="bang"),
        pytest.param("é-accent", id="non-ascii"),
        pytest.param("#hash", id="hash-not-user-channel"),
        pytest.param("x" * 201, id="too-long"),
        pytest.param("", id="empty"),
    ],
)
async def test_bad_channel_name_gets_subscription_error(
    server: RunningServer, http: aiohttp.ClientSession, channel: str
) -> None:
    async with connect(http, server) as socket:
        await socket.send("pusher:subscribe", {"auth": "", "channel": channel})
        refusal = await socket.expect("pusher:subscription_error", channel)
        assert refusal["data"]["type"] == "InvalidChannel"
        assert refusal["data"]["status"] == 400
        assert "channel name" in refusal["data"]["error"].lower()
        await socket.subscribe("good-channel")


AuthBuilder = Callable[[RunningServer, str, str], str]

# Tokens a subscriber may send for (server, socket_id, channel) that must all be refused.
WRONG_AUTHS: dict[str, AuthBuilder] = {
    "empty": lambda server, socket_id, channel: "",
    "no-colon": lambda server, socket_id, channel: "no-colon",
    "zeros": lambda server, socket_id, channel: f"{server.key}:{'0' * 64}",
    "wrong-secret": lambda server, socket_id, channel: channel_auth(
        server.key, "wrong-secret", socket_id, channel
    ),
    "wrong-key": lambda server, socket_id, channel: channel_auth(
        "other-key", server.secret, socket_id, channel
    ),
    "other-socket": lambda server, socket_id, channel: channel_auth(
        server.key, server.secret, "1.1", channel
    ),
    "other-channel": lambda server, socket_id, channel: channel_auth(
        server.key, server.secret, socket_id, "private-other"
    ),
}


@pytest.mark.parametrize("variant", list(WRONG_AUTHS))
async def test_wrong_private_auth_gets_auth_error_401(
    server: RunningServer, http: aiohttp.ClientSession, variant: str
) -> None:
    async with connect(http, server) as socket:
        channel = "private-vault"
        auth = WRONG_AUTHS[variant](server, socket.socket_id, channel)
        await socket.send("pusher:subscribe", {"auth": auth, "channel": channel})
        refusal = await socket.expect("pusher:subscription_error", channel)
        assert refusal["data"]["type"] == "AuthError"
        assert refusal["data"]["status"] == 401
        assert refusal["data"]["error"]
        # The refusal is not sticky: a correct token then works.
        await subscribe_private(socket, server, channel)


async def test_presence_auth_signed_over_other_channel_data_is_refused(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as socket:
        channel = "presence-room"
        signed = json.dumps({"user_id": "1"})
        auth = channel_auth(server.key, server.secret, socket.socket_id, channel, signed)
        forged = json.dumps({"user_id": "admin"})
        await socket.send(
            "pusher:subscribe", {"auth": auth, "channel": channel, "channel_data": forged}
        )
        refusal = await socket.expect("pusher:subscription_error", channel)
        assert refusal["data"]["type"] == "AuthError"
        assert refusal["data"]["status"] == 401


# --- WebSocket: client events ----------------------------------------------------------------


async def test_client_event_when_not_subscribed_is_rejected_with_4301(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as sender, connect(http, server) as member:
        await subscribe_private(member, server, "private-chat")
        await sender.send("client-typing", {"who": "intruder"}, "private-chat")
        error = await sender.receive()
        assert_error(error, 4301, contains="subscription")
        assert error["channel"] == "private-chat"
        await sender.ping()
        # The member never got the intruder's event: its next event is this one.
        await trigger(http, server, ["private-chat"], "marker", "")
        await member.expect("marker", "private-chat")


async def test_client_event_on_a_public_channel_is_rejected_with_4301(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with connect(http, server) as sender, connect(http, server) as listener:
        await sender.subscribe("lobby")
        await listener.subscribe("lobby")
        await sender.send("client-typing", {"x": 1}, "lobby")
        error = await sender.receive()
        assert_error(error, 4301, contains="private and presence")
        assert error["channel"] == "lobby"
        await trigger(http, server, ["lobby"], "marker", "")
        await listener.expect("marker", "lobby")


async def test_client_events_over_10_per_second_are_rejected_with_4301(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    burst = 25
    async with connect(http, server) as sender, connect(http, server) as listener:
        await subscribe_private(sender, server, "private-chat")
        await subscribe_private(listener, server, "private-chat")
        for n in range(burst):
            await sender.send("client-n", {"n": n}, "private-chat")
        await sender.send("pusher:ping", {})
        rejected = 0
        while (message := await sender.receive())["event"] != "pusher:pong":
            assert_error(message, 4301, contains="rate limit")
            assert message["channel"] == "private-chat"
            rejected += 1
        delivered = burst - rejected
        # 10 a second; a burst that straddles a second boundary may get 20 through.
        assert 10 <= delivered <= 20, rejected
        seen = [
            data_of(await listener.expect("client-n", "private-chat"))["n"]
            for _ in range(delivered)
        ]
        assert seen == sorted(seen)
        await trigger(http, server, ["private-chat"], "marker", "")
        await listener.expect("marker", "private-chat")  # nothing more than `delivered`


# --- WebSocket: refused connections ----------------------------------------------------------


async def expect_refusal(ws: aiohttp.ClientWebSocketResponse, code: int, contains: str) -> None:
    """pusher:error with `code` first, then a close with the same code (§1)."""
    socket = PusherSocket(ws, "", {})
    assert_error(await socket.receive(skip=()), code, contains=contains)
    await socket.expect_closed(code)


@pytest.mark.parametrize(
    ("path", "code", "contains"),
    [
        pytest.param(f"/app/no-such-key?{PUSHER_QUERY}", 4001, "key", id="unknown-key-4001"),
        pytest.param("/app/{key}?client=js&version=8.4.0", 4008, "protocol", id="no-protocol-4008"),
        pytest.param("/app/{key}?protocol=&client=js", 4008, "protocol", id="empty-protocol-4008"),
        pytest.param("/app/{key}?protocol=abc&client=js", 4006, "version", id="protocol-abc-4006"),
        pytest.param("/app/{key}?protocol=3&client=js", 4007, "version", id="protocol-3-4007"),
        pytest.param("/app/{key}?protocol=8&client=js", 4007, "version", id="protocol-8-4007"),
        pytest.param(f"/foo?{PUSHER_QUERY}", 4005, "path", id="bad-path-4005"),
        pytest.param(f"/apps/{{key}}?{PUSHER_QUERY}", 4005, "path", id="apps-path-4005"),
    ],
)
async def test_connection_refused_with_pusher_error_then_close(
    server: RunningServer, http: aiohttp.ClientSession, path: str, code: int, contains: str
) -> None:
    url = f"ws://{server.host}:{server.port}{path.replace('{key}', server.key)}"
    await expect_refusal(await open_socket(http, url), code, contains)
    async with connect(http, server) as socket:  # the server is unaffected
        await socket.ping()


async def test_disabled_app_refuses_connections_with_4003(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    server = start_server(tmp_path, extra_env={"RESSONANCE_APP_ENABLED": "false"})
    try:
        await expect_refusal(await open_socket(http, ws_url(server)), 4003, "disabled")
        status, body = await api_request(http, server, "GET", f"/apps/{server.app_id}/channels")
        assert status == 403
        assert body == {"error": "App is disabled", "code": 403}
    finally:
        stop_server(server)


async def test_third_connection_over_max_connections_gets_4004(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    server = start_server(tmp_path, extra_env={"RESSONANCE_APP_MAX_CONNECTIONS": "2"})
    try:
        async with connect(http, server) as first, connect(http, server) as second:
            await first.subscribe("room")
            await second.subscribe("room")
            await expect_refusal(await open_socket(http, ws_url(server)), 4004, "quota")
            await first.ping()
            await trigger(http, server, ["room"], "still-served", "yes")
            for socket in (first, second):
                assert (await socket.expect("still-served", "room"))["data"] == "yes"
        # Both closed: their places are free again.
        async with connect(http, server) as again:
            await again.ping()
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        pytest.param("https://evil.example", False, id="other-origin"),
        pytest.param("http://good.example", False, id="other-scheme"),
        pytest.param("https://good.example.evil.example", False, id="suffix-trick"),
        pytest.param("https://good.example", True, id="allowed-origin"),
        pytest.param(None, True, id="no-origin-server-side-client"),
    ],
)
async def test_origin_outside_the_allow_list_is_refused_with_4009(
    tmp_path: Path, http: aiohttp.ClientSession, origin: str | None, allowed: bool
) -> None:
    extra_env = {"RESSONANCE_APP_ALLOWED_ORIGINS": "https://good.example"}
    server = start_server(tmp_path, extra_env=extra_env)
    try:
        if allowed:
            async with connect(http, server, origin=origin) as socket:
                await socket.ping()
        else:
            ws = await open_socket(http, ws_url(server), origin=origin)
            await expect_refusal(ws, 4009, "origin")
    finally:
        stop_server(server)


# --- HTTP API: authentication ----------------------------------------------------------------


def events_path(server: RunningServer) -> str:
    return f"/apps/{server.app_id}/events"


EVENT_BODY = json.dumps({"name": "e", "data": "d", "channels": ["c"]}).encode()


async def raw_request(
    http: aiohttp.ClientSession,
    server: RunningServer,
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Send a request as given; assert the answer is a JSON error body and return it."""
    async with (
        asyncio.timeout(TIMEOUT),
        http.request(method, api_url(server, path, query), data=body, headers=headers) as response,
    ):
        assert response.content_type == "application/json"
        payload = await response.json()
        return response.status, payload


def assert_api_error(status: int, body: Any, expected_status: int, contains: str = "") -> None:
    assert status == expected_status, body
    assert set(body) == {"error", "code"}, body
    assert body["code"] == expected_status
    assert isinstance(body["error"], str)
    assert body["error"]
    assert contains.lower() in body["error"].lower(), body


async def test_unsigned_request_is_401(server: RunningServer, http: aiohttp.ClientSession) -> None:
    status, body = await raw_request(http, server, "POST", events_path(server), body=EVENT_BODY)
    assert_api_error(status, body, 401, "auth_key")


async def test_bad_signature_is_401(server: RunningServer, http: aiohttp.ClientSession) -> None:
    query = signed_query(server, "POST", events_path(server), EVENT_BODY, secret="wrong")
    status, body = await raw_request(http, server, "POST", events_path(server), query, EVENT_BODY)
    assert_api_error(status, body, 401, "signature")


async def test_signature_of_another_path_is_401(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    query = signed_query(server, "POST", f"/apps/{server.app_id}/batch_events", EVENT_BODY)
    status, body = await raw_request(http, server, "POST", events_path(server), query, EVENT_BODY)
    assert_api_error(status, body, 401, "signature")


async def test_unknown_auth_key_is_401(server: RunningServer, http: aiohttp.ClientSession) -> None:
    query = signed_query(server, "POST", events_path(server), EVENT_BODY)
    query["auth_key"] = "someone-else"
    status, body = await raw_request(http, server, "POST", events_path(server), query, EVENT_BODY)
    assert_api_error(status, body, 401, "auth_key")


@pytest.mark.parametrize("offset", [-3600, 3600], ids=["expired", "from-the-future"])
async def test_timestamp_outside_600s_is_401_naming_the_timestamp(
    server: RunningServer, http: aiohttp.ClientSession, offset: int
) -> None:
    stamp = int(time.time()) + offset
    query = signed_query(server, "POST", events_path(server), EVENT_BODY, timestamp=stamp)
    status, body = await raw_request(http, server, "POST", events_path(server), query, EVENT_BODY)
    assert_api_error(status, body, 401, "timestamp")
    assert str(stamp) in body["error"]


async def test_wrong_body_md5_is_401(server: RunningServer, http: aiohttp.ClientSession) -> None:
    path = events_path(server)
    other = json.dumps({"name": "e", "data": "tampered", "channels": ["c"]}).encode()
    query = signed_query(server, "POST", path, other)  # signed, with the md5 of another body
    status, body = await raw_request(http, server, "POST", path, query, EVENT_BODY)
    assert_api_error(status, body, 401, "body_md5")


async def test_body_without_body_md5_is_401(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    path = events_path(server)
    query = signed_query(server, "POST", path)  # signed as if there were no body
    status, body = await raw_request(http, server, "POST", path, query, EVENT_BODY)
    assert_api_error(status, body, 401, "body_md5")


# --- HTTP API: validation --------------------------------------------------------------------


def _event(**fields: object) -> dict[str, object]:
    return {"name": "e", "data": "d", "channels": ["c"], **fields}


@pytest.mark.parametrize(
    ("body", "status", "contains"),
    [
        pytest.param(b'{"name": "e", ', 400, "json", id="malformed-json"),
        pytest.param(b"[1, 2]", 400, "object", id="json-array"),
        pytest.param({"data": "d", "channels": ["c"]}, 400, "name", id="missing-name"),
        pytest.param(_event(name=""), 400, "name", id="empty-name"),
        pytest.param(_event(name="n" * 201), 400, "name", id="name-too-long"),
        pytest.param(_event(data={"an": "object"}), 400, "data", id="data-not-a-string"),
        pytest.param({"name": "e", "channels": ["c"]}, 400, "data", id="missing-data"),
        pytest.param(_event(data="x" * (10 * 1024 + 1)), 413, "10 KB", id="data-over-10kb"),
        pytest.param({"name": "e", "data": "d"}, 400, "channels", id="missing-channels"),
        pytest.param(_event(channels=[]), 400, "channels", id="no-channels"),
        pytest.param(_event(channels=[f"c{n}" for n in range(101)]), 400, "101", id="101-channels"),
        pytest.param(_event(channels=["bad channel"]), 400, "channel name", id="bad-channel"),
        pytest.param(_event(channels=["x" * 201]), 400, "channel name", id="channel-too-long"),
        pytest.param(_event(channels=[42]), 400, "channel name", id="channel-not-a-string"),
        pytest.param(_event(socket_id="abc"), 400, "socket_id", id="bad-socket-id"),
        pytest.param(_event(socket_id="1.2.3"), 400, "socket_id", id="socket-id-three-parts"),
        pytest.param(_event(info="everything"), 400, "info", id="unknown-info"),
    ],
)
async def test_bad_trigger_body_is_rejected(
    server: RunningServer,
    http: aiohttp.ClientSession,
    body: object,
    status: int,
    contains: str,
) -> None:
    got_status, got_body = await api_request(http, server, "POST", events_path(server), body)
    assert_api_error(got_status, got_body, status, contains)


def _batch(count: int, **fields: object) -> dict[str, object]:
    return {"batch": [{"name": "e", "data": "d", "channel": "c", **fields}] * count}


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        pytest.param(_batch(11), "limit is 10", id="batch-of-11"),
        pytest.param({"batch": []}, "batch", id="empty-batch"),
        pytest.param({"events": []}, "batch", id="no-batch"),
        pytest.param({"batch": ["x"]}, "batch[0]", id="item-not-an-object"),
        pytest.param(_batch(2, channel="bad channel"), "batch[0]", id="bad-channel-in-batch"),
    ],
)
async def test_bad_batch_is_400(
    server: RunningServer, http: aiohttp.ClientSession, body: object, contains: str
) -> None:
    path = f"/apps/{server.app_id}/batch_events"
    status, got = await api_request(http, server, "POST", path, body)
    assert_api_error(status, got, 400, contains)


@pytest.mark.parametrize(
    ("path", "params", "contains"),
    [
        pytest.param("/channels", {"info": "user_count"}, "presence-", id="user-count-no-prefix"),
        pytest.param(
            "/channels",
            {"info": "user_count", "filter_by_prefix": "private-"},
            "presence-",
            id="user-count-private-prefix",
        ),
        pytest.param("/channels", {"info": "bogus"}, "info", id="channels-unknown-info"),
        pytest.param("/channels/public-x", {"info": "user_count"}, "presence", id="user-count"),
        pytest.param("/channels/public-x", {"info": "cache"}, "cache", id="cache-not-cache"),
        pytest.param("/channels/bad%20name", {}, "channel name", id="bad-channel-name"),
        pytest.param("/channels/public-x/users", {}, "presence", id="users-of-public"),
        pytest.param("/channels/private-x/users", {}, "presence", id="users-of-private"),
    ],
)
async def test_bad_query_is_400(
    server: RunningServer,
    http: aiohttp.ClientSession,
    path: str,
    params: dict[str, str],
    contains: str,
) -> None:
    full = f"/apps/{server.app_id}{path}"
    # Signed over the decoded path, as the server sees it.
    query = signed_query(server, "GET", full.replace("%20", " "), params=params)
    async with (
        asyncio.timeout(TIMEOUT),
        http.get(server.http_url + full, params=query) as response,
    ):
        status, body = response.status, await response.json()
    assert_api_error(status, body, 400, contains)


async def test_unknown_app_is_404(server: RunningServer, http: aiohttp.ClientSession) -> None:
    path = "/apps/999999/events"
    query = signed_query(server, "POST", path, EVENT_BODY)
    status, body = await raw_request(http, server, "POST", path, query, EVENT_BODY)
    assert_api_error(status, body, 404, "999999")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/apps/{app}/nope", id="unknown-api-endpoint"),
        pytest.param("POST", "/apps/{app}/events/extra", id="events-subpath"),
        pytest.param("GET", "/nope", id="unknown-path"),
        pytest.param("DELETE", "/", id="root"),
    ],
)
async def test_unknown_endpoint_is_404_json(
    server: RunningServer, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    full = path.replace("{app}", server.app_id)
    status, body = await raw_request(http, server, method, full)
    assert_api_error(status, body, 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("GET", "/apps/{app}/events", "POST", id="get-events"),
        pytest.param("PUT", "/apps/{app}/batch_events", "POST", id="put-batch"),
        pytest.param("POST", "/apps/{app}/channels", "GET", id="post-channels"),
        pytest.param("DELETE", "/apps/{app}/channels/x/users", "GET", id="delete-users"),
        pytest.param("GET", "/users/42/terminate_connections", "POST", id="get-terminate"),
    ],
)
async def test_wrong_method_is_405_json(
    server: RunningServer, http: aiohttp.ClientSession, method: str, path: str, allowed: str
) -> None:
    full = path.replace("{app}", server.app_id)
    status, body = await raw_request(http, server, method, full)
    assert_api_error(status, body, 405, allowed)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_the_server_limit_is_413_json(
    server: RunningServer, http: aiohttp.ClientSession, chunked: bool
) -> None:
    path = events_path(server)
    big = json.dumps(_event(data="x" * (300 * 1024))).encode()
    query = signed_query(server, "POST", path, big)
    headers = {"Content-Type": "application/json"}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 16 * 1024):
            yield big[start : start + 16 * 1024]

    body: Any = chunks() if chunked else big
    async with (
        asyncio.timeout(TIMEOUT),
        http.post(api_url(server, path, query), data=body, headers=headers) as response,
    ):
        assert response.status == 413
        assert response.content_type == "application/json"
        payload = await response.json()
    assert_api_error(413, payload, 413, "256 KB")
    # The server is fine afterwards.
    assert await trigger(http, server, ["c"], "e", "small") == {}


async def test_python_sdk_style_md5_on_get_is_accepted(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    # The PyPI SDK adds body_md5 (of the empty body) to GETs too (§0.8, §5.6).
    path = f"/apps/{server.app_id}/channels"
    query = {
        "auth_key": server.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(b"").hexdigest(),
    }
    query["auth_signature"] = sign_request(server.secret, "GET", path, query)
    async with (
        asyncio.timeout(TIMEOUT),
        http.get(api_url(server, path, query)) as response,
    ):
        assert response.status == 200
        assert set(await response.json()) == {"channels"}


# --- one bad client never breaks another -----------------------------------------------------

GARBAGE: list[str | bytes] = [
    "{not json",
    "[]",
    '{"event": "pusher:nope"}',
    '{"event": "pusher:subscribe", "data": {"channel": "bad channel"}}',
    '{"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": "k:bad"}}',
    '{"event": "client-x", "channel": "private-y", "data": {}}',
    b"\x00\xff binary",
    "x" * (SOFT_LIMIT + 1),
]


@pytest.fixture
def unthrottled(tmp_path: Path) -> Iterator[RunningServer]:
    """A node whose per-connection message rate limit is out of the way (2000 frames at once);
    the limit itself is hit on purpose in test_abuse.py."""
    running = start_server(
        tmp_path, extra_env={"RESSONANCE_APP_MAX_INBOUND_MESSAGES_PER_SEC": "100000"}
    )
    yield running
    stop_server(running)


async def test_a_flooding_client_does_not_stall_a_subscriber(
    unthrottled: RunningServer, http: aiohttp.ClientSession
) -> None:
    server = unthrottled
    frames, events = 2000, 50
    async with connect(http, server) as flooder, connect(http, server) as subscriber:
        await subscriber.subscribe("steady")

        async def flood() -> None:
            for n in range(frames):
                frame = GARBAGE[n % len(GARBAGE)]
                if isinstance(frame, bytes):
                    await flooder.ws.send_bytes(frame)
                else:
                    await flooder.ws.send_str(frame)
                if n % 100 == 0:
                    await asyncio.sleep(0)

        async def publish() -> None:
            for n in range(events):
                await trigger(http, server, ["steady"], "tick", str(n))

        async def drain_flooder() -> int:
            """Every garbage frame gets exactly one answer, then pong."""
            answers = 0
            while (message := await flooder.receive(within=20, skip=()))["event"] != "pusher:pong":
                assert message["event"] in ("pusher:error", "pusher:subscription_error")
                answers += 1
            return answers

        async with asyncio.timeout(30):
            flooding = asyncio.create_task(flood())
            await publish()
            await flooding
            await flooder.send("pusher:ping", {})
            answers = await drain_flooder()
            ticks = [(await subscriber.expect("tick", "steady"))["data"] for _ in range(events)]
        assert answers == frames
        assert ticks == [str(n) for n in range(events)]
        await subscriber.ping()
