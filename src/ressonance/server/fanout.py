"""Fanout: the topics this node's sessions are indexed under, and delivery of frames to them.

Rules (ARCHITECTURE.md "Data flows" 1, "Encode once"):
1. A message is encoded and framed once per channel (`broadcast`), handed to the backbone
   for the other nodes, then delivered here directly (`send`): the backbone comes first, so
   when it is down the publish fails and nothing is delivered anywhere (a retry cannot
   duplicate). The copy the backbone brings back to its origin is ignored.
2. Delivery (`deliver`) writes the same bytes to every local session of the topic through
   the hub, and counts the copies once per delivery, never per recipient, against the app
   the message's topic carries (nothing is parsed or split on the way). Sessions hold
   their fanout frames until the end of the loop turn; the turn's first delivery schedules
   one `flush`, which writes each waiting session's frames in one write.
3. A topic's first local session subscribes the backbone to it, its last one unsubscribes
   (interest-based delivery). A session indexed while that subscription is under way waits
   for it (and fails with it): its `subscription_succeeded` never precedes the moment the
   other nodes' events reach this node. A session may be indexed through a stand-in that holds its
   frames for a while (`server.recovery`), until it `take_over`s.

This is the hot path: keep the number of calls per delivery as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ressonance.backbone.base import Backbone, BackboneMessage, BackboneUnavailableError, Topic
from ressonance.protocol.app import App
from ressonance.protocol.frames import text_frame
from ressonance.server.hub import Hub, Recipient
from ressonance.server.metrics import Metrics
from ressonance.server.quotas import Quotas
from ressonance.server.session import Session

log = logging.getLogger(__name__)


class Fanout:
    """Publishes through the backbone and delivers to this node's sessions."""

    def __init__(
        self, *, backbone: Backbone, hub: Hub, node_id: str, metrics: Metrics, quotas: Quotas
    ) -> None:
        self.backbone = backbone
        self.hub = hub
        self.node_id = node_id
        self.metrics = metrics
        self.quotas = quotas
        self.dirty: list[Session] = []  # sessions with fanout frames pending this loop turn
        self._flush_scheduled = False
        # Backbone subscriptions under way: later local subscribers of the topic wait for them.
        self._subscribing: dict[Topic, asyncio.Future[None]] = {}

    async def send(self, message: BackboneMessage) -> None:
        """Hand `message` to the backbone for other nodes, then deliver it here directly."""
        await self.backbone.publish(message)
        self.deliver(message)

    def on_backbone_message(self, message: BackboneMessage) -> None:
        """What the backbone brings: delivered unless this node sent it (rule 1)."""
        if message.origin != self.node_id:
            self.deliver(message)

    def deliver(self, message: BackboneMessage) -> None:
        topic = message.topic
        if message.close_code is None:
            count = self.hub.deliver(topic, message.frame, message.except_socket_id)
            self.metrics.delivered(topic.app_id, message.frame, count)
            self.quotas.count(topic.app_id, count)  # each copy is a message
        else:
            sessions = self.hub.sessions(topic)
            self.metrics.delivered(topic.app_id, message.frame, len(sessions))
            for session in sessions:
                session.write(message.frame)
                session.close(message.close_code, "You got disconnected by the app.")
        if self.dirty and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the fanout frames of this loop turn: one write per session that got any.

        Called once per turn (`call_soon` from the turn's first delivery), so the events of
        every publish handled in the same turn share one syscall per subscriber.
        """
        self._flush_scheduled = False
        dirty = self.dirty
        for session in dirty:
            try:
                session.flush_pending()
            except Exception:  # one broken connection must not keep the others' frames
                log.exception("event=flush_failed socket_id=%s", session.socket_id)
        dirty.clear()

    async def broadcast(
        self, app: App, channel: str, message: bytes, except_socket_id: str | None = None
    ) -> None:
        """Send one encoded Pusher message to every subscriber of the app's `channel`."""
        topic = Topic(app.id, channel)
        frame = text_frame(message)
        await self.send(BackboneMessage(topic, frame, except_socket_id, self.node_id))

    # --- topics -------------------------------------------------------------------------

    async def index(
        self, session: Session, topic: Topic, stand_in: Recipient | None = None
    ) -> None:
        """Index `session` under `topic`, or `stand_in` in its place (same socket id)."""
        session.topics.add(topic)
        if self.hub.add(topic, session if stand_in is None else stand_in):
            await self._subscribe(topic)
        elif (pending := self._subscribing.get(topic)) is not None:
            await asyncio.shield(pending)  # indexed, but not yet reached by other nodes' events

    async def _subscribe(self, topic: Topic) -> None:
        """Subscribe the backbone; the topic's other subscribers meanwhile wait for the outcome."""
        pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._subscribing[topic] = pending
        try:
            await self.backbone.subscribe(topic)
        except BaseException as exc:
            failure = (
                exc
                if isinstance(exc, Exception)
                else BackboneUnavailableError(f"subscribing {topic.name} was interrupted")
            )
            pending.set_exception(failure)
            pending.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            pending.set_result(None)
        finally:
            del self._subscribing[topic]

    def take_over(self, session: Session, topic: Topic, stand_in: Recipient) -> None:
        """`session` replaces `stand_in` under `topic`, if it still stands in for it there."""
        if topic in session.topics and not session.closed:
            self.hub.replace(topic, stand_in, session)

    async def unindex(self, session: Session, topic: Topic) -> None:
        session.topics.discard(topic)
        if self.hub.remove(topic, session):
            await self.backbone.unsubscribe(topic)

    async def unindex_all(self, session: Session) -> None:
        """Drop a closed session from every topic; a backbone failure stops nothing."""
        for topic in list(session.topics):
            session.topics.discard(topic)
            if self.hub.remove(topic, session):
                with contextlib.suppress(Exception):
                    await self.backbone.unsubscribe(topic)
