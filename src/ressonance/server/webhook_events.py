"""Where a node's transitions meet its apps' webhooks: which lanes take which event.

Rules:
1. Presence events (occupied, vacated, member_added, member_removed, subscription_count)
   are recorded by the presence store in the transition's own step; this hands it the
   channel's `ChannelHooks` (`hooks`), made from the app's endpoints (their event types and
   filters). An app without endpoints costs a test of an empty tuple.
2. Client events and cache misses have no store transition: they are buffered in the
   queue (`add`: no I/O, no waiting; the sender flushes the buffer every few ms). A cache
   miss is recorded once per channel per `CACHE_MISS_WINDOW` seconds across the cluster,
   however many subscribers miss at once (reference §6).
3. Nothing here waits for a webhook to be sent.
"""

from __future__ import annotations

from typing import Final

import orjson

from ressonance.apps.base import AppStore
from ressonance.protocol.app import App
from ressonance.protocol.channels import Channel, classify
from ressonance.protocol.connection import ClientEventReceived
from ressonance.protocol.webhooks import (
    CACHE_MISS,
    NO_HOOKS,
    ChannelHooks,
    channel_hooks,
    client_event_json,
    event_ids,
    event_json,
)
from ressonance.state.base import WebhookQueue

CACHE_MISS_WINDOW: Final = 5.0


class WebhookEvents:
    """The webhook side of a node's subscriptions, client events and cache misses."""

    def __init__(self, *, queue: WebhookQueue, apps: AppStore) -> None:
        self.queue = queue
        self.apps = apps
        self._new_id = event_ids()

    def hooks(self, app: App, channel: Channel) -> ChannelHooks:
        """The lanes that take each event of `channel` of `app`."""
        if not app.webhooks:
            return NO_HOOKS
        return channel_hooks(app.id, app.webhooks, channel)

    async def hooks_for(self, app_id: str, channel: str) -> ChannelHooks:
        """The same, by app id and channel name (for a dead node's channels)."""
        app = await self.apps.find_by_id(app_id)
        if app is None:
            return NO_HOOKS
        return self.hooks(app, classify(channel))

    def client_event(self, app: App, socket_id: str, event: ClientEventReceived) -> None:
        """A client event went out: `client_event` for the lanes that take it."""
        lanes = self.hooks(app, event.channel).client_event
        if not lanes:
            return
        relayed = orjson.loads(event.payload)  # the frame relayed: event, channel, data, user_id
        body = client_event_json(
            event.channel.name,
            event.event,
            relayed.get("data"),
            socket_id,
            relayed.get("user_id"),
            self._new_id(),
        )
        self.queue.add(lanes, event.channel.name, body)

    def cache_miss(self, app: App, channel: Channel) -> None:
        """A subscriber found no cached event: `cache_miss`, once per channel per window."""
        lanes = self.hooks(app, channel).cache_miss
        if lanes:
            self.queue.add(
                lanes,
                channel.name,
                event_json(CACHE_MISS, channel.name, self._new_id()),
                dedupe=f"{app.id}\x1f{channel.name}",
                dedupe_seconds=CACHE_MISS_WINDOW,
            )
