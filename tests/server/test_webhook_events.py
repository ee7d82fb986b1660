"""Webhook events produced where a node's transitions happen (server/webhook_events.py).

Subscriptions, closes, client events and cache misses of a node whose app has endpoints;
what each endpoint's lane holds afterwards. Nothing here sends: the sender is tested apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from ressonance.protocol.webhooks import EVENT_TYPES, lane_id, parse_endpoints
from ressonance.server.node import Node
from tests.server.clients import Client, joined
from tests.server.conftest import APP, MakeNode

ALL, CLIENT_ONLY = parse_endpoints(
    [
        {"url": "http://127.0.0.1:9/all", "event_types": list(EVENT_TYPES)},
        {
            "url": "http://127.0.0.1:9/client",
            "event_types": ["client_event"],
            "filter": {"channel_name_starts_with": "presence-"},
        },
    ]
)
HOOKED = dataclasses.replace(APP, webhooks=(ALL, CLIENT_ONLY))
LANE, CLIENT_LANE = lane_id(APP.id, ALL), lane_id(APP.id, CLIENT_ONLY)


@pytest.fixture
async def node(make_node: MakeNode) -> AsyncIterator[Node]:
    started = await make_node(HOOKED)
    yield started
    await started.stop()


def connect_to(node: Node) -> Any:
    def connect() -> Client:
        client = Client.connect(node, HOOKED)
        client.outlet.clear()
        return client

    return connect


async def lane(node: Node, name: str = LANE) -> list[dict[str, Any]]:
    """The events waiting in lane `name`, without subscription counts."""
    await node.webhooks.flush()
    events = [orjson.loads(e.event) for e in await node.webhooks.read(name, limit=1000)]
    return [e for e in events if e["name"] != "subscription_count"]


def names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["name"], e["channel"]) for e in events]


async def test_subscribing_and_closing_record_occupied_members_and_vacated(node: Node) -> None:
    connect = connect_to(node)
    alice = await joined(connect, "presence-room", user_id="alice")
    await joined(connect, "news")
    await alice.close()

    events = await lane(node)
    assert names(events) == [
        ("channel_occupied", "presence-room"),
        ("member_added", "presence-room"),
        ("channel_occupied", "news"),
        ("member_removed", "presence-room"),
        ("channel_vacated", "presence-room"),
    ]
    assert events[1]["user_id"] == events[3]["user_id"] == "alice"
    assert len({e["id"] for e in events}) == len(events)


async def test_subscription_counts_are_recorded_for_the_lanes_that_take_them(node: Node) -> None:
    await joined(connect_to(node), "news")
    await node.webhooks.flush()

    events = [orjson.loads(e.event) for e in await node.webhooks.read(LANE)]
    assert [(e["name"], e.get("subscription_count")) for e in events] == [
        ("channel_occupied", None),
        ("subscription_count", 1),
    ]


async def test_a_client_event_is_recorded_with_its_socket_and_user(node: Node) -> None:
    connect = connect_to(node)
    sender = await joined(connect, "presence-room", user_id="alice")
    await joined(connect, "presence-room", user_id="bob")

    await sender.trigger("presence-room", "client-wave", {"hi": [1]})

    (event,) = [e for e in await lane(node) if e["name"] == "client_event"]
    assert event == {
        "name": "client_event",
        "channel": "presence-room",
        "event": "client-wave",
        "data": '{"hi":[1]}',
        "socket_id": sender.socket_id,
        "user_id": "alice",
        "id": event["id"],
    }
    assert await lane(node, CLIENT_LANE) == [event]


async def test_a_client_event_outside_the_filter_is_not_recorded_for_that_endpoint(
    node: Node,
) -> None:
    connect = connect_to(node)
    sender = await joined(connect, "private-chat")
    await joined(connect, "private-chat")

    await sender.trigger("private-chat", "client-typing", "x")

    (event,) = [e for e in await lane(node) if e["name"] == "client_event"]
    assert event["data"] == "x"
    assert "user_id" not in event
    assert await lane(node, CLIENT_LANE) == []


async def test_cache_misses_are_recorded_once_per_channel_at_a_time(node: Node) -> None:
    connect = connect_to(node)
    for _ in range(3):  # three subscribers miss at once
        await joined(connect, "cache-prices")
    await joined(connect, "cache-rates")

    misses = [e for e in await lane(node) if e["name"] == "cache_miss"]
    assert [e["channel"] for e in misses] == ["cache-prices", "cache-rates"]


async def test_an_app_without_endpoints_records_nothing(make_node: MakeNode) -> None:
    plain = await make_node()
    client = Client.connect(plain, APP)
    await client.subscribe("cache-x")
    await client.close()
    await plain.webhooks.flush()

    assert await plain.webhooks.lanes() == []
    await plain.stop()
