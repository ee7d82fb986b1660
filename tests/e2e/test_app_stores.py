"""A running node on a SQLite app store, changed from outside while pusher-js is connected.

The test process is what `ressonance apps ...` or the admin API would be: it writes to the
same database through the AppRegistry API, and the node must notice within seconds,
without a restart (issue "Apps, plans and protection" §1).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ressonance.apps.base import AppRecord
from ressonance.apps.sqlite import SqliteAppRegistry
from tests.e2e.conftest import start_server, stop_server
from tests.e2e.node_clients import run_scenario

pytestmark = pytest.mark.e2e

APP = AppRecord(id="515151", key="store-key", secret="store-secret", name="from the store")
NEW_SECRET = "store-secret-2"

Action = Callable[[SqliteAppRegistry], Awaitable[None]]


async def create(registry: SqliteAppRegistry) -> None:
    await registry.create(APP)


async def rotate_secret(registry: SqliteAppRegistry) -> None:
    await registry.replace(dataclasses.replace(APP, secret=NEW_SECRET))


async def disable(registry: SqliteAppRegistry) -> None:
    await registry.replace(dataclasses.replace(APP, secret=NEW_SECRET, enabled=False))


ACTIONS: dict[str, Action] = {
    "/create": create,
    "/rotate-secret": rotate_secret,
    "/disable": disable,
}


@contextlib.contextmanager
def control_server(database: Path) -> Iterator[str]:
    """An HTTP endpoint the scenario calls to have the app changed; yields its URL.

    Each request opens the registry, applies one action and closes it, as a CLI would.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            action = ACTIONS.get(self.path)
            if action is None:
                self.send_error(404)
                return
            asyncio.run(apply(action))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            return None

    async def apply(action: Action) -> None:
        registry = await SqliteAppRegistry.open(database)
        try:
            await action(registry)
        finally:
            await registry.close()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_apps_changed_in_the_store_reach_pusher_js_without_a_restart(tmp_path: Path) -> None:
    database = tmp_path / "apps.db"
    credentials = {"E2E_APP_ID": APP.id, "E2E_KEY": APP.key, "E2E_SECRET": APP.secret}
    server = start_server(
        tmp_path, credentials, args=["--apps", f"sqlite:///{database}"], env_app=False
    )
    try:
        with control_server(database) as control:
            extra = {"E2E_CONTROL": control, "E2E_NEW_SECRET": NEW_SECRET}
            with run_scenario(server, "pusherjs_app_changes.mjs", extra) as seen:
                assert 4001 in seen["before_codes"]  # the key did not exist yet
                # created while the node ran: usable within seconds (refresh every 1 s)
                assert seen["usable_after_ms"] < 5000
                assert seen["trigger_status"] == 200
                assert "ping" in seen["events"]
                # a new secret: the old one is refused (401), the new one accepted
                assert seen["old_secret_statuses"][-1] == 401
                assert seen["new_secret_status"] == 200
                assert seen["live_state_after_rotation"] == "connected"
                # disabled: the live client is closed with 4003 and does not reconnect
                assert 4003 in seen["live_codes"]
                assert seen["live_final_state"] == "disconnected"
                # and a new client is refused with 4003
                assert 4003 in seen["late_codes"]
                assert seen["late_state"] == "disconnected"
    finally:
        stop_server(server)
    assert "event=apps_changed" in server.log()
