"""Plans and quotas (docs/topics/plans.md), each hit on purpose by real clients.

Single-node tests drive the server as users do: pusher-js (Node) for the free plan's 100
connections, the unmodified PyPI `pusher` SDK for publishes, and raw WebSockets speaking the
pusher-js wire protocol (tests/e2e/pusher_ws.py) for client events and presence. The
cluster tests run two nodes over one real Redis (valkey from its wheel) and check that the
connection quota and the daily message quota hold across them.

Limits answered by request validation (payload size 413, event name length, channels per
publish and batch size 400) are hit in tests/e2e/test_bad_input.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pusher
import pusher.errors
import pytest
from redis.asyncio import Redis

from ressonance.protocol.signing import channel_auth
from tests import services
from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.node_clients import run_scenario
from tests.e2e.pusher_ws import (
    PusherSocket,
    api_url,
    connect,
    open_socket,
    signed_query,
    trigger,
    ws_url,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@contextlib.contextmanager
def server_with(tmp_path: Path, **app: str) -> Iterator[RunningServer]:
    """A node whose one app has the given settings (RESSONANCE_APP_<NAME> variables)."""
    env = {f"RESSONANCE_APP_{name.upper()}": value for name, value in app.items()}
    running = start_server(tmp_path, extra_env=env)
    try:
        yield running
    finally:
        stop_server(running)


def sdk(server: RunningServer) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=server.app_id,
        key=server.key,
        secret=server.secret,
        host=server.host,
        port=server.port,
        ssl=False,
    )


async def sdk_trigger(server: RunningServer, channel: str, event: str, data: object) -> None:
    async with asyncio.timeout(10):
        await asyncio.to_thread(sdk(server).trigger, channel, event, data)


async def request(
    http: aiohttp.ClientSession, server: RunningServer, method: str, path: str, body: object = None
) -> tuple[int, Any, dict[str, str]]:
    """A signed request; the status, the JSON body and the headers."""
    raw = b"" if body is None else json.dumps(body).encode()
    query = signed_query(server, method, path, raw)
    async with (
        asyncio.timeout(10),
        http.request(method, api_url(server, path, query), data=raw or None) as response,
    ):
        return response.status, await response.json(content_type=None), dict(response.headers)


def assert_rate_limited(status: int, body: Any, headers: dict[str, str], limit: int) -> None:
    assert status == 429, body
    assert body["code"] == 429
    assert f"allows {limit} a second" in body["error"]
    assert int(headers["Retry-After"]) >= 1
    assert headers["X-RateLimit-Limit"] == str(limit)
    assert headers["X-RateLimit-Remaining"] == "0"


async def errors_until_pong(socket: PusherSocket) -> list[dict[str, Any]]:
    """The pusher:error messages `socket` gets before the pong of a ping sent now."""
    await socket.send("pusher:ping", {})
    errors = []
    while (message := await socket.receive())["event"] != "pusher:pong":
        if message["event"] == "pusher:error":
            errors.append(message)
    return errors


# --- one node ----------------------------------------------------------------------------------


def test_the_free_plans_101st_connection_is_refused_while_the_first_100_are_served(
    tmp_path: Path,
) -> None:
    with (
        server_with(tmp_path, plan="free") as server,
        run_scenario(server, "pusherjs_quota.mjs") as seen,
    ):
        assert seen["received"] == [2] * 100
        assert seen["states"] == ["connected"] * 100
        refused = seen["over_quota"]
        error = refused["connection_errors"][0]["error"]  # pusher-js's WebSocketError
        assert error["data"] == {
            "code": 4004,
            "message": "Over the app's connection quota (max_connections = 100)",
        }
        assert "connected" not in refused["states"]
        assert refused["final_state"] == "disconnected"  # pusher-js does not retry 4004


async def test_an_exhausted_day_gives_the_sdk_403_and_clients_keep_their_connections(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    quota = {"max_messages_per_day": "6", "subscription_count": "false"}
    with server_with(tmp_path, **quota) as server:
        async with connect(http, server) as listener, connect(http, server) as talker:
            await listener.subscribe("news")
            for channel in ("private-chat",):
                for socket in (listener, talker):
                    token = channel_auth(server.key, server.secret, socket.socket_id, channel)
                    await socket.subscribe(channel, token)
            for n in range(3):  # one publish + one delivery each: 6
                await sdk_trigger(server, "news", "tick", {"n": n})
                await listener.expect("tick", "news")

            with pytest.raises(pusher.errors.PusherForbidden) as refused:
                await sdk_trigger(server, "news", "tick", {"n": 3})
            await talker.send("client-hi", {}, "private-chat")
            (rejected,) = await errors_until_pong(talker)

            assert "max_messages_per_day = 6" in str(refused.value)
            assert rejected["data"]["code"] == 4301
            assert "daily message quota" in rejected["data"]["message"]
            await listener.ping()  # still connected and served
            await talker.ping()


async def test_backend_events_over_the_rate_get_429_with_the_headers(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with server_with(tmp_path, max_backend_events_per_sec="2") as server:
        path = f"/apps/{server.app_id}/events"
        body = {"name": "e", "data": "{}", "channels": ["news"]}
        answers = [await request(http, server, "POST", path, body) for _ in range(8)]

        statuses = [status for status, _, _ in answers]
        assert statuses.count(200) in (2, 3, 4), statuses  # a burst spans one or two seconds
        assert_rate_limited(*answers[statuses.index(429)], limit=2)
        sdk_errors = []
        for n in range(4):  # what the PyPI SDK raises on a 429
            try:
                await sdk_trigger(server, "news", "e", {"n": n})
            except pusher.errors.PusherBadStatus as exc:
                sdk_errors.append(str(exc))
        assert sdk_errors
        assert sdk_errors[0].startswith("429: ")


async def test_read_requests_over_the_rate_get_429_with_the_headers(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with server_with(tmp_path, max_read_requests_per_sec="2") as server:
        path = f"/apps/{server.app_id}/channels"
        answers = [await request(http, server, "GET", path) for _ in range(8)]

        statuses = [status for status, _, _ in answers]
        assert statuses.count(200) in (2, 3, 4), statuses
        assert_rate_limited(*answers[statuses.index(429)], limit=2)


async def test_client_events_over_the_apps_rate_get_4301(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with server_with(tmp_path, max_app_client_events_per_sec="2") as server:
        async with connect(http, server) as sender, connect(http, server) as reader:
            for socket in (sender, reader):
                token = channel_auth(server.key, server.secret, socket.socket_id, "private-chat")
                await socket.subscribe("private-chat", token)
            for n in range(6):  # under the connection's own 10 a second
                await sender.send("client-n", {"n": n}, "private-chat")
            errors = await errors_until_pong(sender)

            assert 2 <= len(errors) <= 4, errors  # a burst spans one or two seconds
            for error in errors:
                assert error["data"] == {
                    "code": 4301,
                    "message": "Client event rejected due to rate limit "
                    "(2 per second for the whole app)",
                }
                assert error["channel"] == "private-chat"
            delivered = [await reader.expect("client-n") for _ in range(6 - len(errors))]
            assert len(delivered) == 6 - len(errors)


async def test_a_full_presence_channel_and_a_large_member_are_refused(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with server_with(tmp_path, max_presence_members_per_channel="2") as server:
        channel = "presence-room"
        async with (
            connect(http, server) as a,
            connect(http, server) as b,
            connect(http, server) as c,
        ):
            for socket, user in ((a, "ann"), (b, "bob")):
                data = json.dumps({"user_id": user})
                token = channel_auth(server.key, server.secret, socket.socket_id, channel, data)
                await socket.subscribe(channel, token, data)
            third = json.dumps({"user_id": "cat"})
            token = channel_auth(server.key, server.secret, c.socket_id, channel, third)
            await c.send(
                "pusher:subscribe", {"channel": channel, "auth": token, "channel_data": third}
            )
            full = await c.expect("pusher:subscription_error", channel)
            large = json.dumps({"user_id": "dan", "user_info": {"bio": "x" * 1100}})
            token = channel_auth(server.key, server.secret, c.socket_id, "presence-big", large)
            await c.send(
                "pusher:subscribe",
                {"channel": "presence-big", "auth": token, "channel_data": large},
            )
            too_large = await c.expect("pusher:subscription_error", "presence-big")

            assert full["data"] == {
                "type": "LimitReached",
                "error": "Presence channel is full (2 members)",
                "status": 4100,
            }
            assert too_large["data"]["status"] == 4301
            assert "larger than 1 KB" in too_large["data"]["error"]
            await c.ping()


# --- two nodes over Redis -------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[services.ServerProcess]:
    with services.running(services.valkey(tmp_path / "valkey")) as server:
        yield server


@contextlib.contextmanager
def two_nodes(
    tmp_path: Path, redis_server: services.ServerProcess, **app: str
) -> Iterator[list[RunningServer]]:
    config = tmp_path / "cluster.toml"
    config.write_text(
        f'[server]\nbackbone = "{redis_server.url}"\nstate = "{redis_server.url}"\n'
        "node_ttl = 3.0\ndrain_seconds = 1.0\n"
    )
    env = {f"RESSONANCE_APP_{name.upper()}": value for name, value in app.items()}
    nodes: list[RunningServer] = []
    try:
        for _ in range(2):
            nodes.append(start_server(tmp_path, env, ["--config", str(config)]))
        yield nodes
    finally:
        for node in nodes:
            stop_server(node)


async def test_the_connection_quota_holds_across_nodes(
    tmp_path: Path, redis_server: services.ServerProcess, http: aiohttp.ClientSession
) -> None:
    with two_nodes(tmp_path, redis_server, max_connections="3") as (a, b):
        async with connect(http, a) as first, connect(http, a), connect(http, b):
            for node in (a, b):  # the 4th, wherever it arrives
                refused = PusherSocket(await open_socket(http, ws_url(node)), "", {})
                error = await refused.receive(skip=())
                assert error["data"]["code"] == 4004
                assert "max_connections = 3" in error["data"]["message"]
                await refused.expect_closed(4004)
            await first.ping()
        # All three closed: their places are free on either node, once each node has handled
        # its clients' closes (the client does not wait for that), so a 4004 meanwhile is retried.
        deadline = time.monotonic() + 10
        while True:
            try:
                async with connect(http, b), connect(http, b), connect(http, a) as again:
                    await again.ping()
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def stored_messages(redis_url: str, app_id: str) -> int:
    """The app's messages in the shared store, over yesterday and today (UTC): a test run
    may cross midnight."""
    client: Redis = Redis.from_url(redis_url)
    now = time.time()
    days = {time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (now - 60, now)}
    try:
        counts = [await client.hget(f"ressonance:usage:{app_id}:{day}", "messages") for day in days]
    finally:
        await client.aclose()
    return sum(int(count or 0) for count in counts)


async def test_the_daily_message_quota_holds_across_nodes(
    tmp_path: Path, redis_server: services.ServerProcess, http: aiohttp.ClientSession
) -> None:
    quota = {"max_messages_per_day": "4", "subscription_count": "false"}
    with two_nodes(tmp_path, redis_server, **quota) as (a, b):
        async with connect(http, a) as listener:
            await listener.subscribe("news")
            # Published on b (1 each, counted by b), delivered on a (1 each, counted by a).
            for n in range(2):
                await trigger(http, b, ["news"], "tick", json.dumps({"n": n}))
                await listener.expect("tick", "news")
            deadline = time.monotonic() + 5  # both nodes' timers store their counts
            while await stored_messages(redis_server.url, a.app_id) < 4:
                assert time.monotonic() < deadline, "the counts never reached the store"
                await asyncio.sleep(0.1)

            path = f"/apps/{a.app_id}/events"
            late = {"name": "late", "data": "{}", "channels": ["elsewhere"]}
            # a counted only 2 itself: its refusal comes from the cluster's total.
            status, answer, _ = await request(http, a, "POST", path, late)
            assert status == 403, answer
            assert "max_messages_per_day = 4" in answer["error"]
            # b's total is refreshed on its next timer tick.
            deadline = time.monotonic() + 5
            while (status := (await request(http, b, "POST", path, late))[0]) != 403:
                assert time.monotonic() < deadline, f"b still answers {status}"
                await asyncio.sleep(0.2)
            await listener.ping()  # the listener keeps its connection
