"""A node: wires the stores, the backbone and the hub, and routes what happens to the parts.

Data flows (ARCHITECTURE.md "Data flows"):
- publish: the event is encoded once per channel (JSON + frame header) and handed to the
  backbone, which brings it to every node's hub (`server.fanout`).
- subscribe: auth is checked by the protocol core; the node applies limits, indexes the
  session (subscribing the backbone on the first local subscriber), updates the presence
  store and announces members (`server.subscriptions`).
- disconnect: the reverse, with member_removed once the user's last connection is gone
  (`server.registry`).

The parts, each built here with its collaborators and none aware of `Node`:
`SessionRegistry` (opening and closing sessions), `Fanout` (topics and delivery),
`Subscriptions` (with `Recovery`, resume after reconnect), `ClientEvents`, `Users`,
`Quotas`, `Readiness` and `ChannelHistory` (serials on publish). `Node` keeps the
node's lifecycle, the dispatch of each connection's protocol events, the HTTP publish,
departures of dead nodes and the timer loop, and nothing that only forwards to a part.

What a connection asks for and is refused (by the protocol core, the subscriptions or the
client events) is logged by the node's `RefusalLog`, one bounded INFO line each; with
debug logs on, its subscribes, unsubscribes and sign-ins are one DEBUG line each.

Rules: the parts are public attributes for whoever wires a node (`server.service` builds
the outer ring from them: the HTTP API, the gate and its admission, the sockets and
liveness, each given only the parts it uses). Nothing else reaches through a node for a
part, and the outer ring never imports this module (import-linter checks it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable

from ressonance.apps.base import AppStore
from ressonance.backbone.base import Backbone
from ressonance.protocol import messages as m
from ressonance.protocol.app import App
from ressonance.protocol.channels import classify
from ressonance.protocol.connection import (
    ClientEventReceived,
    CloseRequested,
    Event,
    Refused,
    SignedIn,
    SubscribeRequested,
    Unsubscribed,
)
from ressonance.protocol.errors import ErrorCode, SubscriptionError
from ressonance.protocol.rest import Trigger
from ressonance.server.client_events import ClientEvents
from ressonance.server.fanout import Fanout
from ressonance.server.history import ChannelHistory
from ressonance.server.hub import Hub
from ressonance.server.metrics import Metrics
from ressonance.server.quotas import Quotas
from ressonance.server.readiness import Readiness
from ressonance.server.recovery import Recovery
from ressonance.server.refusal_log import RefusalLog, quoted
from ressonance.server.registry import SessionRegistry
from ressonance.server.session import OutputLimits, Session
from ressonance.server.subscriptions import Subscriptions
from ressonance.server.users import Users
from ressonance.server.webhook_events import WebhookEvents
from ressonance.state.base import (
    CacheStore,
    ConnectionCounter,
    Departure,
    HistoryStore,
    IdempotencyStore,
    Membership,
    PresenceStore,
    RateLimiter,
    UsageStore,
    WebhookQueue,
)
from ressonance.state.memory import MemoryConnectionCounter, MemoryMembership, MemoryUsageStore
from ressonance.state.memory_history import MemoryHistoryStore, MemoryIdempotencyStore
from ressonance.state.sqlite_webhooks import SqliteWebhookQueue

log = logging.getLogger(__name__)

HISTORY_METRICS_SECONDS = 15.0  # how often the bytes kept in history are read for /metrics


class Node:
    """One server process's view of the cluster."""

    def __init__(
        self,
        *,
        apps: AppStore,
        backbone: Backbone,
        presence: PresenceStore,
        cache: CacheStore,
        limiter: RateLimiter,
        clock: Callable[[], float],
        max_buffer_bytes: int = 1 << 20,
        max_buffer_messages: int = 4096,
        node_id: str | None = None,
        metrics: Metrics | None = None,
        usage: UsageStore | None = None,
        shared_limiter: RateLimiter | None = None,
        connections: ConnectionCounter | None = None,
        membership: Membership | None = None,
        history: HistoryStore | None = None,
        idempotency: IdempotencyStore | None = None,
        close_state: Callable[[], Awaitable[None]] | None = None,
        webhooks: WebhookQueue | None = None,
    ) -> None:
        """`limiter` serves per-connection limits (a connection lives on one node: memory);
        `shared_limiter` the app-wide ones (shared by every node; `limiter` when None).
        `usage` and `connections` meter and enforce the app quotas (memory when None).
        `membership` is the node's lease among the nodes (`server.liveness` renews it);
        `history` keeps the channels' history and `idempotency` the HTTP API's idempotency
        keys (memory when None); `close_state` releases the shared state's client when the
        node stops. `webhooks` is the webhook queue (a queue in memory when None; the sender
        opens it)."""
        self.apps = apps
        self.backbone = backbone
        self.presence = presence
        self.cache = cache
        self.clock = clock
        self.output_limits = OutputLimits(max_buffer_bytes, max_buffer_messages)
        self.metrics = Metrics() if metrics is None else metrics
        self.refusals = RefusalLog(clock)
        self.usage: UsageStore = MemoryUsageStore() if usage is None else usage
        self.connections: ConnectionCounter = (
            MemoryConnectionCounter() if connections is None else connections
        )
        self.membership: Membership = MemoryMembership() if membership is None else membership
        self.idempotency: IdempotencyStore = (
            MemoryIdempotencyStore(clock) if idempotency is None else idempotency
        )
        self._close_state = close_state
        self.quotas = Quotas(
            usage=self.usage,
            limiter=limiter if shared_limiter is None else shared_limiter,
            connections=self.connections,
            clock=clock,
            metrics=self.metrics,
        )
        self.hub = Hub()
        self.node_id = node_id or secrets.token_hex(8)
        self.webhooks: WebhookQueue = (
            SqliteWebhookQueue(None, node_id=self.node_id, clock=clock)
            if webhooks is None
            else webhooks
        )
        self.webhook_events = WebhookEvents(queue=self.webhooks, apps=apps)
        self.fanout = Fanout(
            backbone=backbone,
            hub=self.hub,
            node_id=self.node_id,
            metrics=self.metrics,
            quotas=self.quotas,
        )
        self.history = ChannelHistory(
            store=MemoryHistoryStore(clock) if history is None else history, metrics=self.metrics
        )
        self.subscriptions = Subscriptions(
            apps=apps,
            presence=presence,
            cache=cache,
            fanout=self.fanout,
            recovery=Recovery(history=self.history, fanout=self.fanout),
            clock=clock,
            webhooks=self.webhook_events,
        )
        self.users = Users(presence=presence, fanout=self.fanout)
        self.client_events = ClientEvents(
            limiter=limiter, quotas=self.quotas, fanout=self.fanout, webhooks=self.webhook_events
        )
        self.registry = SessionRegistry(
            clock=clock,
            output_limits=self.output_limits,
            metrics=self.metrics,
            quotas=self.quotas,
            limiter=limiter,
            fanout=self.fanout,
            subscriptions=self.subscriptions,
            users=self.users,
        )
        self.readiness = Readiness(backbone)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.backbone.start(self.fanout.on_backbone_message)
        self.readiness.started = True

    async def stop(self) -> None:
        self.readiness.started = False
        self.registry.close_all(ErrorCode.GENERIC_RECONNECT, "Server is shutting down")
        await self.backbone.close()
        if self._close_state is not None:
            await self._close_state()

    # --- connections --------------------------------------------------------------------

    async def receive(self, session: Session, text: str) -> None:
        """Handle one text frame of `session`."""
        session.counters.received(text)
        events = session.connection.receive(text, self.clock())
        session.flush()
        for event in events:
            try:
                await self._handle(session, event)
            except Exception as exc:  # a backend outage: answer it, keep the connection
                log.warning("event=handle_failed socket_id=%s error=%r", session.socket_id, exc)
                self._answer_failure(session, event)
        refused = session.connection.refusals()
        if refused:
            self._log_refusals(session, refused)

    def _log_refusals(self, session: Session, refused: Iterable[Refused]) -> None:
        app_id = session.connection.app.id
        for refusal in refused:
            channel = None if refusal.channel is None else quoted(refusal.channel)
            self.refusals.refused(
                refusal.request,
                refusal.code,
                app_id,
                refusal.reason,
                socket_id=session.socket_id,
                channel=channel,
            )

    def _answer_failure(self, session: Session, event: Event) -> None:
        if isinstance(event, SubscribeRequested):
            refusal = SubscriptionError(
                event.channel.name, "ServerError", "Temporarily unavailable; try again", 503
            )
            session.connection.subscription_refused(refusal)
            session.flush()
        else:
            session.error("Temporarily unavailable; try again", ErrorCode.GENERIC_RECONNECT)

    async def _handle(self, session: Session, event: Event) -> None:
        match event:
            case SubscribeRequested():
                await self.subscriptions.subscribe(
                    session, event.channel, event.member, event.resume_after
                )
            case Unsubscribed():
                await self.subscriptions.leave(session, event.channel, event.member)
                log.debug(
                    "event=unsubscribed socket_id=%s channel=%s",
                    session.socket_id,
                    event.channel.name,
                )
            case ClientEventReceived():
                refusal = await self.client_events.relay(session, event)
                if refusal is not None:
                    code = ErrorCode.CLIENT_EVENT_REJECTED
                    refused = Refused("client_event", event.channel.name, code, refusal)
                    self._log_refusals(session, [refused])
            case SignedIn():
                await self.users.signed_in(session, event.user)
                log.debug(
                    "event=signed_in socket_id=%s user_id=%s", session.socket_id, event.user.id
                )
            case CloseRequested():
                session.close(event.code, event.reason)

    # --- HTTP API -----------------------------------------------------------------------

    async def publish(self, app: App, trigger: Trigger) -> dict[str, int]:
        """Publish one event to each of its channels: encoded once per channel. The serials
        the channels that keep history gave it, by channel (empty for the others)."""
        self.quotas.count(app.id, len(trigger.channels))  # one per channel; deliveries apart
        broadcast = self.fanout.broadcast
        serials: dict[str, int] = {}
        for channel in trigger.channels:
            serial = None
            if app.history_channels:  # the one check every other publish pays
                serial = await self.history.record(app, channel, trigger.name, trigger.data)
                if serial is not None:
                    serials[channel] = serial
            message = m.encode_channel_event(channel, trigger.name, trigger.data, None, serial)
            if classify(channel).cached:
                await self.cache.put(app.id, channel, trigger.name, trigger.data, app.cache_ttl)
            await broadcast(app, channel, message, trigger.socket_id)
        return serials

    # --- cluster and timers -------------------------------------------------------------

    async def announce_departures(self, departures: Iterable[Departure]) -> None:
        """Tell subscribers what the connections of a dead node left behind."""
        for departure in departures:
            app = await self.apps.find_by_id(departure.app_id)
            if app is None:
                continue
            if not departure.channel and departure.user_id is not None:
                if app.watchlist:
                    await self.users.watchlist_change(app, departure.user_id, "offline")
            elif departure.user_id is not None:
                await self.subscriptions.member_removed(app, departure.channel, departure.user_id)
            else:
                channel = classify(departure.channel)
                await self.subscriptions.announce_count(app, channel, departure.count)

    async def run_timers(self, interval: float) -> None:
        """The one timer loop of a node; cancelled when it stops."""
        loop = asyncio.get_running_loop()
        history_due = loop.time()
        while True:
            due = loop.time() + interval
            await asyncio.sleep(interval)
            self.metrics.loop_lag = max(0.0, loop.time() - due)  # a busy loop wakes us late
            try:
                self.registry.poll()  # every session's timers: one sweep, not one per socket
                await self.subscriptions.send_owed_counts()
            except Exception:  # one failed sweep must not stop every later one
                log.exception("event=timer_failed")
            try:
                await self.quotas.flush()
                if loop.time() >= history_due:
                    history_due = loop.time() + HISTORY_METRICS_SECONDS
                    await self.history.refresh_metrics()
            except Exception as exc:  # a store outage: the counts wait for the next tick
                log.warning("event=usage_flush_failed error=%r", exc)
