"""Node liveness over the shared store: heartbeat, reaping dead nodes, resync after a lapse.

Every `interval` seconds a node renews its one lease (`node.membership`, ending `node_ttl`
after each renewal) and reaps the nodes whose lease ended, announcing member_removed,
watchlist offline and subscription counts for them. A dead node's members are therefore
gone within `node_ttl + interval` seconds, and its connections stop counting against its
apps' quotas within `node_ttl`; the webhook events of those removals are recorded by the
reaping itself. When this node's own lease had lapsed (the store restarted
empty, or an outage outlived the TTL), it writes its connections' presence and counts
again, and it finishes the cleanups of connections that closed while the store was
unreachable.
"""

from __future__ import annotations

import asyncio
import logging

from ressonance.protocol.channels import ChannelKind
from ressonance.server.node import Node

log = logging.getLogger(__name__)


async def run_liveness(node: Node, interval: float) -> None:
    """The liveness loop of a node; cancelled when it stops."""
    while True:
        try:
            if not await node.membership.heartbeat():
                # First heartbeat (nothing to write yet), or the store lost this node.
                if node.sessions:
                    log.warning("event=state_lapsed node_id=%s action=resync", node.node_id)
                await resync_state(node)
                await node.connections.restore(node.quotas.slot_counts())
            await node.retry_cleanups()
            departures = await node.membership.reap_dead_nodes(node.webhook_events.hooks_for)
            await node.announce_departures(departures)
            if not node.state_healthy:
                log.warning("event=state_available node_id=%s", node.node_id)
            node.state_healthy = True
        except Exception as exc:
            if node.state_healthy:
                log.warning("event=state_unavailable node_id=%s error=%r", node.node_id, exc)
            node.state_healthy = False
        await asyncio.sleep(interval)


async def resync_state(node: Node) -> None:
    """Write every local connection's subscriptions, members and signed-in user again."""
    for session in list(node.sessions.values()):
        connection = session.connection
        app_id = connection.app.id
        for joined in list(connection.channels.values()):
            if joined.channel.kind is ChannelKind.USER:
                continue  # user channels are not occupancy (the user index covers them)
            name, member = joined.channel.name, joined.member
            # Written again with their webhooks: a channel the reapers vacated is occupied
            # again (or, within the leave delay, the vacated is cancelled).
            hooks = node.webhook_events.hooks(connection.app, joined.channel)
            if member is None:
                await node.presence.join(app_id, name, session.socket_id, hooks)
            else:
                await node.presence.join_presence(
                    app_id, name, session.socket_id, member.user_id, member.user_info, None, hooks
                )
        if connection.user is not None:
            await node.presence.add_user_connection(app_id, connection.user.id, session.socket_id)
