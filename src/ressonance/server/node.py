"""A node: wires the stores, the backbone and the hub; publishes, subscribes, disconnects.

Data flows (ARCHITECTURE.md "Data flows"):
- publish: the event is encoded once per channel (JSON + frame header) and handed to the
  backbone, which brings it to every node's hub.
- subscribe: auth is checked by the protocol core; the node applies limits, indexes the
  session (subscribing the backbone on the first local subscriber), updates the presence
  store and announces members.
- disconnect: the reverse, with member_removed once the user's last connection is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable, Iterable, Mapping

from ressonance.apps.base import AppStore
from ressonance.backbone.base import Backbone, BackboneMessage, topic_of
from ressonance.cache.base import CacheStore
from ressonance.connections.base import ConnectionCounter
from ressonance.connections.memory import MemoryConnectionCounter
from ressonance.presence.base import Departure, PresenceFullError, PresenceStore
from ressonance.protocol import messages as m
from ressonance.protocol.app import UNLIMITED, App
from ressonance.protocol.channels import USER_CHANNEL_PREFIX, Channel, ChannelKind, classify
from ressonance.protocol.connection import (
    ClientEventReceived,
    CloseRequested,
    Connection,
    Event,
    Member,
    SignedIn,
    SubscribeRequested,
    Unsubscribed,
    User,
)
from ressonance.protocol.errors import ErrorCode, SubscriptionError
from ressonance.protocol.frames import text_frame
from ressonance.protocol.rest import Trigger
from ressonance.ratelimit.base import RateLimiter
from ressonance.server.counts import CountThrottle
from ressonance.server.hub import Hub
from ressonance.server.metrics import Metrics
from ressonance.server.quotas import CONNECTION_CLIENT_EVENTS, CONNECTIONS, Quotas
from ressonance.server.session import Outlet, OutputLimits, Session
from ressonance.usage.base import UsageStore
from ressonance.usage.memory import MemoryUsageStore

log = logging.getLogger(__name__)

WATCHLIST_TOPIC = "#watchlist-"


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
    ) -> None:
        """`limiter` serves per-connection limits (a connection lives on one node: memory);
        `shared_limiter` the app-wide ones (shared by every node; `limiter` when None).
        `usage` and `connections` meter and enforce the app quotas (memory when None)."""
        self.apps = apps
        self.backbone = backbone
        self.presence = presence
        self.cache = cache
        self.limiter = limiter
        self.clock = clock
        self.output_limits = OutputLimits(max_buffer_bytes, max_buffer_messages)
        self.metrics = Metrics() if metrics is None else metrics
        self.usage: UsageStore = MemoryUsageStore() if usage is None else usage
        self.connections: ConnectionCounter = (
            MemoryConnectionCounter() if connections is None else connections
        )
        self.quotas = Quotas(
            usage=self.usage,
            limiter=limiter if shared_limiter is None else shared_limiter,
            connections=self.connections,
            clock=clock,
            metrics=self.metrics,
        )
        self.hub = Hub()
        self.node_id = node_id or secrets.token_hex(8)
        self._ids = random.Random(secrets.randbits(128))
        self.sessions: dict[str, Session] = {}
        self._counts = CountThrottle()
        self._started = False
        self.draining = False
        self.state_healthy = True
        self._empty = asyncio.Event()
        self._empty.set()
        self._unfinished: list[Session] = []
        self._dirty: list[Session] = []  # sessions with fanout frames pending this loop turn
        self._flush_scheduled = False

    @property
    def ready(self) -> bool:
        """Ready for traffic: started, not draining, and every shared backend reachable."""
        return self._started and not self.draining and self.backbone.healthy and self.state_healthy

    async def start(self) -> None:
        await self.backbone.start(self._on_backbone_message)
        self._started = True

    async def stop(self) -> None:
        self._started = False
        for session in list(self.sessions.values()):
            session.close(ErrorCode.GENERIC_RECONNECT, "Server is shutting down")
        await self.backbone.close()

    async def _send(self, message: BackboneMessage) -> None:
        """Hand `message` to the backbone for other nodes, then deliver it here directly.

        The backbone comes first: when it is down the publish fails (and nothing is delivered
        anywhere), so a retry cannot duplicate. Local subscribers skip the broker round trip;
        the copy the backbone brings back to this node is ignored by its origin.
        """
        await self.backbone.publish(message)
        self._deliver(message)

    def _on_backbone_message(self, message: BackboneMessage) -> None:
        if message.origin != self.node_id:
            self._deliver(message)

    def _deliver(self, message: BackboneMessage) -> None:
        if message.close_code is None:
            count = self.hub.deliver(message.topic, message.frame, message.except_socket_id)
            self.metrics.delivered(message.topic, message.frame, count)
            self.quotas.count(message.topic.partition(":")[0], count)  # each copy is a message
        else:
            sessions = self.hub.sessions(message.topic)
            self.metrics.delivered(message.topic, message.frame, len(sessions))
            for session in sessions:
                session.write(message.frame)
                session.close(message.close_code, "You got disconnected by the app.")
        if self._dirty and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the fanout frames of this loop turn: one write per session that got any.

        Called once per turn (`call_soon` from the turn's first delivery), so the events of
        every publish handled in the same turn share one syscall per subscriber.
        """
        self._flush_scheduled = False
        dirty = self._dirty
        for session in dirty:
            try:
                session.flush_pending()
            except Exception:  # one broken connection must not keep the others' frames
                log.exception("event=flush_failed socket_id=%s", session.socket_id)
        dirty.clear()

    # --- connections --------------------------------------------------------------------

    async def connect(self, app: App, outlet: Outlet) -> Session | tuple[ErrorCode, str]:
        """A session for a new WebSocket, with the app's connection quota checked across the
        cluster first (one atomic step in the shared counter); or the refusal (4004).

        The transport calls this; `open_session` is the local step it ends with. While the
        shared store is unreachable, an app with a connection quota is refused with 4100 (a
        quota that cannot be checked is not waived); an app without one is served.
        """
        if not app.enabled:
            return ErrorCode.APP_DISABLED, "App is disabled"
        try:
            admitted = await self.quotas.acquire(app)
        except Exception as exc:  # the shared store is down: enforce what must be enforced
            log.warning("event=connection_quota_unavailable app_id=%s error=%r", app.id, exc)
            if app.max_connections != UNLIMITED:  # 4100: pusher-js tries again after 1 s
                return ErrorCode.OVER_CAPACITY, "The connection quota cannot be checked; retry"
            return self.open_session(app, outlet)  # nothing to enforce: served, uncounted
        if not admitted:
            return ErrorCode.OVER_CONNECTION_QUOTA, _over_connections(app)
        opened = self.open_session(app, outlet)
        if isinstance(opened, Session):
            self.quotas.hold(app.id, opened.socket_id)
        else:
            await self.quotas.release(app.id)
        return opened

    def open_session(self, app: App, outlet: Outlet) -> Session | tuple[ErrorCode, str]:
        """A new session for `app`, or the close code and reason that refuse it.

        The connection quota is checked against this node's connections only; `connect`
        checks it cluster-wide.
        """
        if not app.enabled:
            return ErrorCode.APP_DISABLED, "App is disabled"
        counters = self.metrics.app(app.id)  # its `connections` is also the quota's count
        if app.max_connections != UNLIMITED and counters.connections >= app.max_connections:
            self.quotas.refused(app.id, CONNECTIONS)
            return ErrorCode.OVER_CONNECTION_QUOTA, _over_connections(app)
        connection = Connection(app, self._new_socket_id(), self.clock())
        session = Session(connection, outlet, self.output_limits, counters, self._dirty)
        self.metrics.connection_opened(counters)
        self.sessions[session.socket_id] = session
        self._empty.clear()
        session.flush()
        return session

    def _new_socket_id(self) -> str:
        while True:
            # Unique, not secret (clients hand it to auth endpoints): a seeded PRNG is enough
            # and spares two getrandom() calls per connection.
            socket_id = f"{self._ids.randrange(10**9)}.{self._ids.randrange(10**9)}"
            if socket_id not in self.sessions:
                return socket_id

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
                await self._subscribe(session, event.channel, event.member)
            case Unsubscribed():
                await self._unsubscribe(session, event.channel, event.member)
            case ClientEventReceived():
                await self._client_event(session, event)
            case SignedIn():
                await self._signed_in(session, event.user)
            case CloseRequested():
                session.close(event.code, event.reason)

    async def close_session(self, session: Session, code: int | None = None) -> None:
        """Forget a session whose WebSocket has closed (with the client's `code`, if any)."""
        if self.sessions.pop(session.socket_id, None) is None:
            return
        session.flush_pending()  # what it was sent before it closed, and its slow-client close
        self.metrics.connection_closed(session.counters, session.close_code or code)
        session.closed = True
        try:
            await self._forget(session)
        except Exception as exc:  # a store outage: the local index is still cleaned below
            log.warning("event=cleanup_failed socket_id=%s error=%r", session.socket_id, exc)
            self._unfinished.append(session)  # retried once the store answers again
        finally:
            for topic in list(session.topics):
                session.topics.discard(topic)
                if self.hub.remove(topic, session):
                    with contextlib.suppress(Exception):
                        await self.backbone.unsubscribe(topic)
            if not self.sessions:  # after the cleanup above, so a drain waits for it
                self._empty.set()

    async def _forget(self, session: Session) -> None:
        connection = session.connection
        await self.quotas.release(connection.app.id, session.socket_id)
        for name, member in list(connection.channels.items()):
            await self._leave(session, classify(name), member)
        connection.channels.clear()
        if connection.user is not None:
            await self._signed_out(session, connection.user)
        await self.limiter.forget(session.socket_id)

    async def retry_cleanups(self) -> None:
        """Remove what closed sessions left in the shared store while it was unreachable.

        Every step of a cleanup is idempotent (leaving twice, removing a member twice), so a
        cleanup that failed half-way is simply run again; member_removed still fires once.
        """
        while self._unfinished:
            await self._forget(self._unfinished[0])
            self._unfinished.pop(0)

    async def wait_empty(self) -> None:
        """Return once this node has no connection left."""
        await self._empty.wait()

    def poll(self) -> None:
        """Run every session's timers (one sweep for all, not a timer per socket)."""
        now = self.clock()
        for session in list(self.sessions.values()):
            code = session.connection.poll(now)
            session.flush()
            if code is not None:
                session.close(code, code.name.replace("_", " ").capitalize())

    # --- topics -------------------------------------------------------------------------

    async def _index(self, session: Session, topic: str) -> None:
        session.topics.add(topic)
        if self.hub.add(topic, session):
            await self.backbone.subscribe(topic)

    async def _unindex(self, session: Session, topic: str) -> None:
        session.topics.discard(topic)
        if self.hub.remove(topic, session):
            await self.backbone.unsubscribe(topic)

    async def _broadcast(
        self, app: App, channel: str, message: bytes, except_socket_id: str | None = None
    ) -> None:
        topic = topic_of(app.id, channel)
        frame = text_frame(message)
        await self._send(BackboneMessage(topic, frame, except_socket_id, self.node_id))

    # --- subscriptions ------------------------------------------------------------------

    async def _subscribe(self, session: Session, channel: Channel, member: Member | None) -> None:
        app = session.connection.app
        new_user = False
        if member is not None:
            try:  # first, so a full channel refuses before anything else is recorded
                new_user = await self.presence.add_member(
                    app.id,
                    channel.name,
                    session.socket_id,
                    member.user_id,
                    member.user_info,
                    app.max_presence_members_per_channel,
                )
            except PresenceFullError:
                limit = app.max_presence_members_per_channel
                refusal = SubscriptionError(
                    channel.name,
                    "LimitReached",
                    f"Presence channel is full ({limit} members)",
                    ErrorCode.OVER_CAPACITY,
                )
                session.connection.subscription_refused(refusal)
                session.flush()
                return
        await self._index(session, topic_of(app.id, channel.name))
        count = 0
        if channel.kind is not ChannelKind.USER:  # not an occupied channel to the HTTP API
            count = await self.presence.join(app.id, channel.name, session.socket_id)
        if member is None:
            session.connection.subscription_succeeded(channel, None, None)
            session.flush()
        else:
            await self._welcome_member(session, channel, member, new_user)
        if channel.cached:
            await self._replay_cache(session, channel)
        await self._announce_count(app, channel, count)

    async def _welcome_member(
        self, session: Session, channel: Channel, member: Member, new_user: bool
    ) -> None:
        """Roster to the joiner; member_added to the others when the user is new (§2.2)."""
        app = session.connection.app
        roster = m.presence_roster(await self.presence.members(app.id, channel.name))
        session.connection.subscription_succeeded(channel, member, roster)
        session.flush()
        if new_user:
            added: dict[str, object] = {"user_id": member.user_id}
            if member.user_info is not None:
                added["user_info"] = member.user_info
            message = m.encode(m.MEMBER_ADDED, added, channel.name)
            await self._broadcast(app, channel.name, message, session.socket_id)

    async def _replay_cache(self, session: Session, channel: Channel) -> None:
        app = session.connection.app
        cached = await self.cache.get(app.id, channel.name)
        if cached is None:
            session.send(m.encode(m.CACHE_MISS, channel=channel.name))
        else:
            session.send(m.encode_channel_event(channel.name, cached.event, cached.data))

    async def _announce_count(self, app: App, channel: Channel, count: int) -> None:
        # Not on presence channels, which have member events instead (reference §2.2).
        if not app.subscription_count or channel.is_presence:
            return
        if self._counts.send_now(topic_of(app.id, channel.name), count, self.clock()):
            message = m.encode(m.SUBSCRIPTION_COUNT, {"subscription_count": count}, channel.name)
            await self._broadcast(app, channel.name, message)

    async def _send_owed_counts(self) -> None:
        for topic in self._counts.due(self.clock()):
            app_id, _, name = topic.partition(":")
            app = await self.apps.find_by_id(app_id)
            count = await self.presence.subscription_count(app_id, name)
            if app is not None and count > 0:
                message = m.encode(m.SUBSCRIPTION_COUNT, {"subscription_count": count}, name)
                await self._broadcast(app, name, message)

    async def _unsubscribe(self, session: Session, channel: Channel, member: Member | None) -> None:
        await self._leave(session, channel, member)

    async def _leave(self, session: Session, channel: Channel, member: Member | None) -> None:
        app = session.connection.app
        if channel.kind is not ChannelKind.USER:  # kept while signed in
            await self._unindex(session, topic_of(app.id, channel.name))
        count = await self.presence.leave(app.id, channel.name, session.socket_id)
        if member is not None:
            gone = await self.presence.remove_member(app.id, channel.name, session.socket_id)
            if gone is not None:
                message = m.encode(m.MEMBER_REMOVED, {"user_id": gone}, channel.name)
                await self._broadcast(app, channel.name, message)
        await self._announce_count(app, channel, count)

    # --- client events and users --------------------------------------------------------

    async def _client_event(self, session: Session, event: ClientEventReceived) -> None:
        app = session.connection.app
        refusal = await self._client_event_refusal(session, app)
        if refusal is not None:
            session.error(refusal, ErrorCode.CLIENT_EVENT_REJECTED, event.channel.name)
            return
        self.quotas.count(app.id, 1)  # the publish; its deliveries are counted as they go
        topic = topic_of(app.id, event.channel.name)
        frame = text_frame(event.payload)
        await self._send(BackboneMessage(topic, frame, session.socket_id, self.node_id))

    async def _client_event_refusal(self, session: Session, app: App) -> str | None:
        """Why a client event may not go out (4301, reference §2.4), or None.

        Cheapest first: the connection's own rate (local), the app's daily messages (cached),
        then the app-wide rate (shared; spent only when everything else allowed the event).
        """
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

    async def _signed_in(self, session: Session, user: User) -> None:
        app = session.connection.app
        await self._index(session, topic_of(app.id, USER_CHANNEL_PREFIX + user.id))
        first = await self.presence.add_user_connection(app.id, user.id, session.socket_id)
        if not app.watchlist:
            return
        for watched in user.watchlist:
            await self._index(session, topic_of(app.id, WATCHLIST_TOPIC + watched))
        online = await self.presence.online(app.id, user.watchlist)
        offline = [u for u in user.watchlist if u not in online]
        events = [{"name": "online", "user_ids": sorted(online)}] if online else []
        if offline:
            events.append({"name": "offline", "user_ids": offline})
        if events:
            session.send(m.encode(m.WATCHLIST_EVENTS, {"events": events}))
        if first:
            await self._watchlist_change(app, user.id, "online")

    async def _signed_out(self, session: Session, user: User) -> None:
        app = session.connection.app
        last = await self.presence.remove_user_connection(app.id, user.id, session.socket_id)
        if last and app.watchlist:
            await self._watchlist_change(app, user.id, "offline")

    async def _watchlist_change(self, app: App, user_id: str, name: str) -> None:
        events = {"events": [{"name": name, "user_ids": [user_id]}]}
        await self._broadcast(app, WATCHLIST_TOPIC + user_id, m.encode(m.WATCHLIST_EVENTS, events))

    def apps_changed(self, before: Mapping[str, App], after: Mapping[str, App]) -> None:
        """Apply a change of apps (from the app catalog) to this node's live connections.

        A deleted app, or one whose key changed, closes its connections with 4001 (the key
        they connected with no longer exists); a disabled app with 4003. Both mean "do not
        reconnect" to pusher-js (reference §1, §7). Any other change applies to the live
        connections at once (new secret, limits, features), except `slow_client_policy`,
        which a connection keeps from when it opened.
        """
        changed = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
        if not changed:
            return
        for session in list(self.sessions.values()):
            old = session.connection.app
            if old.id not in changed:
                continue
            new = after.get(old.id)
            if new is None or new.key != old.key:
                refusal = (ErrorCode.APP_NOT_FOUND, "App no longer exists")
            elif not new.enabled:
                refusal = (ErrorCode.APP_DISABLED, "App is disabled")
            else:
                session.connection.app = new
                continue
            session.error(refusal[1], refusal[0])
            session.close(*refusal)

    # --- cluster -----------------------------------------------------------------------

    async def announce_departures(self, departures: Iterable[Departure]) -> None:
        """Tell subscribers what the connections of a dead node left behind."""
        for departure in departures:
            app = await self.apps.find_by_id(departure.app_id)
            if app is None:
                continue
            if not departure.channel and departure.user_id is not None:
                if app.watchlist:
                    await self._watchlist_change(app, departure.user_id, "offline")
            elif departure.user_id is not None:
                body = {"user_id": departure.user_id}
                message = m.encode(m.MEMBER_REMOVED, body, departure.channel)
                await self._broadcast(app, departure.channel, message)
            else:
                await self._announce_count(app, classify(departure.channel), departure.count)

    # --- HTTP API -----------------------------------------------------------------------

    async def publish(self, app: App, trigger: Trigger) -> None:
        """Publish one event to each of its channels: encoded once per channel."""
        self.quotas.count(app.id, len(trigger.channels))  # one per channel; deliveries apart
        for channel in trigger.channels:
            message = m.encode_channel_event(channel, trigger.name, trigger.data)
            if classify(channel).cached:
                await self.cache.put(app.id, channel, trigger.name, trigger.data, app.cache_ttl)
            await self._broadcast(app, channel, message, trigger.socket_id)

    async def terminate_user(self, app: App, user_id: str) -> None:
        """Close every connection signed in as `user_id`, on every node (4009)."""
        topic = topic_of(app.id, USER_CHANNEL_PREFIX + user_id)
        frame = text_frame(m.error("You got disconnected by the app.", ErrorCode.UNAUTHORIZED))
        await self._send(BackboneMessage(topic, frame, None, self.node_id, ErrorCode.UNAUTHORIZED))

    async def run_timers(self, interval: float) -> None:
        """The one timer loop of a node; cancelled when it stops."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + interval
            await asyncio.sleep(interval)
            self.metrics.loop_lag = max(0.0, loop.time() - due)  # a busy loop wakes us late
            try:
                self.poll()
                await self._send_owed_counts()
            except Exception:  # one failed sweep must not stop every later one
                log.exception("event=timer_failed")
            try:
                await self.quotas.flush()
            except Exception as exc:  # a store outage: the counts wait for the next tick
                log.warning("event=usage_flush_failed error=%r", exc)


def _over_connections(app: App) -> str:
    return f"Over the app's connection quota (max_connections = {app.max_connections})"
