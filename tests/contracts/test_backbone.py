"""Backbone contract (backbone/base.py): interest-based, ordered, at-most-once pub/sub.

Delivery may be asynchronous on a networked backbone, so tests wait for what must arrive
(bounded by the test timeout, asserting nothing about time). To show that something was
NOT delivered, a marker is published after it on a subscribed topic: once the marker
arrives, anything published before it by the same publisher would have arrived too.
"""

from __future__ import annotations

import asyncio

from ressonance.backbone.base import Backbone, BackboneMessage, topic_of
from ressonance.protocol.frames import text_frame


class Inbox:
    """Collects what a backbone delivers to its node."""

    def __init__(self) -> None:
        self.messages: list[BackboneMessage] = []
        self._arrived = asyncio.Event()

    def __call__(self, message: BackboneMessage) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def wait_for(self, count: int) -> list[BackboneMessage]:
        while len(self.messages) < count:
            self._arrived.clear()
            await self._arrived.wait()
        return self.messages

    def topics(self) -> list[str]:
        return [message.topic for message in self.messages]


def message(topic: str, n: int = 0, **fields: object) -> BackboneMessage:
    frame = text_frame(b'{"event":"e","channel":"c","data":"%d"}' % n)
    return BackboneMessage(topic, frame, **fields)  # type: ignore[arg-type]


async def started(backbone: Backbone) -> Inbox:
    inbox = Inbox()
    await backbone.start(inbox)
    return inbox


async def test_a_subscribed_topic_is_delivered_as_published(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe("1:news")
    sent = message("1:news", except_socket_id="12.34", origin="node-a", close_code=4009)

    await backbone.publish(sent)

    [received] = await inbox.wait_for(1)
    assert received == sent
    assert received.frame == sent.frame


async def test_unsubscribed_topics_are_not_delivered(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe("1:news")

    await backbone.publish(message("1:sports"))
    await backbone.publish(message("1:news"))

    await inbox.wait_for(1)
    assert inbox.topics() == ["1:news"]


async def test_after_unsubscribe_a_topic_is_no_longer_delivered(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe("1:news")
    await backbone.subscribe("1:marker")
    await backbone.publish(message("1:news", 1))
    await inbox.wait_for(1)

    await backbone.unsubscribe("1:news")
    await backbone.publish(message("1:news", 2))
    await backbone.publish(message("1:marker"))

    await inbox.wait_for(2)
    assert inbox.topics() == ["1:news", "1:marker"]


async def test_order_is_kept_per_topic(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe("1:news")
    await backbone.subscribe("1:sports")
    sent = [message("1:news" if n % 3 else "1:sports", n) for n in range(60)]

    for item in sent:
        await backbone.publish(item)

    received = await inbox.wait_for(60)
    for topic in ("1:news", "1:sports"):
        assert [m for m in received if m.topic == topic] == [m for m in sent if m.topic == topic]


async def test_each_message_is_delivered_at_most_once(backbone: Backbone) -> None:
    inbox = await started(backbone)
    await backbone.subscribe("1:news")
    await backbone.subscribe("1:marker")

    for n in range(5):
        await backbone.publish(message("1:news", n))
    await backbone.publish(message("1:marker"))

    received = await inbox.wait_for(6)
    assert len(received) == 6
    assert [m.topic for m in received].count("1:news") == 5


async def test_a_started_backbone_is_healthy(backbone: Backbone) -> None:
    await started(backbone)

    assert backbone.healthy


def test_topics_keep_apps_apart() -> None:
    assert topic_of("1", "news") != topic_of("2", "news")
    assert topic_of("1", "private-x") == "1:private-x"
