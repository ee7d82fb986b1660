"""The server's log as an operator reads it: debug lines per event, refusals, never a secret.

A node started with `RESSONANCE_DEBUG=1` (or `--debug`) is driven by a real client: the log
must tell its story (opened, subscribed, refused, published, closed), say why each refusal
happened, hold no line of other libraries' debug output, and never an app secret or the
admin token, not even of an app created while it runs. Without debug, refusals are still
logged, and a flood of them is a few lines.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.pusher_ws import (
    TIMEOUT,
    api_url,
    connect,
    open_socket,
    signed_query,
    trigger,
    ws_url,
)

pytestmark = pytest.mark.e2e

TOKEN = "e2e-admin-token-debug-7c1d"


def create_app(server: RunningServer) -> dict[str, str]:
    request = urllib.request.Request(
        f"{server.http_url}/admin/v1/apps",
        data=json.dumps({"name": "debugged"}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        created: dict[str, str] = json.loads(response.read())
    return created


async def until_served(http: aiohttp.ClientSession, server: RunningServer) -> None:
    """Wait until the node serves the new app (apps_refresh_seconds)."""
    async with asyncio.timeout(15):
        while True:
            ws = await open_socket(http, ws_url(server))
            first = json.loads((await ws.receive()).data)
            await ws.close()
            if first["event"] == "pusher:connection_established":
                return
            await asyncio.sleep(0.2)


async def story(server: RunningServer) -> str:
    """What a client does: its socket id."""
    async with aiohttp.ClientSession() as http:
        await until_served(http, server)
        async with connect(http, server) as socket:
            await socket.subscribe("news")
            await socket.send("pusher:subscribe", {"channel": "private-orders", "auth": "x:bad"})
            await socket.expect("pusher:subscription_error", "private-orders")
            await trigger(http, server, ["news"], "update", "{}")
            await socket.expect("update", "news")
            socket_id = socket.socket_id
        forged = signed_query(server, "POST", f"/apps/{server.app_id}/events", b"{}")
        forged["auth_signature"] = "0" * 64
        url = api_url(server, f"/apps/{server.app_id}/events", forged)
        async with http.post(url, data=b"{}") as response:
            assert response.status == 401
        wrong = replace(server, key="no-such-key")
        ws = await open_socket(http, ws_url(wrong))
        assert json.loads((await ws.receive()).data)["data"]["code"] == 4001
        await ws.close()
        await asyncio.sleep(0.5)  # the server sees the closes
    return socket_id


async def test_debug_logs_tell_a_clients_story_and_never_hold_a_secret(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        extra_env={"RESSONANCE_ADMIN_TOKEN": TOKEN, "RESSONANCE_DEBUG": "1"},
        args=["--apps", f"sqlite:///{tmp_path / 'apps.db'}"],
        env_app=False,
    )
    try:
        app = create_app(server)
        server = replace(server, app_id=app["id"], key=app["key"], secret=app["secret"])
        socket_id = await story(server)
    finally:
        stop_server(server)
    log = server.log()

    assert app["secret"] not in log
    assert TOKEN not in log
    for line in (
        f"DEBUG ressonance.server.gate event=connection_opened socket_id={socket_id} "
        f"app_id={app['id']} address=127.0.0.1",
        f"DEBUG ressonance.server.subscriptions event=subscribed socket_id={socket_id} "
        "channel=news user_id=-",
        f"INFO ressonance.server.refusal_log event=refused kind=subscribe code=401 "
        f"app_id={app['id']} socket_id={socket_id} channel='private-orders' "
        "reason='Invalid signature: expected HMAC SHA256 hex digest of "
        f"{socket_id}:private-orders'",
        f"DEBUG ressonance.server.http_api event=api_call method='POST' endpoint=events "
        f"app_id={app['id']} status=200",
        f"INFO ressonance.server.refusal_log event=refused kind=api code=401 app_id={app['id']} "
        "method='POST' endpoint=events reason=\"Invalid signature: you should have sent",
        "INFO ressonance.server.refusal_log event=refused kind=connection code=4001 app_id=- "
        "address=127.0.0.1 key='no-such-key' reason='App key does not exist'",
        f"DEBUG ressonance.server.registry event=connection_closed socket_id={socket_id} "
        f"app_id={app['id']} code=1000 reason='closed by the client' duration_s=",
    ):
        assert line in log, f"{line!r} not in:\n{log}"
    assert "aiosqlite" not in log  # other libraries: warnings and errors only
    assert " DEBUG asyncio " not in log


async def test_refusals_are_logged_without_debug_and_a_flood_is_a_few_lines(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path)
    wrong = replace(server, key="no-such-key")
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(50):
                ws = await open_socket(http, ws_url(wrong))
                async with asyncio.timeout(TIMEOUT):
                    await ws.receive()
                await ws.close()
    finally:
        stop_server(server)
    log = server.log()

    refused = [line for line in log.splitlines() if "event=refused kind=connection" in line]
    assert len(refused) == 10  # then counted, reported when its 10 s window is over
    assert "code=4001 app_id=- address=127.0.0.1 key='no-such-key'" in refused[0]
    assert " DEBUG " not in log
    assert server.secret not in log


async def test_the_debug_flag_turns_debug_logs_on(tmp_path: Path) -> None:
    server = start_server(tmp_path, args=["--debug"])
    try:
        async with aiohttp.ClientSession() as http, connect(http, server) as socket:
            await socket.ping()
    finally:
        stop_server(server)

    assert f"event=connection_opened socket_id={socket.socket_id} app_id=" in server.log()
