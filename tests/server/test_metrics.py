"""A node's metrics, read the way Prometheus reads them: scrape the exposition, parse it.

Each node has its own registry, so the numbers here are this test's node's alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ressonance.protocol.errors import ApiError, ErrorCode
from ressonance.server.http_api import ApiRequest, HttpApi
from ressonance.server.metrics import Metrics
from ressonance.server.node import Node
from ressonance.server.service import http_api, memory_node
from tests.fakes import FakeClock
from tests.server.clients import Client, run_timers_until, trigger
from tests.server.conftest import APP, Connect, MakeNode
from tests.server.test_http_api import signed

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(node: Node) -> Samples:
    body, content_type = node.metrics.exposition()
    assert content_type.startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(node: Node, name: str, **labels: str) -> float:
    """One sample of the scrape; 0 when the series does not exist yet."""
    return scrape(node).get(("ressonance_" + name, frozenset(labels.items())), 0.0)


class SteppingTimer:
    """A monotonic timer that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def api(node: Node) -> HttpApi:
    return http_api(node)


# --- registries --------------------------------------------------------------------------------


async def test_a_new_node_exposes_every_metric_at_zero(node: Node) -> None:
    names = {name for name, _ in scrape(node)}

    for name in [
        "connections",
        "connections_peak",
        "connections_opened_total",
        "event_loop_lag_seconds",
        "publish_to_write_seconds_count",
    ]:
        assert "ressonance_" + name in names
        assert value(node, name) == 0


async def test_two_nodes_in_one_process_do_not_share_metrics(make_node: MakeNode) -> None:
    first = await make_node()
    second = await make_node()

    Client.connect(first, APP)

    assert value(first, "connections") == 1
    assert value(second, "connections") == 0
    assert first.metrics.registry is not second.metrics.registry


# --- connections -------------------------------------------------------------------------------


async def test_connects_move_current_peak_and_opened(node: Node, connect: Connect) -> None:
    clients = [connect() for _ in range(3)]
    await clients[0].close()

    assert value(node, "connections") == 2
    assert value(node, "connections_peak") == 3
    assert value(node, "connections_opened_total") == 3
    assert value(node, "app_connections", app_id=APP.id) == 2


async def test_closes_are_counted_by_close_code(node: Node, connect: Connect) -> None:
    by_client, abrupt, odd, terminated = connect(), connect(), connect(), connect()
    await terminated.signin("alice")
    await node.users.terminate(APP, "alice")

    await node.registry.close_session(by_client.session, 1000)  # the client sent Close 1000
    await node.registry.close_session(abrupt.session, None)  # the TCP connection just went away
    await node.registry.close_session(odd.session, 3999)  # a code the server does not know
    await node.registry.close_session(terminated.session, 4009)  # our 4009, echoed by the client

    assert value(node, "connections_closed_total", code="1000") == 1
    assert value(node, "connections_closed_total", code="1006") == 1
    assert value(node, "connections_closed_total", code="other") == 1
    assert value(node, "connections_closed_total", code="4009") == 1
    assert value(node, "connections") == 0


async def test_the_server_chosen_close_code_wins_over_what_the_client_reports(
    node: Node, connect: Connect
) -> None:
    client = connect()
    client.session.close(ErrorCode.GENERIC_RECONNECT, "Restarting")

    await node.registry.close_session(client.session, None)  # the client never answered

    assert value(node, "connections_closed_total", code="4200") == 1


async def test_a_slow_client_is_counted_as_a_slow_disconnect_and_a_4100_close(
    make_node: MakeNode,
) -> None:
    node = await make_node(max_buffer_bytes=1000)
    slow = Client.connect(node, APP)
    await slow.subscribe("news")
    slow.outlet.buffered_bytes = 1001

    await node.publish(APP, trigger("news"))
    await node.publish(APP, trigger("news"))
    await slow.close()

    assert value(node, "slow_client_disconnects_total", app_id=APP.id) == 1
    assert value(node, "connections_closed_total", code="4100") == 1


# --- messages ----------------------------------------------------------------------------------


async def test_messages_received_count_each_frame_and_its_bytes(
    node: Node, connect: Connect
) -> None:
    client = connect()
    ping = {"event": "pusher:ping", "data": {}}
    accented = {"event": "pusher:ping", "data": {"note": "é"}}

    await client.send(ping)
    await client.send(accented)

    assert value(node, "websocket_messages_received_total", app_id=APP.id) == 2
    expected = len(json.dumps(ping).encode()) + len(json.dumps(accented).encode())
    assert value(node, "websocket_bytes_received_total", app_id=APP.id) == expected


async def test_a_publish_counts_one_message_per_subscriber_and_their_bytes(
    node: Node, connect: Connect
) -> None:
    subscribers = [connect() for _ in range(3)]
    for client in subscribers:
        await client.subscribe("news")
    before_messages = value(node, "websocket_messages_sent_total", app_id=APP.id)
    before_bytes = value(node, "websocket_bytes_sent_total", app_id=APP.id)
    for client in subscribers:
        client.outlet.clear()

    await node.publish(APP, trigger("news"))
    await node.publish(APP, trigger("news", socket_id=subscribers[0].socket_id))

    sent = sum(len(client.outlet.frames) for client in subscribers)
    assert sent == 5
    messages = value(node, "websocket_messages_sent_total", app_id=APP.id) - before_messages
    assert messages == 5
    written = sum(len(frame) for client in subscribers for frame in client.outlet.frames)
    sent_bytes = value(node, "websocket_bytes_sent_total", app_id=APP.id) - before_bytes
    assert sent_bytes == written


async def test_replies_of_the_server_count_as_sent_messages(node: Node, connect: Connect) -> None:
    client = Client.connect(node, APP)  # connection_established
    await client.send({"event": "pusher:ping", "data": {}})  # pusher:pong

    assert value(node, "websocket_messages_sent_total", app_id=APP.id) == 2
    written = sum(len(frame) for frame in client.outlet.frames)
    assert value(node, "websocket_bytes_sent_total", app_id=APP.id) == written


# --- HTTP API ----------------------------------------------------------------------------------


async def test_http_requests_are_counted_by_route_name_and_status(
    node: Node, api: HttpApi, clock: FakeClock
) -> None:
    events = signed(clock, "POST", "/apps/1/events", {"name": "e", "data": "{}", "channels": ["a"]})
    await api.handle(events)
    await api.handle(events)
    await api.handle(signed(clock, "GET", "/apps/1/channels/presence-room/users"))
    await api.handle(signed(clock, "GET", "/apps/1/channels/some-channel"))
    await api.handle(ApiRequest.at("POST", "/apps/1/events", {}, b"{}"))  # unsigned
    await api.handle(signed(clock, "GET", "/apps/1/nothing/here"))
    api.refuse(ApiRequest.at("POST", "/apps/1/batch_events", {}, b""), ApiError(413, "Too big"))

    assert value(node, "http_requests_total", endpoint="events", status="200") == 2
    assert value(node, "http_requests_total", endpoint="events", status="401") == 1
    assert value(node, "http_requests_total", endpoint="channel_users", status="200") == 1
    assert value(node, "http_requests_total", endpoint="channel", status="200") == 1
    assert value(node, "http_requests_total", endpoint="unknown", status="404") == 1
    assert value(node, "http_requests_total", endpoint="batch_events", status="413") == 1


async def test_an_unexpected_failure_is_a_counted_500(
    node: Node, api: HttpApi, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(node.fanout, "broadcast", broken)
    body = {"name": "e", "data": "{}", "channels": ["a"]}

    response = await api.handle(signed(clock, "POST", "/apps/1/events", body))

    assert response.status == 500
    assert response.body == {"error": "Internal server error", "code": 500}
    assert value(node, "http_requests_total", endpoint="events", status="500") == 1


async def test_published_events_are_counted_per_app_with_their_latency(clock: FakeClock) -> None:
    node = memory_node([APP], clock=clock, metrics=Metrics(timer=SteppingTimer(0.003)))
    await node.start()
    api = http_api(node)
    batch = {"batch": [{"name": "e", "data": "{}", "channel": "a"}] * 3}

    await api.handle(signed(clock, "POST", "/apps/1/batch_events", batch))
    await api.handle(
        signed(clock, "POST", "/apps/1/events", {"name": "e", "data": "{}", "channel": "a"})
    )

    assert value(node, "events_published_total", app_id=APP.id) == 4
    assert value(node, "publish_to_write_seconds_count") == 4
    assert value(node, "publish_to_write_seconds_bucket", le="0.0025") == 0
    assert value(node, "publish_to_write_seconds_bucket", le="0.005") == 4
    assert value(node, "publish_to_write_seconds_sum") == pytest.approx(4 * 0.003)


# --- event loop ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def timers(node: Node, interval: float) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(node.run_timers(interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_event_loop_lag_is_how_late_the_timer_woke_up(node: Node) -> None:
    async with timers(node, 0.001):
        await asyncio.sleep(0)  # the timer loop is now asleep
        time.sleep(0.05)  # something blocks the event loop  # noqa: ASYNC251
        for _ in range(100):
            await asyncio.sleep(0.001)
            if node.metrics.loop_lag:
                break

    assert value(node, "event_loop_lag_seconds") >= 0.04


async def test_connections_the_entrance_drops_are_counted_by_reason(node: Node) -> None:
    assert value(node, "open_connections") == 0
    assert ("ressonance_connection_capacity", frozenset()) not in scrape(node)  # no limit known
    node.metrics.connection_dropped("first_byte_timeout")
    node.metrics.connection_dropped("first_byte_timeout")
    node.metrics.connection_dropped("head_too_large")
    node.metrics.open_connections = 7
    node.metrics.connection_capacity = 872
    assert value(node, "connections_dropped_total", reason="first_byte_timeout") == 2
    assert value(node, "connections_dropped_total", reason="head_too_large") == 1
    assert value(node, "open_connections") == 7
    assert value(node, "connection_capacity") == 872


# --- delivery: history, resumes, idempotency -------------------------------------------------


async def test_history_writes_reads_bytes_resumes_and_duplicates_are_counted(
    make_node: MakeNode, clock: FakeClock
) -> None:
    chat = dataclasses.replace(APP, history_channels=("chat-*",))
    node = await make_node(chat)
    api = http_api(node)
    body = {"name": "e", "channel": "chat-1", "data": "12345", "idempotency_key": "k"}
    for _ in range(2):
        assert (await api.handle(signed(clock, "POST", "/apps/1/events", body))).status == 200
    recovered, gap = Client.connect(node, chat), Client.connect(node, chat)
    last = (await node.history.read(chat, "chat-1", limit=1, newest=True)).events[0].serial
    for client, after in ((recovered, last), (gap, 1)):
        await client.send(
            {"event": "pusher:subscribe", "data": {"channel": "chat-1", "resume_after": after}}
        )
    await run_timers_until(node, lambda: node.metrics.app(chat.id).history_bytes > 0)

    app_id = {"app_id": chat.id}
    assert value(node, "history_writes_total", **app_id) == 1
    assert value(node, "history_reads_total", **app_id) == 3  # the test's and two resumes
    assert value(node, "history_retained_bytes", **app_id) == len("e") + len("12345")
    assert value(node, "idempotent_duplicates_total", **app_id) == 1
    assert value(node, "resume_requests_total", outcome="recovered", **app_id) == 1
    assert value(node, "resume_requests_total", outcome="gap", **app_id) == 1
