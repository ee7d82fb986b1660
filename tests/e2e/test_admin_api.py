"""Managing apps on a running node: its admin HTTP API, and `ressonance apps` in a shell.

The node runs on a SQLite app store. The admin API is driven over HTTP (fetch from Node),
with pusher-js and the npm `pusher` SDK using the app it creates; the command runs as a
separate process against the same database file, as an operator would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, RunningServer, start_server, stop_server
from tests.e2e.node_clients import events, run_scenario

pytestmark = pytest.mark.e2e

TOKEN = "e2e-admin-token-5f0c2a9d8e"


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_the_admin_api_creates_rotates_and_disables_an_app_pusher_js_uses(
    tmp_path: Path,
) -> None:
    database = tmp_path / "apps.db"
    server = start_server(
        tmp_path,
        extra_env={"RESSONANCE_ADMIN_TOKEN": TOKEN},
        args=["--apps", f"sqlite:///{database}"],
        env_app=False,
    )
    try:
        # The scenario's app is the one it creates; the E2E_APP_* values are never used.
        unused = {"E2E_APP_ID": "0", "E2E_KEY": "unused", "E2E_SECRET": "unused"}
        with run_scenario(server, "admin_api.mjs", {"E2E_ADMIN_TOKEN": TOKEN, **unused}) as seen:
            # no token, wrong token: 401 with the challenge; the description needs none
            assert seen["no_token"]["status"] == 401
            assert seen["no_token"]["www_authenticate"] == 'Bearer realm="ressonance-admin"'
            assert seen["wrong_token"]["status"] == 401
            assert seen["wrong_token"]["body"] == {"error": "Wrong admin token", "code": 401}
            assert seen["openapi"] == {"status": 200, "version": "3.1.0"}
            # created, with its secret in that answer only
            created = seen["created"]
            assert created["status"] == 201
            assert created["location"] == f"/admin/v1/apps/{created['body']['id']}"
            secret = created["body"]["secret"]
            assert secret not in json.dumps(seen["listed"])
            # pusher-js connected with the new key; the SDK signed with its secret
            assert seen["first_trigger"] == 200
            # rotated: the old secret is refused, the new one delivers
            assert seen["rotated"]["status"] == 200
            assert seen["rotated_secret_differs"] is True
            assert seen["rotated"]["hint"] == seen["shown_after_rotate"]["body"]["secret_hint"]
            assert seen["old_secret_status"] == 401
            assert seen["new_secret_status"] == 200
            # (until the node picks the rotation up, within apps_refresh_seconds, the old
            # secret still signs)
            received = seen["received"]
            assert received[0] == "made"
            assert received[-1] == "new-secret"
            assert set(received[1:-1]) <= {"old-secret"}
            # usage: one message per publish plus one per delivered copy, counted today
            usage = seen["usage"]
            assert usage["status"] == 200
            assert [day["day"] for day in usage["body"]["days"]] == [
                (datetime.now(UTC).date() - timedelta(days=back)).isoformat() for back in (1, 0)
            ]
            delivered = len(received)
            assert usage["body"]["total_messages"] >= 2 * delivered
            assert usage["body"]["days"][-1]["peak_connections"] >= 1
            # disabled: the live connection closed with 4003, a new one refused for good
            assert seen["disabled"]["body"]["enabled"] is False
            assert seen["first_state_after_disable"] in ("disconnected", "failed", "unavailable")
            assert seen["late_state"] in ("disconnected", "failed")
            assert seen["late_connecting"] == 0  # no retry after 4003 ("connecting" again)
            # deleted
            assert seen["deleted"]["body"] == {"id": created["body"]["id"], "deleted": True}
            assert seen["shown_after_delete"]["status"] == 404
    finally:
        stop_server(server)
    log = server.log()
    assert secret not in log
    assert "event=admin_unauthorized method=GET path=/admin/v1/apps" in log


def test_without_a_token_the_admin_api_is_404(server: RunningServer) -> None:
    status, _, body = _get(f"{server.http_url}/admin/v1/apps", token="anything-at-all-123")
    assert status == 404
    assert body["error"].startswith("The admin API is disabled: set [server] admin_token")


def _apps_command(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ressonance", "apps", *argv],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_app_created_in_a_shell_is_usable_by_pusher_js_within_seconds(tmp_path: Path) -> None:
    database = tmp_path / "apps.db"
    url = f"sqlite:///{database}"
    server = start_server(tmp_path, args=["--apps", url], env_app=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESSONANCE_")}
    try:
        created = _apps_command(
            "create", "--apps", url, "--name", "from a shell", "--json", env=env
        )
        assert created.returncode == 0, created.stderr
        app = json.loads(created.stdout)
        listed = _apps_command("list", "--apps", url, env=env)
        assert listed.returncode == 0, listed.stderr
        assert app["id"] in listed.stdout
        assert app["secret"] not in listed.stdout

        new_app = replace(server, app_id=app["id"], key=app["key"], secret=app["secret"])
        with run_scenario(new_app, "pusherjs_new_app.mjs") as seen:
            assert seen["attempts"] >= 1
            assert events(seen["events"], "hello") == [{"from": "a shell"}]
    finally:
        stop_server(server)
