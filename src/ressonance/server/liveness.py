"""Node liveness over the shared store: heartbeat, reaping dead nodes, resync after a lapse.

Every `interval` seconds a node renews its one lease (`Membership`, ending `node_ttl` after
each renewal) and reaps the nodes whose lease ended, announcing member_removed, watchlist
offline and subscription counts for them. A dead node's members are therefore gone within
`node_ttl + interval` seconds, and its connections stop counting against its apps' quotas
within `node_ttl`; the webhook events of those removals are recorded by the reaping itself.
When this node's own lease had lapsed (the store restarted empty, or an
outage outlived the TTL), it writes its connections' presence and counts again, and it
finishes the cleanups of connections that closed while the store was unreachable. Whether
the store answered is this loop's to report (`Readiness.state_healthy`).

`Liveness` is given the parts of the node it uses; it never imports the node (import-linter
checks it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from ressonance.protocol.channels import ChannelKind
from ressonance.server.quotas import Quotas
from ressonance.server.readiness import Readiness
from ressonance.server.registry import SessionRegistry
from ressonance.server.webhook_events import WebhookEvents
from ressonance.state.base import ConnectionCounter, Departure, Membership, PresenceStore

log = logging.getLogger(__name__)

AnnounceDepartures = Callable[[Iterable[Departure]], Awaitable[None]]


class Liveness:
    """The heartbeat, reaping and resync of one node."""

    def __init__(
        self,
        *,
        node_id: str,
        membership: Membership,
        registry: SessionRegistry,
        presence: PresenceStore,
        connections: ConnectionCounter,
        quotas: Quotas,
        readiness: Readiness,
        announce_departures: AnnounceDepartures,
        webhook_events: WebhookEvents,
    ) -> None:
        """`announce_departures` tells subscribers what dead nodes left behind
        (`Node.announce_departures`); `quotas` holds this node's connection counts."""
        self.node_id = node_id
        self.membership = membership
        self.registry = registry
        self.presence = presence
        self.connections = connections
        self.quotas = quotas
        self.readiness = readiness
        self.announce_departures = announce_departures
        self.webhook_events = webhook_events

    async def run(self, interval: float) -> None:
        """The liveness loop of a node; cancelled when it stops."""
        readiness = self.readiness
        while True:
            try:
                if not await self.membership.heartbeat():
                    # First heartbeat (nothing to write yet), or the store lost this node.
                    if self.registry.sessions:
                        log.warning("event=state_lapsed node_id=%s action=resync", self.node_id)
                    await self.resync()
                    await self.connections.restore(self.quotas.slot_counts())
                await self.registry.retry_cleanups()
                hooks_for = self.webhook_events.hooks_for
                await self.announce_departures(await self.membership.reap_dead_nodes(hooks_for))
                if not readiness.state_healthy:
                    log.warning("event=state_available node_id=%s", self.node_id)
                readiness.state_healthy = True
            except Exception as exc:
                if readiness.state_healthy:
                    log.warning("event=state_unavailable node_id=%s error=%r", self.node_id, exc)
                readiness.state_healthy = False
            await asyncio.sleep(interval)

    async def resync(self) -> None:
        """Write every local connection's subscriptions, members and signed-in user again."""
        presence = self.presence
        for session in list(self.registry.sessions.values()):
            connection = session.connection
            app_id = connection.app.id
            for joined in list(connection.channels.values()):
                if joined.channel.kind is ChannelKind.USER:
                    continue  # user channels are not occupancy (the user index covers them)
                name, member = joined.channel.name, joined.member
                # Written again with their webhooks: a channel the reapers vacated is occupied
                # again (or, within the leave delay, the vacated is cancelled).
                hooks = self.webhook_events.hooks(connection.app, joined.channel)
                if member is None:
                    await presence.join(app_id, name, session.socket_id, hooks)
                else:
                    await presence.join_presence(
                        app_id,
                        name,
                        session.socket_id,
                        member.user_id,
                        member.user_info,
                        None,
                        hooks,
                    )
            if connection.user is not None:
                await presence.add_user_connection(app_id, connection.user.id, session.socket_id)
