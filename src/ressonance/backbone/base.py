"""The Backbone seam: topic pub/sub between nodes.

Guarantees every implementation keeps:
- At-most-once delivery: a message is delivered to each subscribed node once or not at all.
- Order is kept per topic per publisher.
- Interest-based: a node receives only topics it subscribed to. The node reference-counts
  its local subscribers, so a backbone sees the first subscribe and the last unsubscribe.
- A message carries the frame already encoded by the publishing node; nobody re-encodes it.
- A topic is an (app id, channel) pair, carried as such from the publisher to the hub, so
  nothing on the delivery path splits a string to find a message's app. Brokers know a
  topic by its `name`, `<app id>:<channel>`.
- A publish that cannot be handed to the backbone raises BackboneUnavailableError; it is
  never dropped silently (the HTTP API answers 503). Interest survives an outage: a
  networked backbone reconnects on its own and resubscribes every live topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ressonance.protocol.errors import RessonanceError


class Topic(NamedTuple):
    """What a publish is addressed to: one channel of one app (app ids keep tenants apart).

    A tuple, so hashing and comparing it as a dict or set key (the hub's index, a
    backbone's live topics) runs in C, and its app id is a field, not a slice of a name.
    """

    app_id: str
    channel: str

    @property
    def name(self) -> str:
        """`<app id>:<channel>`: the Redis channel or NATS subject of the topic is made from it,
        the same for every wire version, so nodes of two versions share them."""
        return f"{self.app_id}:{self.channel}"


# Not frozen (a frozen dataclass's __init__ sets each field through object.__setattr__:
# ~1 % of a connect or publish each); built per publish, never changed once built.
@dataclass(slots=True)
class BackboneMessage:
    """One publish: the WebSocket frame to write to every local subscriber of `topic`.

    `except_socket_id` is skipped (the publisher's own socket, §5.1 `socket_id`).
    `close_code`, when set, closes each receiving connection after the frame is written
    (terminate_connections).
    """

    topic: Topic
    frame: bytes
    except_socket_id: str | None = None
    origin: str = ""
    close_code: int | None = None


MessageHandler = Callable[[BackboneMessage], None]


class BackboneUnavailableError(RessonanceError):
    """The backbone cannot take a publish now (disconnected, reconnecting); try again later."""


class Backbone(Protocol):
    """Pub/sub between nodes."""

    @property
    def healthy(self) -> bool:
        """True while publishes can be handed over; False while disconnected."""
        ...

    async def start(self, on_message: MessageHandler) -> None:
        """Connect and begin delivering messages of subscribed topics to `on_message`.

        Raises BackboneUnavailableError when the first connection cannot be made: a wrong
        URL fails at start-up instead of looking like a long outage.
        """
        ...

    async def publish(self, message: BackboneMessage) -> None:
        """Send `message` to every node subscribed to its topic, this one included.

        Raises BackboneUnavailableError when the message cannot be handed over.
        """
        ...

    async def subscribe(self, topic: Topic) -> None:
        """Receive `topic` from now on: once this returns, later publishes are delivered.

        While disconnected, the interest is recorded and applied on reconnect.
        """
        ...

    async def unsubscribe(self, topic: Topic) -> None: ...

    async def close(self) -> None: ...
