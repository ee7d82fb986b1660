"""The Backbone seam: topic pub/sub between nodes.

Guarantees every implementation keeps:
- At-most-once delivery: a message is delivered to each subscribed node once or not at all.
- Order is kept per topic per publisher.
- Interest-based: a node receives only topics it subscribed to. The node reference-counts
  its local subscribers, so a backbone sees the first subscribe and the last unsubscribe.
- A message carries the frame already encoded by the publishing node; nobody re-encodes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


def topic_of(app_id: str, channel: str) -> str:
    """The backbone topic of a channel; app ids keep tenants apart."""
    return f"{app_id}:{channel}"


@dataclass(frozen=True, slots=True)
class BackboneMessage:
    """One publish: the WebSocket frame to write to every local subscriber of `topic`.

    `except_socket_id` is skipped (the publisher's own socket, §5.1 `socket_id`).
    `close_code`, when set, closes each receiving connection after the frame is written
    (terminate_connections).
    """

    topic: str
    frame: bytes
    except_socket_id: str | None = None
    origin: str = ""
    close_code: int | None = None


MessageHandler = Callable[[BackboneMessage], None]


class Backbone(Protocol):
    """Pub/sub between nodes."""

    async def start(self, on_message: MessageHandler) -> None:
        """Begin delivering messages of subscribed topics to `on_message`."""
        ...

    async def publish(self, message: BackboneMessage) -> None:
        """Send `message` to every node subscribed to its topic, this one included."""
        ...

    async def subscribe(self, topic: str) -> None: ...

    async def unsubscribe(self, topic: str) -> None: ...

    async def close(self) -> None: ...
