"""The sessions of one node: opening them, closing them, and what applies to all of them.

Rules:
1. Opening: a disabled app is refused with 4003; the app's connection quota is checked
   cluster-wide (`connect`: one atomic step in the shared counter, 4004 when full) and on
   this node (`open_session`). While the shared counter is unreachable, an app with a
   connection quota is refused with 4100 (pusher-js retries after 1 s: a quota that cannot
   be checked is not waived); an app without one is served, uncounted. A refusal is a
   `protocol.handshake.Refusal`, the one shape every refusal of a new WebSocket has.
2. Socket ids are unique on this node, not secret (clients hand them to auth endpoints).
3. Closing: the local index is always cleaned; what the session left in the shared stores
   (its slot, channels, members, signed-in user) is removed, and a cleanup that fails in a
   store outage is retried (`retry_cleanups`, from the liveness loop). Every cleanup step is
   idempotent, so a half-done cleanup is simply run again. With debug logs on, a close is
   one DEBUG line (code, reason, how long the connection lived).
4. One sweep (`poll`) runs every session's timers, not a timer per socket.
5. A change of apps applies to live connections at once (`apps_changed`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable, Mapping

from ressonance.protocol.app import UNLIMITED, App
from ressonance.protocol.connection import Connection
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.handshake import Refusal
from ressonance.server.fanout import Fanout
from ressonance.server.metrics import Metrics
from ressonance.server.quotas import CONNECTIONS, Quotas
from ressonance.server.refusal_log import quoted
from ressonance.server.session import Outlet, OutputLimits, Session
from ressonance.server.subscriptions import Subscriptions
from ressonance.server.users import Users
from ressonance.state.base import RateLimiter

log = logging.getLogger(__name__)


class SessionRegistry:
    """socket id -> Session for this node, and the lifecycle of each."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        output_limits: OutputLimits,
        metrics: Metrics,
        quotas: Quotas,
        limiter: RateLimiter,
        fanout: Fanout,
        subscriptions: Subscriptions,
        users: Users,
    ) -> None:
        self.clock = clock
        self.output_limits = output_limits
        self.metrics = metrics
        self.quotas = quotas
        self.limiter = limiter
        self.fanout = fanout
        self.subscriptions = subscriptions
        self.users = users
        self.sessions: dict[str, Session] = {}
        self._ids = random.Random(secrets.randbits(128))
        self._empty = asyncio.Event()
        self._empty.set()
        self._unfinished: list[Session] = []

    # --- opening ------------------------------------------------------------------------

    async def connect(self, app: App, outlet: Outlet) -> Session | Refusal:
        """A session for a new WebSocket, its connection quota checked cluster-wide first."""
        if not app.enabled:
            return Refusal(ErrorCode.APP_DISABLED, "App is disabled")
        try:
            admitted = await self.quotas.acquire(app)
        except Exception as exc:  # the shared store is down: enforce what must be enforced
            log.warning("event=connection_quota_unavailable app_id=%s error=%r", app.id, exc)
            if app.max_connections != UNLIMITED:  # 4100: pusher-js tries again after 1 s
                return Refusal(
                    ErrorCode.OVER_CAPACITY, "The connection quota cannot be checked; retry"
                )
            return self.open_session(app, outlet)  # nothing to enforce: served, uncounted
        if not admitted:
            return Refusal(ErrorCode.OVER_CONNECTION_QUOTA, _over_connections(app))
        opened = self.open_session(app, outlet)
        if isinstance(opened, Session):
            self.quotas.hold(app.id, opened.socket_id)
        else:
            await self.quotas.release(app.id)
        return opened

    def open_session(self, app: App, outlet: Outlet) -> Session | Refusal:
        """A new session for `app`, its connection quota checked on this node only."""
        if not app.enabled:
            return Refusal(ErrorCode.APP_DISABLED, "App is disabled")
        counters = self.metrics.app(app.id)  # its `connections` is also the quota's count
        if app.max_connections != UNLIMITED and counters.connections >= app.max_connections:
            self.quotas.refused(app.id, CONNECTIONS)
            return Refusal(ErrorCode.OVER_CONNECTION_QUOTA, _over_connections(app))
        connection = Connection(app, self._new_socket_id(), self.clock())
        session = Session(connection, outlet, self.output_limits, counters, self.fanout.dirty)
        self.metrics.connection_opened(counters)
        self.sessions[session.socket_id] = session
        self._empty.clear()
        session.flush()
        return session

    def _new_socket_id(self) -> str:
        while True:
            # Unique, not secret: a seeded PRNG is enough and spares two getrandom() calls
            # per connection.
            socket_id = f"{self._ids.randrange(10**9)}.{self._ids.randrange(10**9)}"
            if socket_id not in self.sessions:
                return socket_id

    # --- closing ------------------------------------------------------------------------

    async def close_session(self, session: Session, code: int | None = None) -> None:
        """Forget a session whose WebSocket has closed (with the client's `code`, if any)."""
        if self.sessions.pop(session.socket_id, None) is None:
            return
        session.flush_pending()  # what it was sent before it closed, and its slow-client close
        self.metrics.connection_closed(session.counters, session.close_code or code)
        if log.isEnabledFor(logging.DEBUG):
            self._log_closed(session, code)
        session.closed = True
        try:
            await self._forget(session)
        except Exception as exc:  # a store outage: the local index is still cleaned below
            log.warning("event=cleanup_failed socket_id=%s error=%r", session.socket_id, exc)
            self._unfinished.append(session)  # retried once the store answers again
        finally:
            await self.fanout.unindex_all(session)
            if not self.sessions:  # after the cleanup above, so a drain waits for it
                self._empty.set()

    def _log_closed(self, session: Session, client_code: int | None) -> None:
        if session.close_code is not None:
            code, reason = session.close_code, quoted(session.close_reason)
        elif client_code is not None:
            code, reason = client_code, "'closed by the client'"
        else:
            code, reason = None, "'connection lost'"
        log.debug(
            "event=connection_closed socket_id=%s app_id=%s code=%s reason=%s duration_s=%.1f",
            session.socket_id,
            session.connection.app.id,
            code,
            reason,
            self.clock() - session.connection.connected_at,
        )

    async def _forget(self, session: Session) -> None:
        connection = session.connection
        await self.quotas.release(connection.app.id, session.socket_id)
        for joined in list(connection.channels.values()):
            await self.subscriptions.leave(session, joined.channel, joined.member)
        connection.channels.clear()
        if connection.user is not None:
            await self.users.signed_out(session, connection.user)
        await self.limiter.forget(session.socket_id)

    async def retry_cleanups(self) -> None:
        """Remove what closed sessions left in the shared store while it was unreachable."""
        while self._unfinished:
            await self._forget(self._unfinished[0])
            self._unfinished.pop(0)

    async def wait_empty(self) -> None:
        """Return once this node has no connection left."""
        await self._empty.wait()

    # --- all sessions -------------------------------------------------------------------

    def poll(self) -> None:
        """Run every session's timers (one sweep for all, not a timer per socket)."""
        now = self.clock()
        for session in list(self.sessions.values()):
            code = session.connection.poll(now)
            session.flush()
            if code is not None:
                session.close(code, code.name.replace("_", " ").capitalize())

    def close_all(self, code: int, reason: str) -> None:
        for session in list(self.sessions.values()):
            session.close(code, reason)

    def apps_changed(self, before: Mapping[str, App], after: Mapping[str, App]) -> None:
        """Apply a change of apps (from the app catalog) to the live connections.

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
                refusal = Refusal(ErrorCode.APP_NOT_FOUND, "App no longer exists")
            elif not new.enabled:
                refusal = Refusal(ErrorCode.APP_DISABLED, "App is disabled")
            else:
                session.connection.app = new
                continue
            session.error(refusal.reason, refusal.code)
            session.close(refusal.code, refusal.reason)


def _over_connections(app: App) -> str:
    return f"Over the app's connection quota (max_connections = {app.max_connections})"
