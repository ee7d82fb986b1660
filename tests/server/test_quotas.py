"""App quotas over memory nodes, as clients and SDKs see them (issue §3; docs/topics/plans.md).

Connections over the quota are refused with 4004 at connect; once the day's messages are used
up, HTTP publishes get 403 and client events 4301 while every connection stays open; app-wide
rates answer 429 with Retry-After and X-RateLimit-* headers (HTTP) or 4301 (client events).
Messages are counted as Pusher counts them: one per published event per channel plus one per
delivered copy.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from ressonance.protocol.app import App
from ressonance.protocol.errors import ErrorCode
from ressonance.server.http_api import ApiResponse, HttpApi
from ressonance.server.node import Node
from ressonance.server.quotas import utc_day
from ressonance.server.service import http_api, memory_node
from ressonance.server.session import Session
from ressonance.state.base import DayUsage, Decision
from ressonance.state.memory import MemoryConnectionCounter, MemoryRateLimiter, MemoryUsageStore
from tests.fakes import FakeClock, FakeOutlet
from tests.server.clients import Client, joined, trigger
from tests.server.conftest import APP, Connect, MakeNode
from tests.server.test_http_api import error, ok, signed


def app_with(**settings: object) -> App:
    return dataclasses.replace(APP, **settings)  # type: ignore[arg-type]


async def connect_to(node: Node, app: App) -> Client | tuple[ErrorCode, str]:
    """A WebSocket arriving through the transport's path (`node.registry.connect`)."""
    outlet = FakeOutlet(settle=node.fanout.flush)
    opened = await node.registry.connect(app, outlet)
    if not isinstance(opened, Session):
        return opened
    client = Client(node, app, opened, outlet)
    client.outlet.clear()
    return client


async def publish(api: HttpApi, clock: FakeClock, app: App, *channels: str) -> ApiResponse:
    body = {"name": "e", "data": "{}", "channels": list(channels)}
    return await api.handle(signed(clock, "POST", f"/apps/{app.id}/events", body, app=app))


def today(clock: FakeClock) -> str:
    return utc_day(clock())


# --- concurrent connections ------------------------------------------------------------------


async def test_a_connection_over_the_quota_is_refused_with_4004(make_node: MakeNode) -> None:
    small = app_with(max_connections=2)
    node = await make_node(small)
    first = await connect_to(node, small)
    await connect_to(node, small)

    refused = await connect_to(node, small)

    assert refused == (
        ErrorCode.OVER_CONNECTION_QUOTA,
        "Over the app's connection quota (max_connections = 2)",
    )
    assert isinstance(first, Client)
    first.outlet.assert_open()
    assert node.metrics.quota_refusals == {("1", "max_connections"): 1}


async def test_a_closed_connection_frees_its_slot(make_node: MakeNode) -> None:
    small = app_with(max_connections=1)
    node = await make_node(small)
    first = await connect_to(node, small)
    assert isinstance(first, Client)

    await first.close()
    await first.close()  # closing twice frees one slot only

    assert isinstance(await connect_to(node, small), Client)
    assert isinstance(await connect_to(node, small), tuple)


async def test_a_disabled_app_takes_no_slot(make_node: MakeNode) -> None:
    disabled = app_with(enabled=False, max_connections=1)
    node = await make_node(disabled)

    assert await connect_to(node, disabled) == (ErrorCode.APP_DISABLED, "App is disabled")
    assert await node.connections.count("1") == 0


async def test_nodes_sharing_a_counter_share_the_quota(clock: FakeClock) -> None:
    small = app_with(max_connections=2)
    a, b = (memory_node([small], clock=clock) for _ in range(2))
    b.connections = b.quotas.connections = a.connections  # one shared counter, like Redis

    assert isinstance(await connect_to(a, small), Client)
    assert isinstance(await connect_to(b, small), Client)
    assert isinstance(await connect_to(b, small), tuple)


async def test_the_days_connection_peak_is_recorded(node: Node, clock: FakeClock) -> None:
    clients = [await connect_to(node, APP) for _ in range(3)]
    for client in clients[:2]:
        assert isinstance(client, Client)
        await client.close()
    await connect_to(node, APP)

    await node.quotas.flush()

    assert await node.usage.usage("1", [today(clock)]) == [DayUsage(today(clock), 0, 3)]


# --- messages a day ----------------------------------------------------------------------------


async def test_a_publish_counts_one_per_channel_and_one_per_delivery(
    node: Node, connect: Connect, clock: FakeClock
) -> None:
    for _ in range(2):
        await joined(connect, "news")
    await joined(connect, "sport")
    api = http_api(node)

    ok(await publish(api, clock, APP, "news", "sport", "empty"))
    await node.quotas.flush()

    # 3 channels published + 2 copies on news + 1 on sport
    assert await node.usage.messages("1", today(clock)) == 6


async def test_client_events_and_member_events_are_counted(
    node: Node, connect: Connect, clock: FakeClock
) -> None:
    alice = await joined(connect, "presence-room", user_id="alice")
    await joined(connect, "presence-room", user_id="bob")  # member_added to alice: 1
    node.fanout.flush()
    await node.quotas.flush()
    assert await node.usage.messages("1", today(clock)) == 1

    await alice.trigger("presence-room", "client-typing", {})  # 1 publish + 1 copy (bob)
    await node.quotas.flush()

    assert await node.usage.messages("1", today(clock)) == 3


async def test_an_exhausted_day_refuses_publishes_with_403_and_keeps_connections(
    make_node: MakeNode, clock: FakeClock
) -> None:
    app = app_with(max_messages_per_day=4)
    node = await make_node(app)
    listener = await connect_to(node, app)
    assert isinstance(listener, Client)
    await listener.subscribe("news")
    listener.outlet.clear()
    api = http_api(node)

    ok(await publish(api, clock, app, "news"))  # 2 messages
    ok(await publish(api, clock, app, "news"))  # 4: the quota is used up, not passed
    message = error(await publish(api, clock, app, "news"), 403)

    assert message == (
        "Over the app's daily message quota (max_messages_per_day = 4); it renews at 00:00 UTC"
    )
    assert len(listener.outlet.received("e", channel="news")) == 2
    listener.outlet.assert_open()
    assert node.metrics.quota_refusals == {("1", "max_messages_per_day"): 1}
    batch = {"batch": [{"name": "e", "data": "{}", "channel": "news"}]}
    response = await api.handle(signed(clock, "POST", "/apps/1/batch_events", batch, app=app))
    error(response, 403)


async def test_an_exhausted_day_rejects_client_events_with_4301(
    make_node: MakeNode, clock: FakeClock
) -> None:
    app = app_with(max_messages_per_day=1)
    node = await make_node(app)
    sender, other = [await connect_to(node, app) for _ in range(2)]
    assert isinstance(sender, Client)
    assert isinstance(other, Client)
    for client in (sender, other):
        await client.subscribe("private-chat")
        client.outlet.clear()
    await node.quotas.usage.add_messages("1", today(clock), 1)  # used up by another node

    await sender.trigger("private-chat", "client-hi", {})

    refusal = sender.outlet.assert_received("pusher:error")
    assert refusal["data"] == {
        "code": 4301,
        "message": "Client event rejected: the app is over its daily message quota "
        "(max_messages_per_day = 1)",
    }
    assert refusal["channel"] == "private-chat"
    other.outlet.assert_nothing_received()
    sender.outlet.assert_open()


async def test_a_node_sees_the_days_total_of_the_cluster_after_a_tick(clock: FakeClock) -> None:
    app = app_with(max_messages_per_day=3)
    shared = MemoryUsageStore()
    a, b = (memory_node([app], clock=clock) for _ in range(2))
    for node in (a, b):
        node.usage = node.quotas.usage = shared
    api_a, api_b = http_api(a), http_api(b)
    ok(await publish(api_b, clock, app, "x"))  # b has read the day's total (0)

    for _ in range(3):
        ok(await publish(api_a, clock, app, "x"))
    ok(await publish(api_b, clock, app, "x"))  # b's cached total is a tick old
    await a.quotas.flush()
    await b.quotas.flush()

    error(await publish(api_b, clock, app, "x"), 403)
    assert await shared.messages("1", today(clock)) == 5  # one tick of overshoot at most


async def test_the_quota_renews_at_midnight_utc(make_node: MakeNode, clock: FakeClock) -> None:
    clock.now = 1_700_006_399.5  # 2023-11-14 23:59:59.5 UTC
    app = app_with(max_messages_per_day=1)
    node = await make_node(app)
    api = http_api(node)
    ok(await publish(api, clock, app, "x"))
    error(await publish(api, clock, app, "x"), 403)

    clock.advance(1.0)
    await node.quotas.flush()

    ok(await publish(api, clock, app, "x"))
    await node.quotas.flush()
    assert [d.messages for d in await node.usage.usage("1", ["2023-11-14", "2023-11-15"])] == [
        1,
        1,
    ]


async def test_counts_a_store_could_not_take_are_kept_for_the_next_tick(
    node: Node, connect: Connect, clock: FakeClock
) -> None:
    class Flaky(MemoryUsageStore):
        failing = True

        async def add_messages(self, app_id: str, day: str, count: int) -> int:
            if self.failing:
                raise ConnectionError("store down")
            return await super().add_messages(app_id, day, count)

    flaky = Flaky()
    node.usage = node.quotas.usage = flaky
    await joined(connect, "news")
    await node.publish(APP, trigger("news"))

    with pytest.raises(ConnectionError):
        await node.quotas.flush()
    flaky.failing = False
    await node.quotas.flush()

    assert await flaky.messages("1", today(clock)) == 2


# --- rates -------------------------------------------------------------------------------------


async def test_backend_events_over_the_rate_get_429_with_headers(
    make_node: MakeNode, clock: FakeClock
) -> None:
    app = app_with(max_backend_events_per_sec=3)
    node = await make_node(app)
    api = http_api(node)
    clock.now = 1_700_000_000.25

    ok(await publish(api, clock, app, "a", "b"))  # two channels: two events
    refused = await publish(api, clock, app, "a", "b")

    assert error(refused, 429) == (
        "Too many requests: the app allows 3 a second (max_backend_events_per_sec)"
    )
    assert refused.headers == {
        "Retry-After": "1",
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "1",
    }
    ok(await publish(api, clock, app, "a"))  # the refusal spent nothing
    clock.advance(1.0)
    ok(await publish(api, clock, app, "a", "b", "c"))
    assert node.metrics.quota_refusals == {("1", "max_backend_events_per_sec"): 1}


async def test_a_batch_costs_one_per_event(make_node: MakeNode, clock: FakeClock) -> None:
    app = app_with(max_backend_events_per_sec=2)
    node = await make_node(app)
    api = http_api(node)
    batch = {"batch": [{"name": "e", "data": "{}", "channel": f"c{i}"} for i in range(3)]}

    response = await api.handle(signed(clock, "POST", "/apps/1/batch_events", batch, app=app))

    error(response, 429)
    assert response.headers["X-RateLimit-Remaining"] == "2"


@pytest.mark.parametrize(
    "path", ["/apps/1/channels", "/apps/1/channels/news", "/apps/1/channels/presence-x/users"]
)
async def test_read_requests_over_the_rate_get_429(
    make_node: MakeNode, clock: FakeClock, path: str
) -> None:
    app = app_with(max_read_requests_per_sec=1)
    node = await make_node(app)
    api = http_api(node)

    ok(await api.handle(signed(clock, "GET", path, app=app)))
    refused = await api.handle(signed(clock, "GET", path, app=app))

    assert "max_read_requests_per_sec" in error(refused, 429)
    assert refused.headers["X-RateLimit-Limit"] == "1"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) >= 1


async def test_publishing_is_not_a_read(make_node: MakeNode, clock: FakeClock) -> None:
    app = app_with(max_read_requests_per_sec=1, max_backend_events_per_sec=1)
    node = await make_node(app)
    api = http_api(node)

    ok(await api.handle(signed(clock, "GET", "/apps/1/channels", app=app)))
    ok(await publish(api, clock, app, "x"))


async def test_app_wide_client_events_over_the_rate_get_4301(
    make_node: MakeNode, clock: FakeClock
) -> None:
    app = app_with(max_app_client_events_per_sec=2)
    node = await make_node(app)
    clients = [await connect_to(node, app) for _ in range(3)]
    for client in clients:
        assert isinstance(client, Client)
        await client.subscribe("private-chat")
        client.outlet.clear()
    first, second, third = clients  # type: ignore[misc]

    await first.trigger("private-chat", "client-a", {})
    await second.trigger("private-chat", "client-b", {})
    await third.trigger("private-chat", "client-c", {})

    refusal = third.outlet.assert_received("pusher:error")
    assert refusal["data"] == {
        "code": 4301,
        "message": "Client event rejected due to rate limit (2 per second for the whole app)",
    }
    first.outlet.assert_received("client-b")
    first.outlet.assert_not_received("client-c")
    assert node.metrics.quota_refusals == {("1", "max_app_client_events_per_sec"): 1}


async def test_the_per_connection_rate_names_itself(node: Node, connect: Connect) -> None:
    sender = await joined(connect, "private-chat")
    for _ in range(11):
        await sender.trigger("private-chat", "client-a", json.dumps({}))

    refusal = sender.outlet.assert_received("pusher:error")
    assert refusal["data"]["message"] == (
        "Client event rejected due to rate limit (10 per second per connection)"
    )
    assert node.metrics.quota_refusals == {("1", "max_client_events_per_sec"): 1}


async def test_quota_refusals_are_exposed_as_metrics(make_node: MakeNode) -> None:
    small = app_with(max_connections=0)
    node = await make_node(small)
    await connect_to(node, small)

    body, _ = node.metrics.exposition()

    assert b'ressonance_quota_refusals_total{app_id="1",quota="max_connections"} 1.0' in body


class DownCounter(MemoryConnectionCounter):
    async def acquire(self, app_id: str, limit: int) -> int | None:
        raise ConnectionError("store down")


async def test_an_unreachable_store_refuses_quota_apps_with_4100_and_serves_the_rest(
    clock: FakeClock,
) -> None:
    limited, free_for_all = app_with(max_connections=5), app_with(id="2", key="other")
    node = memory_node([limited, free_for_all], clock=clock)
    node.connections = node.quotas.connections = DownCounter()

    assert await connect_to(node, limited) == (
        ErrorCode.OVER_CAPACITY,
        "The connection quota cannot be checked; retry",
    )
    served = await connect_to(node, free_for_all)
    assert isinstance(served, Client)
    await served.close()  # it held no slot: nothing to give back


async def test_http_quota_checks_without_a_store_answer_503(
    make_node: MakeNode, clock: FakeClock
) -> None:
    class DownLimiter(MemoryRateLimiter):
        async def consume(self, key: str, limit: int, cost: int = 1) -> Decision:
            raise ConnectionError("store down")

    app = app_with(max_backend_events_per_sec=5, max_read_requests_per_sec=5)
    node = await make_node(app)
    node.quotas.limiter = DownLimiter(clock)
    api = http_api(node)

    published = await publish(api, clock, app, "x")
    read = await api.handle(signed(clock, "GET", "/apps/1/channels", app=app))

    assert (
        error(published, 503)
        == error(read, 503)
        == ("Quotas cannot be checked right now; try again")
    )
