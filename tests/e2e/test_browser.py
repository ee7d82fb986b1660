"""The pusher-js web build in headless Debian Chromium (driven by playwright-core)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import RunningServer
from tests.e2e.node_clients import require_chromium, run_scenario

pytestmark = pytest.mark.e2e


def test_web_build_in_chromium_receives_public_and_private_events(
    server: RunningServer,
) -> None:
    require_chromium()
    with run_scenario(server, "browser_web_build.mjs") as seen:
        page, n = seen["page"], seen["names"]
        assert page["subscribed"] == {n["public"]: True, n["private"]: True}
        assert page["events"] == [
            {
                "channel": n["public"],
                "event": "headline",
                "data": {"title": "Hello from the HTTP API ✓"},
            },
            {
                "channel": n["private"],
                "event": "direct-message",
                "data": {"from": "server", "text": "secret"},
            },
        ]
        assert page["errors"] == []
        assert page["subscription_errors"] == {}
        assert page["states"][-1] == "connected"
        [auth] = seen["auth_requests"]
        assert auth["form"] == {
            "socket_id": page["socket_id"],
            "channel_name": n["private"],
            "user_id": "browser-user",
        }
        [ws_url] = seen["websockets"]
        assert re.fullmatch(
            rf"ws://127\.0\.0\.1:{server.port}/app/{server.key}\?protocol=7&client=js"
            r"&version=8\.\d+\.\d+&flash=false",
            ws_url,
        )
        assert seen["foreign_requests"] == []
        assert seen["page_errors"] == []
