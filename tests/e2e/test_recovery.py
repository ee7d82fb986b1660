"""Resume after reconnect with real clients through a loopback TCP proxy the test cuts.

pusher-js and laravel-echo (Node) and the pusher-js web build (Chromium) use the
`ressonance-js` add-on built from clients/js; the Python SDK resumes by itself. 100 events
are published while the client is cut off for 5 s: all 100 must reach the app's own
bindings after the reconnect, in order, none twice, then the live events. A cut longer than
the history window must end in `ressonance:resume_failed`, then live events.

pusher-js takes about 10 s to come back after a cut of 5 s (its connection goes
"unavailable" while every dial is refused), so its window here is 25 s; the Python SDK
retries within a second, so 8 s serve it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ressonance.client import ChannelMessage, PusherSocket, RestClient
from tests.e2e.conftest import RunningServer, start_server, stop_server
from tests.e2e.node_clients import require_chromium, run_scenario
from tests.e2e.proxy import CuttableProxy, proxied

pytestmark = pytest.mark.e2e

JS_WINDOW = 25  # seconds of history for pusher-js: its 5 s cut and reconnect fit in it
PY_WINDOW = 8


def history(window: int) -> dict[str, str]:
    return {"RESSONANCE_APP_HISTORY_CHANNELS": "chat-*", "RESSONANCE_APP_HISTORY_TTL": str(window)}


@pytest.fixture
def history_server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path, extra_env=history(JS_WINDOW))
    yield running
    stop_server(running)


@pytest.fixture
def short_history_server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path, extra_env=history(PY_WINDOW))
    yield running
    stop_server(running)


def test_pusher_js_gets_every_missed_event_through_its_bindings_then_is_told_when_it_cannot(
    history_server: RunningServer, ressonance_js: Path
) -> None:
    env = {"E2E_CLIENT": "pusherjs", "E2E_LONG_CUT_MS": str((JS_WINDOW + 2) * 1000)}
    with run_scenario(history_server, "recovery.mjs", env) as seen:
        published = seen["published"]
        assert seen["received"] == list(range(110)) + list(range(120, published))  # type: ignore[operator]
        [failure] = seen["resume_failed"]  # type: ignore[misc]
        assert failure["reason"] == "too_old"
        assert failure["serial"] > failure["resume_after"]
        assert seen["refused_while_cut"] > 0  # it did try to come back while cut


def test_laravel_echo_gets_every_missed_event_through_its_listeners(
    history_server: RunningServer, ressonance_js: Path
) -> None:
    with run_scenario(history_server, "recovery.mjs", {"E2E_CLIENT": "echo"}) as seen:
        assert seen["received"] == list(range(110))
        assert seen["resume_failed"] == []


def test_the_web_build_in_chromium_recovers_a_cut(
    history_server: RunningServer, ressonance_js: Path
) -> None:
    require_chromium()
    with run_scenario(history_server, "recovery_browser.mjs") as seen:
        assert seen["page"]["received"] == list(range(110))
        assert seen["page"]["resume_failed"] == []
        for error in seen["page"]["errors"]:  # the cut itself: an abnormal close
            assert error == {"type": "PusherError", "data": {"code": 1006}}
        assert seen["page_errors"] == []


# --- the Python SDK, through a proxy of this test's own --------------------------------------


async def messages(sock: PusherSocket, count: int, seconds: float) -> list[ChannelMessage]:
    """The next `count` channel events (not the protocol's own messages)."""
    got = []
    async with asyncio.timeout(seconds):
        while len(got) < count:
            message = await sock.next_message()
            if not message.event.startswith("pusher_internal:"):
                got.append(message)
    return got


def numbers(got: list[ChannelMessage]) -> list[int]:
    return [m.data["n"] for m in got if m.event == "message"]  # type: ignore[index]


async def cut_and_publish(
    proxy: CuttableProxy, sock: PusherSocket, api: RestClient, channel: str, numbers: range
) -> None:
    proxy.cut()
    for n in numbers:
        await api.trigger(channel, "message", {"n": n})


async def test_the_python_sdk_resumes_by_itself_and_says_when_it_cannot(
    short_history_server: RunningServer,
) -> None:
    server = short_history_server
    async with (
        proxied([server.port]) as (proxy, port),
        RestClient(server.app_id, server.key, server.secret, server.http_url) as api,
        PusherSocket(f"ws://127.0.0.1:{port}", server.key, max_backoff=1.0) as sock,
    ):
        joined = await sock.subscribe("chat-py")
        assert isinstance(joined.serial, int)
        for n in range(5):
            await api.trigger("chat-py", "message", {"n": n})
        assert numbers(await messages(sock, 5, 10)) == list(range(5))

        await cut_and_publish(proxy, sock, api, "chat-py", range(5, 105))
        await asyncio.sleep(5)
        proxy.restore()
        got = await messages(sock, 100, 20)
        for n in range(105, 110):
            await api.trigger("chat-py", "message", {"n": n})
        got += await messages(sock, 5, 10)
        assert numbers(got) == list(range(5, 110))
        assert [m.serial for m in got] == sorted({m.serial for m in got})  # in order, once

        await cut_and_publish(proxy, sock, api, "chat-py", range(110, 115))
        await asyncio.sleep(PY_WINDOW + 2)
        proxy.restore()
        [failure] = await messages(sock, 1, 20)
        assert failure.event == "ressonance:resume_failed"
        assert failure.data["reason"] == "too_old"  # type: ignore[index]
        await api.trigger("chat-py", "message", {"n": 115})
        assert numbers(await messages(sock, 1, 10)) == [115]
