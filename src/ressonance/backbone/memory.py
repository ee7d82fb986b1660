"""The single-process backbone: a publish is delivered synchronously, in order."""

from __future__ import annotations

from ressonance.backbone.base import BackboneMessage, MessageHandler, Topic


class MemoryBackbone:
    """Delivers to the one node of this process; the default when nothing is configured."""

    def __init__(self) -> None:
        self._topics: set[Topic] = set()
        self._on_message: MessageHandler | None = None

    @property
    def healthy(self) -> bool:
        return True

    async def start(self, on_message: MessageHandler) -> None:
        self._on_message = on_message

    async def publish(self, message: BackboneMessage) -> None:
        if self._on_message is not None and message.topic in self._topics:
            self._on_message(message)

    async def subscribe(self, topic: Topic) -> None:
        self._topics.add(topic)

    async def unsubscribe(self, topic: Topic) -> None:
        self._topics.discard(topic)

    async def close(self) -> None:
        self._on_message = None
        self._topics.clear()
