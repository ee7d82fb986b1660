"""Node liveness over the shared store: heartbeat, reaping dead nodes, resync after a lapse.

Every `interval` seconds a node refreshes its heartbeat (a key with a TTL) and removes the
entries of nodes whose heartbeat expired, announcing member_removed, watchlist offline and
subscription counts for them. A dead node's members are therefore gone within
`node_ttl + interval` seconds. When this node's own registration had lapsed (the store
restarted empty, or an outage outlived the TTL), it writes its connections' state again, and
it finishes the cleanups of connections that closed while the store was unreachable. The
shared connection counter has the same heartbeat: a dead node's connections stop counting
against its apps' quotas within `node_ttl`, and a lapsed node writes its counts again.
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
            if not await node.presence.heartbeat():
                # First heartbeat (nothing to write yet), or the store lost this node.
                if node.sessions:
                    log.warning("event=state_lapsed node_id=%s action=resync", node.node_id)
                await resync_state(node)
            if not await node.connections.heartbeat():
                await node.connections.restore(node.quotas.slot_counts())
            await node.retry_cleanups()
            await node.announce_departures(await node.presence.reap_dead_nodes())
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
            await node.presence.join(app_id, name, session.socket_id)
            if member is not None:
                await node.presence.add_member(
                    app_id, name, session.socket_id, member.user_id, member.user_info
                )
        if connection.user is not None:
            await node.presence.add_user_connection(app_id, connection.user.id, session.socket_id)
