"""Users: sign-in, the watchlist, and terminating a user's connections.

Rules (reference §2.5 sign-in and watchlist, §5.5 terminate_connections):
1. A signed-in connection is indexed under its user channel (`#server-to-user-<id>`), so
   `send_to_user` events and terminate reach it on any node, and the user's connections
   are counted cluster-wide in the presence store.
2. With the app's `watchlist` on, the connection also follows each watched user's topic,
   gets one `watchlist_events` message with who is online and offline now, and the user's
   first connection anywhere tells their watchers "online"; their last one "offline".
3. Terminating a user closes each of their connections, on every node, with 4009 after an
   error frame, through one backbone message.
"""

from __future__ import annotations

from typing import Final

from ressonance.backbone.base import BackboneMessage, Topic
from ressonance.protocol import messages as m
from ressonance.protocol.app import App
from ressonance.protocol.channels import USER_CHANNEL_PREFIX
from ressonance.protocol.connection import User
from ressonance.protocol.errors import ErrorCode
from ressonance.protocol.frames import text_frame
from ressonance.server.fanout import Fanout
from ressonance.server.session import Session
from ressonance.state.base import PresenceStore

WATCHLIST_TOPIC: Final = "#watchlist-"


class Users:
    """Signed-in users of this node's sessions, over the shared presence store."""

    def __init__(self, *, presence: PresenceStore, fanout: Fanout) -> None:
        self.presence = presence
        self.fanout = fanout

    async def signed_in(self, session: Session, user: User) -> None:
        app = session.connection.app
        await self.fanout.index(session, Topic(app.id, USER_CHANNEL_PREFIX + user.id))
        first = await self.presence.add_user_connection(app.id, user.id, session.socket_id)
        if not app.watchlist:
            return
        for watched in user.watchlist:
            await self.fanout.index(session, Topic(app.id, WATCHLIST_TOPIC + watched))
        online = await self.presence.online(app.id, user.watchlist)
        offline = [u for u in user.watchlist if u not in online]
        events = [{"name": "online", "user_ids": sorted(online)}] if online else []
        if offline:
            events.append({"name": "offline", "user_ids": offline})
        if events:
            session.send(m.encode(m.WATCHLIST_EVENTS, {"events": events}))
        if first:
            await self.watchlist_change(app, user.id, "online")

    async def signed_out(self, session: Session, user: User) -> None:
        """The connection of a signed-in user closed (its topics are dropped with it)."""
        app = session.connection.app
        last = await self.presence.remove_user_connection(app.id, user.id, session.socket_id)
        if last and app.watchlist:
            await self.watchlist_change(app, user.id, "offline")

    async def watchlist_change(self, app: App, user_id: str, name: str) -> None:
        """Tell the watchers of `user_id` that the user went `name` ("online"/"offline")."""
        events = {"events": [{"name": name, "user_ids": [user_id]}]}
        message = m.encode(m.WATCHLIST_EVENTS, events)
        await self.fanout.broadcast(app, WATCHLIST_TOPIC + user_id, message)

    async def terminate(self, app: App, user_id: str) -> None:
        """Close every connection signed in as `user_id`, on every node (4009)."""
        topic = Topic(app.id, USER_CHANNEL_PREFIX + user_id)
        frame = text_frame(m.error("You got disconnected by the app.", ErrorCode.UNAUTHORIZED))
        origin = self.fanout.node_id
        await self.fanout.send(BackboneMessage(topic, frame, None, origin, ErrorCode.UNAUTHORIZED))
