"""Backbone contract (backbone/base.py): interest-based, ordered, at-most-once pub/sub.

Delivery may be asynchronous on a networked backbone, so tests wait for what must arrive,
each wait bounded (DELIVERY_TIMEOUT) so a lost message fails the test with what did arrive
instead of hanging. To show that something was NOT delivered, a marker is published after
it on a subscribed topic: once the marker arrives, anything published before it by the same
publisher would have arrived too.

The suite runs on every backbone; the tests that need two nodes on one server, or a server
to stop, run on the networked ones (redis, nats). Those carry messages in the wire format
(backbone/wire.py): a node writing the previous version (one not yet upgraded in a rolling
deploy) is read by the others, field for field and in order. The memory backbone hands the
message object over as is: no format is involved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ressonance.backbone.base import (
    Backbone,
    BackboneMessage,
    BackboneUnavailableError,
    Topic,
)
from ressonance.backbone.wire import PREVIOUS_VERSION, VERSION
from ressonance.protocol.frames import text_frame
from tests.contracts.conftest import MakeBackbone, Restartable

NEWS, SPORTS, ROOM = Topic("1", "news"), Topic("1", "sports"), Topic("1", "presence-room")
MARKER, OWN, DROPPED, LATE = (Topic("1", name) for name in ("marker", "own", "dropped", "late"))
DELIVERY_TIMEOUT = 10.0
RECOVERY_TIMEOUT = 10.0  # outage detected, or server back and healthy again


class Inbox:
    """Collects what a backbone delivers to its node."""

    def __init__(self) -> None:
        self.messages: list[BackboneMessage] = []
        self._arrived = asyncio.Event()

    def __call__(self, message: BackboneMessage) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def wait_for(self, count: int) -> list[BackboneMessage]:
        try:
            async with asyncio.timeout(DELIVERY_TIMEOUT):
                while len(self.messages) < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(
                f"{count} messages expected within {DELIVERY_TIMEOUT}s, "
                f"{len(self.messages)} arrived: {self.topics()}"
            ) from None
        return self.messages

    def topics(self) -> list[str]:
        return [message.topic.name for message in self.messages]


def message(topic: Topic, n: int = 0, **fields: object) -> BackboneMessage:
    frame = text_frame(b'{"event":"e","channel":"c","data":"%d"}' % n)
    return BackboneMessage(topic, frame, **fields)  # type: ignore[arg-type]


async def started(backbone: Backbone) -> Inbox:
    inbox = Inbox()
    await backbone.start(inbox)
    return inbox


async def test_a_subscribed_topic_is_delivered_as_published(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe(NEWS)
    sent = message(NEWS, except_socket_id="12.34", origin="node-a", close_code=4009)

    await backbone.publish(sent)

    [received] = await inbox.wait_for(1)
    assert received == sent
    assert received.frame == sent.frame


async def test_unsubscribed_topics_are_not_delivered(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe(NEWS)

    await backbone.publish(message(SPORTS))
    await backbone.publish(message(NEWS))

    await inbox.wait_for(1)
    assert inbox.topics() == ["1:news"]


async def test_after_unsubscribe_a_topic_is_no_longer_delivered(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe(NEWS)
    await backbone.subscribe(MARKER)
    await backbone.publish(message(NEWS, 1))
    await inbox.wait_for(1)

    await backbone.unsubscribe(NEWS)
    await backbone.publish(message(NEWS, 2))
    await backbone.publish(message(MARKER))

    await inbox.wait_for(2)
    assert inbox.topics() == ["1:news", "1:marker"]


async def test_order_is_kept_per_topic(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe(NEWS)
    await backbone.subscribe(SPORTS)
    sent = [message(NEWS if n % 3 else SPORTS, n) for n in range(60)]

    for item in sent:
        await backbone.publish(item)

    received = await inbox.wait_for(60)
    for topic in (NEWS, SPORTS):
        assert [m for m in received if m.topic == topic] == [m for m in sent if m.topic == topic]


async def test_each_message_is_delivered_at_most_once(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe(NEWS)
    await backbone.subscribe(MARKER)

    for n in range(5):
        await backbone.publish(message(NEWS, n))
    await backbone.publish(message(MARKER))

    received = await inbox.wait_for(6)
    assert len(received) == 6
    assert [m.topic for m in received].count(NEWS) == 5


async def test_a_started_backbone_is_healthy(backbone: Backbone) -> None:
    await started(backbone)

    assert backbone.healthy


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until `condition()` holds, at most RECOVERY_TIMEOUT."""
    try:
        async with asyncio.timeout(RECOVERY_TIMEOUT):
            while not condition():  # noqa: ASYNC110 - `healthy` is a property, not an event
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not {what} within {RECOVERY_TIMEOUT}s") from None


# --- two nodes on one server (networked backbones) ------------------------------------


async def test_a_node_receives_only_the_topics_it_subscribed_to(
    make_backbone: MakeBackbone,
) -> None:
    a, b = make_backbone(), make_backbone()
    inbox_a, inbox_b = await started(a), await started(b)
    await a.subscribe(NEWS)
    await b.subscribe(SPORTS)
    for bus in (a, b):
        await bus.subscribe(MARKER)

    await a.publish(message(SPORTS, 1))
    await b.publish(message(NEWS, 2))
    await a.publish(message(MARKER))
    await b.publish(message(MARKER))

    assert sorted(m.topic.name for m in await inbox_a.wait_for(3)) == [
        "1:marker",
        "1:marker",
        "1:news",
    ]
    assert sorted(m.topic.name for m in await inbox_b.wait_for(3)) == [
        "1:marker",
        "1:marker",
        "1:sports",
    ]


async def test_every_subscribed_node_receives_a_publish_the_publisher_included(
    make_backbone: MakeBackbone,
) -> None:
    nodes = [make_backbone() for _ in range(3)]
    inboxes = [await started(bus) for bus in nodes]
    for bus in nodes:
        await bus.subscribe(NEWS)

    sent = message(NEWS, 7)
    await nodes[0].publish(sent)

    for inbox in inboxes:
        assert await inbox.wait_for(1) == [sent]


async def test_unsubscribe_stops_delivery_to_that_node_only(make_backbone: MakeBackbone) -> None:
    a, b = make_backbone(), make_backbone()
    inbox_a, inbox_b = await started(a), await started(b)
    for bus in (a, b):
        await bus.subscribe(NEWS)
        await bus.subscribe(MARKER)

    await b.unsubscribe(NEWS)
    await a.publish(message(NEWS, 1))
    await a.publish(message(MARKER))

    assert [m.topic.name for m in await inbox_b.wait_for(1)] == ["1:marker"]
    assert sorted(m.topic.name for m in await inbox_a.wait_for(2)) == ["1:marker", "1:news"]


async def test_a_late_subscriber_gets_nothing_published_before(
    make_backbone: MakeBackbone,
) -> None:
    a, b = make_backbone(), make_backbone()
    await started(a)
    inbox_b = await started(b)
    await b.subscribe(MARKER)
    await a.publish(message(NEWS, 1))  # at-most-once: nothing is kept for later
    await a.publish(message(MARKER))
    await inbox_b.wait_for(1)  # so the server has passed news 1 on (publish may be buffered)

    await b.subscribe(NEWS)
    await a.publish(message(NEWS, 2))

    assert await inbox_b.wait_for(2) == [message(MARKER), message(NEWS, 2)]


async def test_order_is_kept_per_topic_across_nodes(make_backbone: MakeBackbone) -> None:
    a, b = make_backbone(), make_backbone()
    await started(a)
    inbox = await started(b)
    topics = [NEWS, SPORTS, ROOM]
    for topic in topics:
        await b.subscribe(topic)
    sent = [message(topics[n % 3], n) for n in range(1000)]

    for item in sent:
        await a.publish(item)

    received = await inbox.wait_for(1000)
    assert len(received) == 1000
    for topic in topics:
        assert [m for m in received if m.topic == topic] == [m for m in sent if m.topic == topic]


@pytest.mark.parametrize("wire_version", [VERSION, PREVIOUS_VERSION])
async def test_every_field_survives_the_wire(
    make_backbone: MakeBackbone, wire_version: int
) -> None:
    a, b = make_backbone(wire_version=wire_version), make_backbone()
    await started(a)
    inbox = await started(b)
    topic = Topic("1", "presence-a.b#c@d,e;f=g:h é")
    await b.subscribe(topic)
    sent = [
        BackboneMessage(topic, text_frame('{"data":"é"}'.encode()), "123.456", "node-a", 4009),
        BackboneMessage(topic, bytes(range(256)) * 64, None, "node-a", None),
        BackboneMessage(topic, b"", "", "", 0),
    ]

    for item in sent:
        await a.publish(item)

    assert await inbox.wait_for(3) == sent


async def test_a_node_reads_what_nodes_of_either_wire_version_publish(
    make_backbone: MakeBackbone,
) -> None:
    """A rolling deploy: nodes not yet upgraded write the previous version."""
    old, new, reader = (
        make_backbone(wire_version=PREVIOUS_VERSION),
        make_backbone(),
        make_backbone(),
    )
    for bus in (old, new):
        await started(bus)
    inbox = await started(reader)
    await reader.subscribe(NEWS)
    from_old = [message(NEWS, n, origin="old") for n in range(20)]
    from_new = [message(NEWS, n, origin="new", except_socket_id="1.2") for n in range(20)]

    for sent_by_old, sent_by_new in zip(from_old, from_new, strict=True):
        await old.publish(sent_by_old)
        await new.publish(sent_by_new)

    received = await inbox.wait_for(40)
    assert [m for m in received if m.origin == "old"] == from_old
    assert [m for m in received if m.origin == "new"] == from_new


# --- outages (a server of the test's own) ------------------------------------------------


async def test_an_outage_is_reported_and_delivery_resumes_after_it(
    restartable: Restartable,
) -> None:
    a, b = restartable.make(), restartable.make()
    inbox_a, inbox_b = await started(a), await started(b)
    await a.subscribe(OWN)
    await b.subscribe(NEWS)
    await b.subscribe(DROPPED)
    await a.publish(message(NEWS, 1))
    await inbox_b.wait_for(1)

    restartable.server.stop()
    await eventually(lambda: not a.healthy and not b.healthy, "unhealthy after the stop")
    with pytest.raises(BackboneUnavailableError):
        await a.publish(message(NEWS, 2))
    await b.subscribe(LATE)  # interest changes during the outage apply once it ends
    await b.unsubscribe(DROPPED)

    restartable.server.start()
    await eventually(lambda: a.healthy and b.healthy, "healthy after the restart")
    for topic in (NEWS, DROPPED, LATE, OWN):
        await a.publish(message(topic, 3))

    assert [m.topic.name for m in await inbox_b.wait_for(3)] == ["1:news", "1:news", "1:late"]
    assert [m.topic.name for m in await inbox_a.wait_for(1)] == ["1:own"]


async def test_a_server_that_stops_answering_is_detected_by_ping(
    restartable: Restartable,
) -> None:
    a = restartable.make(ping_interval=1, timeout=1)
    inbox = await started(a)
    await a.subscribe(NEWS)

    restartable.server.pause()  # connections stay open; nothing answers
    try:
        await eventually(lambda: not a.healthy, "unhealthy while the server is frozen")
    finally:
        restartable.server.resume()
    await eventually(lambda: a.healthy, "healthy once the server answers again")
    await a.publish(message(NEWS, 1))

    assert [m.topic.name for m in await inbox.wait_for(1)] == ["1:news"]


async def test_start_fails_fast_when_the_server_is_down(restartable: Restartable) -> None:
    restartable.server.stop()
    bus = restartable.make(timeout=1)

    async with asyncio.timeout(RECOVERY_TIMEOUT):
        with pytest.raises(BackboneUnavailableError, match="cannot reach"):
            await bus.start(Inbox())
    assert not bus.healthy


def test_topics_keep_apps_apart() -> None:
    assert Topic("1", "news") != Topic("2", "news")
    assert Topic("1", "private-x").name == "1:private-x"
