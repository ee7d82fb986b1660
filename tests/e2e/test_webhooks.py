"""Webhooks of one real node to a real receiver (an aiohttp server in this test).

Clients are pusher-js (Node) and raw WebSockets (the Python SDK). Signatures are checked by
both official validators: the PyPI `pusher` SDK's `validate_webhook` and the npm `pusher`
SDK's `webhook().isValid()`. Durability: a receiver that fails for a while, and a receiver
that is down while the node is killed with SIGKILL and started again, and dead letters replayed
by `ressonance apps webhooks replay`. Delays and windows are short, set in the node's config
file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest
from aiohttp import web

from ressonance.client import PusherSocket, authorize_channel
from tests.e2e.conftest import RunningServer, connected, start_server, stop_server
from tests.e2e.node_clients import run_scenario
from tests.webhook_receiver import ReceiverThread

pytestmark = pytest.mark.e2e

EVERY_TYPE = [
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
    "subscription_count",
]
FAST = {
    "node_ttl": 2,
    "webhook_leave_delay": 0.5,
    "webhook_batch_wait": 0.05,
    "webhook_retry_initial": 0.2,
    "webhook_retry_max": 1,
}


@pytest.fixture
def receiver() -> Iterator[ReceiverThread]:
    thread = ReceiverThread()
    thread.start()
    yield thread
    thread.close()


def hooked_server(
    tmp_path: Path, endpoints: list[dict[str, Any]], **server: object
) -> RunningServer:
    """A node whose app sends `endpoints` its webhooks, its queue in tmp_path's state."""
    config = tmp_path / "webhooks.toml"
    lines = [f"{name} = {json.dumps(value)}" for name, value in {**FAST, **server}.items()]
    config.write_text("[server]\n" + "\n".join(lines) + "\n")
    env = {
        "RESSONANCE_APP_WEBHOOKS": json.dumps(endpoints),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    return start_server(tmp_path, extra_env=env, args=["--config", str(config)])


@contextlib.contextmanager
def running(
    tmp_path: Path, endpoints: list[dict[str, Any]], **server: object
) -> Iterator[RunningServer]:
    node = hooked_server(tmp_path, endpoints, **server)
    try:
        yield node
    finally:
        stop_server(node)


def socket(node: RunningServer, user: str | None = None) -> PusherSocket:
    async def authorize(socket_id: str, channel: str) -> dict[str, str]:
        presence = {"user_id": user, "user_info": {}} if channel.startswith("presence-") else None
        return authorize_channel(node.key, node.secret, socket_id, channel, presence=presence)

    return PusherSocket([f"ws://{node.host}:{node.port}"], node.key, authorizer=authorize)


def pairs(events: list[dict[str, Any]], *names: str) -> list[tuple[str, str, Any]]:
    """(name, channel, user or count) of the events named `names` (all when none)."""
    return [
        (e["name"], e["channel"], e.get("user_id", e.get("subscription_count")))
        for e in events
        if not names or e["name"] in names
    ]


def verified_by_node(
    node: RunningServer, receiver: ReceiverThread, tmp_path: Path
) -> dict[str, Any]:
    """What the npm SDK says of every request the receiver got."""
    requests = [
        {"headers": {k.lower(): v for k, v in r.headers.items()}, "body": r.body.decode()}
        for r in receiver.requests
    ]
    path = tmp_path / "webhook-requests.json"
    path.write_text(json.dumps(requests))
    with run_scenario(node, "webhooks_verify.mjs", {"E2E_WEBHOOKS_FILE": str(path)}) as observed:
        return observed


# --- every event, both validators --------------------------------------------------------------


async def test_every_event_type_arrives_and_both_sdks_verify_it(
    tmp_path: Path, receiver: ReceiverThread
) -> None:
    suffix = uuid.uuid4().hex[:6]
    room, news, cache = f"presence-room-{suffix}", f"news-{suffix}", f"cache-prices-{suffix}"
    with running(tmp_path, [{"url": receiver.url, "event_types": EVERY_TYPE}]) as node:
        with run_scenario(node, "webhooks_pusherjs.mjs", {"E2E_SUFFIX": suffix}) as observed:
            alice_socket = observed["alice_socket"]
        await receiver.until(
            lambda: ("channel_vacated", room, None) in pairs(receiver.delivered()),
            "every webhook of the scenario",
        )
        verdicts = verified_by_node(node, receiver, tmp_path)
        events = receiver.delivered()

    assert sorted({e["name"] for e in events}) == sorted(EVERY_TYPE)
    lifecycle = pairs(
        events, "channel_occupied", "channel_vacated", "member_added", "member_removed"
    )
    for channel in (room, news, cache):
        assert [p[0] for p in lifecycle if p[1] == channel].count("channel_occupied") == 1
        assert [p[0] for p in lifecycle if p[1] == channel].count("channel_vacated") == 1
    assert sorted(p for p in lifecycle if p[0].startswith("member")) == [
        ("member_added", room, "alice"),
        ("member_added", room, "bob"),
        ("member_removed", room, "alice"),
        ("member_removed", room, "bob"),
    ]
    (whisper,) = [e for e in events if e["name"] == "client_event"]
    assert whisper == {
        "name": "client_event",
        "channel": room,
        "event": "client-wave",
        "data": '{"hello":"bob"}',
        "socket_id": alice_socket,
        "user_id": "alice",
        "id": whisper["id"],
    }
    assert pairs(events, "cache_miss") == [("cache_miss", cache, None)]
    assert [p for p in pairs(events, "subscription_count") if p[1] == news] == [
        ("subscription_count", news, 1),
        ("subscription_count", news, 0),
    ]
    assert len({e["id"] for e in events}) == len(events)
    # per channel, in the order things happened
    in_room = [p[0] for p in pairs(events) if p[1] == room]
    assert in_room[0] == "channel_occupied"
    assert in_room[-1] == "channel_vacated"

    python_sdk = pusher.Pusher(app_id=node.app_id, key=node.key, secret=node.secret)
    for request in receiver.requests:
        assert request.headers["Content-Type"] == "application/json"
        checked = python_sdk.validate_webhook(
            request.headers["X-Pusher-Key"], request.headers["X-Pusher-Signature"], request.body
        )
        assert checked is not None
    assert verdicts["valid"] == [True] * len(receiver.requests)
    assert verdicts["valid_with_wrong_secret"] == [False] * len(receiver.requests)
    assert sorted(verdicts["events"]) == sorted(
        e["name"] for r in receiver.requests for e in r.events
    )


# --- filters, event types, batching, reloads --------------------------------------------------


async def test_each_endpoint_gets_the_types_and_channels_it_asked_for(
    tmp_path: Path, sockets: list[PusherSocket]
) -> None:
    members, live = ReceiverThread(), ReceiverThread()
    members.start()
    live.start()
    endpoints = [
        {
            "url": members.url,
            "event_types": ["member_added", "member_removed"],
            "filter": {"channel_name_starts_with": "presence-"},
        },
        {
            "url": live.url,
            "event_types": ["channel_occupied"],
            "filter": {"channel_name_ends_with": "-live"},
        },
    ]
    try:
        with running(tmp_path, endpoints) as node:
            sock = await connected(sockets, socket(node, "u1"))
            for channel in ("presence-lobby", "scores-live", "scores", "private-x-live"):
                await sock.subscribe(channel)
            await sock.close()
            await members.until(lambda: len(members.delivered()) == 2, "u1 added and removed")
            await live.until(lambda: len(live.delivered()) == 2, "two -live channels occupied")
            await asyncio.sleep(1.0)  # nothing else comes

        assert pairs(members.delivered()) == [
            ("member_added", "presence-lobby", "u1"),
            ("member_removed", "presence-lobby", "u1"),
        ]
        assert sorted(pairs(live.delivered())) == [
            ("channel_occupied", "private-x-live", None),
            ("channel_occupied", "scores-live", None),
        ]
    finally:
        members.close()
        live.close()


async def test_events_are_batched(
    tmp_path: Path, receiver: ReceiverThread, sockets: list[PusherSocket]
) -> None:
    endpoint = {"url": receiver.url, "event_types": ["channel_occupied"]}
    with running(tmp_path, [endpoint], webhook_batch_size=10, webhook_batch_wait=1.0) as node:
        sock = await connected(sockets, socket(node))
        for n in range(25):
            await sock.subscribe(f"room-{n}")
        await receiver.until(lambda: len(receiver.delivered()) == 25, "25 occupied")

    sizes = [len(r.events) for r in receiver.requests]
    assert max(sizes) <= 10
    assert len(sizes) < 25
    assert sorted(e["channel"] for e in receiver.delivered()) == sorted(
        f"room-{n}" for n in range(25)
    )


async def test_a_reload_within_the_delay_sends_no_vacated_and_no_second_occupied(
    tmp_path: Path, receiver: ReceiverThread, sockets: list[PusherSocket]
) -> None:
    endpoint = {"url": receiver.url, "event_types": EVERY_TYPE[:4]}
    with running(tmp_path, [endpoint], webhook_leave_delay=3) as node:
        first = await connected(sockets, socket(node, "alice"))
        await first.subscribe("presence-page")
        await first.close()
        again = await connected(sockets, socket(node, "alice"))  # the page reloaded
        await again.subscribe("presence-page")
        await asyncio.sleep(4)  # past the delay: what was cancelled stays cancelled
        assert pairs(receiver.delivered()) == [
            ("channel_occupied", "presence-page", None),
            ("member_added", "presence-page", "alice"),
        ]
        await again.close()
        await receiver.until(lambda: len(receiver.delivered()) == 4, "removed and vacated")

    assert pairs(receiver.delivered())[2:] == [
        ("member_removed", "presence-page", "alice"),
        ("channel_vacated", "presence-page", None),
    ]


# --- durability --------------------------------------------------------------------------------


async def test_a_receiver_that_fails_for_a_while_gets_everything_after(
    tmp_path: Path, receiver: ReceiverThread, sockets: list[PusherSocket]
) -> None:
    recovers_at = time.monotonic() + 3
    receiver.set_answer(
        lambda number, body: web.Response(status=500 if time.monotonic() < recovers_at else 200)
    )
    endpoint = {"url": receiver.url, "event_types": ["channel_occupied"]}
    with running(tmp_path, [endpoint]) as node:
        sock = await connected(sockets, socket(node))
        for n in range(5):
            await sock.subscribe(f"room-{n}")
        await receiver.until(lambda: len(receiver.delivered()) == 5, "5 events after recovery")

    assert any(r.status == 500 for r in receiver.requests)
    assert sorted(e["channel"] for e in receiver.delivered()) == [f"room-{n}" for n in range(5)]


async def test_events_survive_a_receiver_down_and_a_killed_node(
    tmp_path: Path, receiver: ReceiverThread, sockets: list[PusherSocket]
) -> None:
    receiver.stop()  # down: nothing can be delivered
    endpoint = {"url": receiver.url, "event_types": ["channel_occupied"]}
    node = hooked_server(tmp_path, [endpoint])
    try:
        sock = await connected(sockets, socket(node))
        for n in range(5):
            await sock.subscribe(f"room-{n}")
        await asyncio.sleep(1.0)  # recorded (a group commit is 5 ms), retried, failing
        os.kill(node.process.pid, signal.SIGKILL)
        node.process.wait(10)
        await sock.close()
    finally:
        stop_server(node)

    receiver.start()
    restarted = hooked_server(tmp_path, [endpoint])  # the same state directory
    try:
        await receiver.until(lambda: len(receiver.delivered()) >= 5, "the queued events")
    finally:
        stop_server(restarted)

    assert sorted({e["channel"] for e in receiver.delivered()}) == [f"room-{n}" for n in range(5)]


def apps_command(
    tmp_path: Path, node: RunningServer, endpoints: list[dict[str, Any]], *argv: str
) -> Any:
    """`ressonance apps webhooks ... --json` with the node's settings; its JSON answer."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RESSONANCE_")}
    env = {
        **inherited,
        "RESSONANCE_APP_ID": node.app_id,
        "RESSONANCE_APP_KEY": node.key,
        "RESSONANCE_APP_SECRET": node.secret,
        "RESSONANCE_APP_WEBHOOKS": json.dumps(endpoints),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    config = str(tmp_path / "webhooks.toml")
    command = [sys.executable, "-m", "ressonance", "apps", "webhooks", *argv, "--config", config]
    done = subprocess.run([*command, "--json"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_dead_letters_are_replayed_by_the_command(
    tmp_path: Path, receiver: ReceiverThread, sockets: list[PusherSocket]
) -> None:
    failing = True
    receiver.set_answer(lambda number, body: web.Response(status=500 if failing else 200))
    endpoint = {"url": receiver.url, "event_types": ["channel_occupied"]}
    with running(tmp_path, [endpoint], webhook_retry_window=1) as node:
        sock = await connected(sockets, socket(node))
        for n in range(3):
            await sock.subscribe(f"room-{n}")
        app = node.app_id
        for _ in range(100):  # generous: the window is 1 s
            letters = apps_command(tmp_path, node, [endpoint], "dead-letters", app)["dead_letters"]
            if len(letters) == 3:
                break
            await asyncio.sleep(0.3)
        assert sorted(d["channel"] for d in letters) == [f"room-{n}" for n in range(3)]
        log = apps_command(tmp_path, node, [endpoint], "deliveries", app, "--endpoint", "0")
        assert log["endpoints"][0]["attempts"][0]["status"] == 500

        failing = False
        replayed = apps_command(tmp_path, node, [endpoint], "replay", app, "--all")
        assert replayed == {"replayed": 3}
        await receiver.until(lambda: len(receiver.delivered()) >= 3, "the replayed events")

    assert sorted({e["channel"] for e in receiver.delivered()}) == [f"room-{n}" for n in range(3)]
