"""Subscriptions: joining and leaving channels, presence members, cache replay and counts.

Data flow 2 and 3 of ARCHITECTURE.md, after the protocol core has checked the auth:
1. Subscribe: the session is indexed first (the backbone subscribed on the node's first
   local subscriber), so a member who joins after the roster is read is announced to it;
   then ONE store call records the subscription: on a presence channel `join_presence`
   adds the member, joins the occupancy and reads the roster in one atomic step (one round
   trip), else `join` counts the occupancy (user channels are not occupancy). A full
   presence channel (4100) records nothing in the store, and the session leaves the topic
   again. `subscription_succeeded` carries the roster on presence channels, and
   `member_added` goes to the others when the user is new (reference §2.2); a cache
   channel replays its value or sends `cache_miss`; the new count is announced. On a
   channel that keeps history, `subscription_succeeded` carries the channel's newest serial,
   and a client that asked to resume gets what it missed right after it
   (`server.recovery`, whose stand-in holds the live frames from indexing on). A store
   failure before `subscription_succeeded` refuses the subscription (503 from the node)
   and takes back what was recorded: the session leaves the topic, its member and
   occupancy are removed (as far as the store answers). After it, the subscription
   stands: failed notices to others are logged, an unreadable cache is a `cache_miss`.
2. Leave (unsubscribe or close): the reverse; `member_removed` once the user's last
   connection in the channel is gone.
3. `subscription_count` goes out on every change, except on presence channels (they have
   member events) and for apps that did not enable it; above 100 subscribers at most once
   per 5 s (`CountThrottle`), the owed counts sent by the node's timer.
4. Webhooks: every store call that changes presence carries the channel's hooks
   (`WebhookEvents.hooks`), so the store records occupied, vacated, member and count
   events in the same step as the change; a cache miss is recorded here. A member leaves
   before the channel does, so `member_removed` comes before `channel_vacated`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ressonance.apps.base import AppStore
from ressonance.backbone.base import Topic
from ressonance.protocol import messages as m
from ressonance.protocol.app import App
from ressonance.protocol.channels import Channel, ChannelKind
from ressonance.protocol.connection import Member
from ressonance.protocol.errors import ErrorCode, SubscriptionError
from ressonance.server.counts import CountThrottle
from ressonance.server.fanout import Fanout
from ressonance.server.recovery import Recovery
from ressonance.server.session import Session
from ressonance.server.webhook_events import WebhookEvents
from ressonance.state.base import CacheStore, Joined, PresenceFullError, PresenceStore

log = logging.getLogger(__name__)


class Subscriptions:
    """Subscribe and leave for this node's sessions, over the shared presence and cache."""

    def __init__(
        self,
        *,
        apps: AppStore,
        presence: PresenceStore,
        cache: CacheStore,
        fanout: Fanout,
        recovery: Recovery,
        clock: Callable[[], float],
        webhooks: WebhookEvents,
    ) -> None:
        self.apps = apps
        self.presence = presence
        self.cache = cache
        self.fanout = fanout
        self.recovery = recovery
        self.clock = clock
        self.webhooks = webhooks
        self._counts = CountThrottle()

    async def subscribe(
        self,
        session: Session,
        channel: Channel,
        member: Member | None,
        resume_after: int | None = None,
    ) -> None:
        resumption = self.recovery.begin(session, channel, resume_after)
        try:
            topic = Topic(session.connection.app.id, channel.name)
            await self.fanout.index(session, topic, resumption.stand_in)
            joined = await self._join(session, channel, member)
            serial = await resumption.start()
        except PresenceFullError:
            await self._take_back(session, channel, None, recorded=False)
            self._refuse_full(session, channel)
            return
        except Exception:  # refused (503 by the node): nothing of it may stay behind
            await self._take_back(session, channel, member)
            raise
        roster = None if member is None else m.presence_roster(joined.roster)
        session.connection.subscription_succeeded(channel, member, roster, serial)
        session.flush()
        log.debug(
            "event=subscribed socket_id=%s channel=%s user_id=%s",
            session.socket_id,
            channel.name,
            "-" if member is None else member.user_id,
        )
        await resumption.finish()
        # The subscription stands from here: a failure below is logged, never answered with
        # a subscription_error that would contradict the success the client already has.
        if channel.cached:
            await self._replay_cache(session, channel)
        try:
            if member is not None and joined.new_member:
                await self._announce_member(session, channel, member)
            await self.announce_count(session.connection.app, channel, joined.count)
        except Exception as exc:
            log.warning(
                "event=subscribe_notice_failed socket_id=%s channel=%s error=%r",
                session.socket_id,
                channel.name,
                exc,
            )

    async def _join(self, session: Session, channel: Channel, member: Member | None) -> Joined:
        """The one store call of a subscribe (none on a user channel: not occupancy)."""
        app = session.connection.app
        hooks = self.webhooks.hooks(app, channel)
        if member is not None:
            return await self.presence.join_presence(
                app.id,
                channel.name,
                session.socket_id,
                member.user_id,
                member.user_info,
                app.max_presence_members_per_channel,
                hooks,
            )
        count = 0
        if channel.kind is not ChannelKind.USER:
            count = await self.presence.join(app.id, channel.name, session.socket_id, hooks)
        return Joined(False, count, {})

    def _refuse_full(self, session: Session, channel: Channel) -> None:
        limit = session.connection.app.max_presence_members_per_channel
        refusal = SubscriptionError(
            channel.name,
            "LimitReached",
            f"Presence channel is full ({limit} members)",
            ErrorCode.OVER_CAPACITY,
        )
        session.connection.subscription_refused(refusal)
        session.flush()

    async def _take_back(
        self, session: Session, channel: Channel, member: Member | None, *, recorded: bool = True
    ) -> None:
        """Undo what a subscription that failed half-way recorded, as far as the store lets.

        The session leaves the channel's topic first (local: it must not get the events of
        a channel it was refused); then, unless the store `recorded` nothing, its member and
        occupancy (idempotent steps). No member event: nobody was told that this connection
        joined.
        """
        app = session.connection.app
        hooks = self.webhooks.hooks(app, channel)  # what was recorded is undone, webhooks too
        try:
            if channel.kind is not ChannelKind.USER:  # a user channel stays while signed in
                await self.fanout.unindex(session, Topic(app.id, channel.name))
            if recorded and member is not None:
                await self.presence.remove_member(app.id, channel.name, session.socket_id, hooks)
            if recorded and channel.kind is not ChannelKind.USER:
                await self.presence.leave(app.id, channel.name, session.socket_id, hooks)
        except Exception as exc:
            log.warning(
                "event=subscribe_undo_failed socket_id=%s channel=%s error=%r",
                session.socket_id,
                channel.name,
                exc,
            )

    async def _announce_member(self, session: Session, channel: Channel, member: Member) -> None:
        """member_added to the others: the user is new in the channel (§2.2)."""
        added: dict[str, object] = {"user_id": member.user_id}
        if member.user_info is not None:
            added["user_info"] = member.user_info
        message = m.encode(m.MEMBER_ADDED, added, channel.name)
        app = session.connection.app
        await self.fanout.broadcast(app, channel.name, message, session.socket_id)

    async def _replay_cache(self, session: Session, channel: Channel) -> None:
        """The channel's cached event, else `cache_miss` (also when the cache cannot answer:
        the client then fetches the state from the app, as it does on any miss)."""
        app = session.connection.app
        try:
            cached = await self.cache.get(app.id, channel.name)
        except Exception as exc:
            log.warning("event=cache_read_failed channel=%s error=%r", channel.name, exc)
            cached = None
        if cached is None:
            session.send(m.encode(m.CACHE_MISS, channel=channel.name))
            self.webhooks.cache_miss(app, channel)
        else:
            session.send(m.encode_channel_event(channel.name, cached.event, cached.data))

    async def leave(self, session: Session, channel: Channel, member: Member | None) -> None:
        app = session.connection.app
        hooks = self.webhooks.hooks(app, channel)
        if channel.kind is not ChannelKind.USER:  # kept while signed in
            await self.fanout.unindex(session, Topic(app.id, channel.name))
        if member is not None:  # before the channel: member_removed precedes vacated
            gone = await self.presence.remove_member(app.id, channel.name, session.socket_id, hooks)
            if gone is not None:  # told at once: a retried cleanup finds the member gone
                await self.member_removed(app, channel.name, gone)
        count = await self.presence.leave(app.id, channel.name, session.socket_id, hooks)
        await self.announce_count(app, channel, count)

    async def member_removed(self, app: App, channel: str, user_id: str) -> None:
        """Tell the channel that the user's last connection in it is gone (§2.2)."""
        message = m.encode(m.MEMBER_REMOVED, {"user_id": user_id}, channel)
        await self.fanout.broadcast(app, channel, message)

    async def announce_count(self, app: App, channel: Channel, count: int) -> None:
        # Not on presence channels, which have member events instead (reference §2.2).
        if not app.subscription_count or channel.is_presence:
            return
        if self._counts.send_now(Topic(app.id, channel.name), count, self.clock()):
            message = m.encode(m.SUBSCRIPTION_COUNT, {"subscription_count": count}, channel.name)
            await self.fanout.broadcast(app, channel.name, message)

    async def send_owed_counts(self) -> None:
        """The throttled counts whose time has come (the node's timer calls this)."""
        for topic in self._counts.due(self.clock()):
            app_id, name = topic
            app = await self.apps.find_by_id(app_id)
            count = await self.presence.subscription_count(app_id, name)
            if app is not None and count > 0:
                message = m.encode(m.SUBSCRIPTION_COUNT, {"subscription_count": count}, name)
                await self.fanout.broadcast(app, name, message)
