"""Client events: relaying a connection's `client-*` event to the channel's other subscribers.

The protocol core has already checked what needs no store (client events enabled, the name,
the channel kind, membership, the size; reference §2.4). Here the limits that need counting
are applied, cheapest first, and the first that says no answers `pusher:error` 4301 with the
channel (the connection stays open):
1. the connection's own rate, `max_client_events_per_sec` (the node's local limiter);
2. the app's daily messages, `max_messages_per_day` (from the quota's cached total);
3. the app-wide rate, `max_app_client_events_per_sec` (the shared limiter, spent only when
   everything else allowed the event).
An event that passes is counted as one message (its deliveries are counted as they go) and
sent through the backbone, never to its sender; the `client_event` webhook is buffered for
the endpoints that take it (no waiting).
"""

from __future__ import annotations

from ressonance.backbone.base import BackboneMessage, Topic
from ressonance.protocol.app import App
from ressonance.protocol.connection import ClientEventReceived
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.frames import text_frame
from ressonance.server.fanout import Fanout
from ressonance.server.quotas import CONNECTION_CLIENT_EVENTS, Quotas
from ressonance.server.session import Session
from ressonance.server.webhook_events import WebhookEvents
from ressonance.state.base import RateLimiter


class ClientEvents:
    """The client event path of this node's sessions."""

    def __init__(
        self, *, limiter: RateLimiter, quotas: Quotas, fanout: Fanout, webhooks: WebhookEvents
    ) -> None:
        """`limiter` counts per connection (a connection lives on one node); `quotas` holds
        the app-wide checks."""
        self.limiter = limiter
        self.quotas = quotas
        self.fanout = fanout
        self.webhooks = webhooks

    async def relay(self, session: Session, event: ClientEventReceived) -> str | None:
        """Send the event on, or refuse it; the reason it was refused, if it was."""
        app = session.connection.app
        refusal = await self.refusal(session, app)
        if refusal is not None:
            session.error(refusal, ErrorCode.CLIENT_EVENT_REJECTED, event.channel.name)
            return refusal
        self.quotas.count(app.id, 1)  # the publish; its deliveries are counted as they go
        topic = Topic(app.id, event.channel.name)
        frame = text_frame(event.payload)
        fanout = self.fanout
        await fanout.send(BackboneMessage(topic, frame, session.socket_id, fanout.node_id))
        self.webhooks.client_event(app, session.socket_id, event)
        return None

    async def refusal(self, session: Session, app: App) -> str | None:
        """Why a client event may not go out (4301, reference §2.4), or None."""
        decision = await self.limiter.consume(session.socket_id, app.max_client_events_per_sec)
        if not decision.allowed:
            self.quotas.refused(app.id, CONNECTION_CLIENT_EVENTS)
            return (
                "Client event rejected due to rate limit "
                f"({app.max_client_events_per_sec} per second per connection)"
            )
        if await self.quotas.over_daily_quota(app):
            return (
                "Client event rejected: the app is over its daily message quota "
                f"(max_messages_per_day = {app.max_messages_per_day})"
            )
        if await self.quotas.app_client_event(app) is not None:
            return (
                "Client event rejected due to rate limit "
                f"({app.max_app_client_events_per_sec} per second for the whole app)"
            )
        return None
