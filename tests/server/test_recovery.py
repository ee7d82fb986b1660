"""Resume after reconnect (server/recovery.py), as a pusher-js client with the add-on sees it:
serials on events and on subscription_succeeded, the missed events right after it, exactly
once and in order, then the live stream; `ressonance:resume_failed` when the gap is lost."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest

from ressonance.backbone.base import Topic
from ressonance.protocol import messages as m
from ressonance.protocol.app import App
from ressonance.protocol.errors import ErrorCode
from ressonance.server import recovery
from ressonance.server.node import Node
from ressonance.state.base import HistoryPage, HistoryStore, Retention
from tests.fakes import FakeClock, decoded_data
from tests.server.clients import Client, trigger
from tests.server.conftest import APP, Connect, MakeNode

CHAT = dataclasses.replace(APP, history_channels=("chat-*",), history_size=50, history_ttl=60)


@pytest.fixture
async def node(make_node: MakeNode) -> Node:
    return await make_node(CHAT)


def connect_chat(connect: Connect) -> Client:
    return connect(CHAT)


async def resume(client: Client, channel: str, after: int | None) -> None:
    data: dict[str, Any] = {"channel": channel, "auth": ""}
    if after is not None:
        data["resume_after"] = after
    await client.send({"event": "pusher:subscribe", "data": data})


async def publish(node: Node, count: int, channel: str = "chat-1", start: int = 0) -> list[int]:
    serials = []
    for n in range(start, start + count):
        given = await node.publish(CHAT, trigger(channel, name="message", data=f'{{"n":{n}}}'))
        serials.append(given[channel])
    return serials


def events(client: Client, channel: str = "chat-1") -> list[dict[str, Any]]:
    """The channel events the client got (not protocol messages), in order."""
    return [
        m
        for m in client.outlet.messages()
        if m.get("channel") == channel and not m["event"].startswith(("pusher", "ressonance"))
    ]


def numbers(client: Client) -> list[int]:
    found = []
    for message in events(client):
        data = decoded_data(message)
        assert isinstance(data, dict)
        found.append(data["n"])
    return found


def succeeded_serial(client: Client, channel: str = "chat-1") -> Any:
    return client.outlet.assert_received(
        "pusher_internal:subscription_succeeded", channel=channel
    ).get("serial")


def failure(client: Client, channel: str = "chat-1") -> dict[str, Any]:
    message = client.outlet.assert_received("ressonance:resume_failed", channel=channel)
    data = orjson.loads(message["data"])
    assert isinstance(data, dict)
    return data


async def test_events_of_a_history_channel_carry_serials_and_others_none(
    node: Node, connect: Connect, clock: FakeClock
) -> None:
    client = connect_chat(connect)
    await resume(client, "chat-1", None)
    await client.subscribe("news")
    start = succeeded_serial(client)

    given = await node.publish(CHAT, trigger("chat-1", "news"))

    assert start == int(clock() * 1_000_000)
    assert given == {"chat-1": start + 1}
    chat = client.outlet.assert_received("my-event", channel="chat-1")
    news = client.outlet.assert_received("my-event", channel="news")
    assert chat["serial"] == start + 1
    assert "serial" not in news
    assert succeeded_serial(client, "news") is None


async def test_a_reconnecting_client_gets_what_it_missed_then_the_live_stream(
    node: Node, connect: Connect
) -> None:
    before = connect_chat(connect)
    await resume(before, "chat-1", None)
    seen = await publish(node, 3)
    await before.close()
    await publish(node, 5, start=3)  # missed while away

    after = connect_chat(connect)
    await resume(after, "chat-1", seen[-1])
    await publish(node, 2, start=8)

    assert numbers(after) == list(range(3, 10))
    assert [m["serial"] for m in events(after)] == list(range(seen[-1] + 1, seen[-1] + 8))
    assert after.outlet.events()[0] == "pusher_internal:subscription_succeeded"
    assert succeeded_serial(after) == seen[-1] + 5
    after.outlet.assert_not_received("ressonance:resume_failed")
    assert node.metrics.app(CHAT.id).resumes_recovered == 1


async def test_nothing_missed_replays_nothing(node: Node, connect: Connect) -> None:
    seen = await publish(node, 2)

    client = connect_chat(connect)
    await resume(client, "chat-1", seen[-1])

    assert events(client) == []
    client.outlet.assert_not_received("ressonance:resume_failed")


async def test_a_gap_older_than_the_history_is_told_not_hidden(
    node: Node, connect: Connect
) -> None:
    seen = await publish(node, 60)  # history_size 50: the first 10 are gone

    client = connect_chat(connect)
    await resume(client, "chat-1", seen[5])
    await publish(node, 1, start=60)

    assert failure(client) == {"reason": "too_old", "resume_after": seen[5], "serial": seen[-1]}
    assert numbers(client) == [60]  # then the live stream
    assert node.metrics.app(CHAT.id).resumes_gap == 1


async def test_a_gap_past_the_time_window_is_told(
    node: Node, connect: Connect, clock: FakeClock
) -> None:
    seen = await publish(node, 3)
    await publish(node, 2, start=3)
    clock.advance(CHAT.history_ttl + 1)

    client = connect_chat(connect)
    await resume(client, "chat-1", seen[-1])

    assert failure(client)["reason"] == "too_old"
    assert events(client) == []


async def test_a_serial_the_log_never_gave_is_a_gap(node: Node, connect: Connect) -> None:
    seen = await publish(node, 2)

    client = connect_chat(connect)
    await resume(client, "chat-1", seen[-1] + 100)

    assert failure(client)["reason"] == "too_old"


async def test_a_log_that_is_gone_starts_afresh_and_the_client_is_told(
    node: Node, connect: Connect
) -> None:
    client = connect_chat(connect)
    await resume(client, "chat-2", 12345)

    data = failure(client, "chat-2")
    assert data["reason"] == "too_old"
    assert data["serial"] == succeeded_serial(client, "chat-2") > 12345


async def test_asking_to_resume_a_channel_without_history_is_told(
    node: Node, connect: Connect
) -> None:
    client = connect_chat(connect)
    await resume(client, "news", 7)
    await node.publish(CHAT, trigger("news"))

    assert succeeded_serial(client, "news") is None
    assert failure(client, "news") == {"reason": "no_history", "resume_after": 7, "serial": None}
    client.outlet.assert_received("my-event", channel="news")


async def test_a_long_gap_is_replayed_page_by_page_in_order(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "PAGE_EVENTS", 7)
    monkeypatch.setattr(recovery, "CHUNK_BYTES", 200)
    seen = await publish(node, 1)
    await publish(node, 40, start=1)

    client = connect_chat(connect)
    await resume(client, "chat-1", seen[0])

    assert numbers(client) == list(range(1, 41))
    assert len(client.outlet.writes) > 10  # written in chunks, not one frame per write


class PausingHistory:
    """A HistoryStore whose reads wait for the test, so publishes land during a resume."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.reading = asyncio.Event()
        self.go = asyncio.Event()

    async def append(self, app_id: str, channel: str, name: str, data: str, r: Retention) -> int:
        return await self.store.append(app_id, channel, name, data, r)

    async def position(self, app_id: str, channel: str, retention: Retention) -> int:
        return await self.store.position(app_id, channel, retention)

    async def read(self, *args: Any, **kwargs: Any) -> HistoryPage:
        self.reading.set()
        await self.go.wait()
        return await self.store.read(*args, **kwargs)

    async def retained_bytes(self) -> dict[str, int]:
        return await self.store.retained_bytes()


async def test_events_published_during_a_resume_are_neither_lost_nor_doubled(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "PAGE_EVENTS", 4)
    pausing = PausingHistory(node.history.store)
    seen = await publish(node, 1)
    await publish(node, 10, start=1)  # missed
    node.history.store = pausing

    client = connect_chat(connect)
    resuming = asyncio.create_task(resume(client, "chat-1", seen[0]))
    await pausing.reading.wait()
    await publish(node, 5, start=11)  # kept before the first read: in the replay AND live
    pausing.go.set()
    live = asyncio.create_task(publish(node, 30, start=16))  # during the later pages
    await asyncio.gather(resuming, live)
    await publish(node, 4, start=46)

    assert numbers(client) == list(range(1, 50))


async def test_a_client_that_stops_reading_during_a_resume_is_closed_not_buffered_forever(
    make_node: MakeNode, connect: Connect
) -> None:
    node = await make_node(CHAT, max_buffer_messages=5)
    pausing = PausingHistory(node.history.store)
    node.history.store = pausing
    client = Client.connect(node, CHAT)

    resuming = asyncio.create_task(resume(client, "chat-1", 1))
    await pausing.reading.wait()
    await publish(node, 6)
    pausing.go.set()
    await resuming

    client.outlet.assert_closed(ErrorCode.OVER_CAPACITY)


async def test_a_resume_waits_for_a_slow_reader_between_chunks(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "CHUNK_BYTES", 100)
    seen = await publish(node, 1)
    await publish(node, 5, start=1)
    client = connect_chat(connect)
    client.outlet.buffered_bytes = 1000  # the client reads nothing

    resuming = asyncio.create_task(resume(client, "chat-1", seen[0]))
    for _ in range(20):
        await asyncio.sleep(0.01)
    held_back = len(events(client))
    client.outlet.buffered_bytes = 0  # it reads again
    await resuming

    assert held_back < 5
    assert numbers(client) == [1, 2, 3, 4, 5]


async def test_the_publish_answer_and_history_agree_across_channels(
    node: Node, make_node: MakeNode
) -> None:
    other = dataclasses.replace(CHAT, id="2", key="other-key")
    two = await make_node(CHAT, other)

    given = await two.publish(CHAT, trigger("chat-1", "chat-2", "news"))
    elsewhere = await two.publish(other, trigger("chat-1"))

    assert set(given) == {"chat-1", "chat-2"}
    assert given["chat-1"] == given["chat-2"] == elsewhere["chat-1"]  # each log its own
    page = await two.history.read(CHAT, "chat-1", limit=10)
    assert [e.serial for e in page.events] == [given["chat-1"]]


def test_an_app_without_history_pays_nothing_on_publish() -> None:
    assert App(id="1", key="k", secret="s").history_channels == ()


async def test_a_live_copy_arriving_after_the_replay_is_dropped_then_the_session_takes_over(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "SETTLE_SECONDS", 0.01)
    seen = await publish(node, 1)
    # Kept by a publishing node that has not handed it to the backbone yet:
    late = await node.history.record(CHAT, "chat-1", "message", '{"n":1}')
    assert late is not None
    client = connect_chat(connect)
    await resume(client, "chat-1", seen[0])
    frame = m.encode_channel_event("chat-1", "message", '{"n":1}', None, late)
    await node.fanout.broadcast(CHAT, "chat-1", frame)  # ...and now it does
    await publish(node, 1, start=2)
    hold = node.hub.sessions(Topic(CHAT.id, "chat-1"))[0]
    await asyncio.sleep(0.05)

    assert numbers(client) == [1, 2]
    assert isinstance(hold, recovery.LiveHold)
    assert node.hub.sessions(Topic(CHAT.id, "chat-1")) == [client.session]
