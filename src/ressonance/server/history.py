"""Channel history, the node's part: serials on publish, positions, reads, and their metrics.

Rules (docs/topics/delivery.md):
1. Only a channel that the app's `history_channels` names keeps history; every other
   publish pays one falsy check (`app.history_channels` is empty) and nothing else.
2. A serial is given by the shared `HistoryStore` before the event is encoded and handed to
   the backbone, so the frame every node delivers carries it, and a subscriber that reads
   the history after subscribing sees either the event in the history or its frame live.
3. What the store keeps follows the app's `history_size` and `history_ttl` at the time of
   each call (`retention`).
"""

from __future__ import annotations

from ressonance.protocol.app import App
from ressonance.protocol.errors import ApiError
from ressonance.protocol.history import keeps_history
from ressonance.protocol.rest import HistoryQuery
from ressonance.server.metrics import Metrics
from ressonance.state.base import HistoryPage, HistoryStore, Retention


def retention(app: App) -> Retention:
    return Retention(app.history_size, app.history_ttl)


class ChannelHistory:
    """The channels' history over the shared store, counted per app."""

    def __init__(self, *, store: HistoryStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self.used = False  # some app of this node keeps history (then the metrics are read)

    async def record(self, app: App, channel: str, name: str, data: str) -> int | None:
        """Keep a published event if its channel keeps history: its serial, else None."""
        if not app.history_channels or not keeps_history(app, channel):
            return None
        self.used = True
        serial = await self.store.append(app.id, channel, name, data, retention(app))
        self.metrics.app(app.id).history_writes += 1
        return serial

    async def position(self, app: App, channel: str) -> int:
        """The channel's newest serial (its log started if it had none)."""
        self.used = True
        return await self.store.position(app.id, channel, retention(app))

    async def read(
        self,
        app: App,
        channel: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int,
        newest: bool = False,
    ) -> HistoryPage:
        self.used = True
        self.metrics.app(app.id).history_reads += 1
        return await self.store.read(
            app.id, channel, retention(app), after=after, before=before, limit=limit, newest=newest
        )

    async def answer(self, app: App, channel: str, query: HistoryQuery) -> dict[str, object]:
        """GET /apps/{id}/channels/{name}/history: a page of events, in serial order, with the
        log's bounds and whether more lie beyond the page (`after` pages forward from the
        last event's serial, `before` backward from the first's)."""
        if not keeps_history(app, channel):
            raise ApiError(
                404, f"Channel {channel[:50]} keeps no history (see the app's history_channels)"
            )
        page = await self.read(
            app,
            channel,
            after=query.after,
            before=query.before,
            limit=query.limit,
            newest=query.newest,
        )
        events = page.events
        if not events or page.first is None or page.last is None:
            more = False
        elif query.newest:
            more = events[0].serial > page.first
        else:
            end = page.last if query.before is None else min(page.last, query.before - 1)
            more = events[-1].serial < end
        return {
            "channel": channel,
            "events": [
                {"serial": e.serial, "name": e.name, "data": e.data, "time_ms": e.time_ms}
                for e in events
            ],
            "first_serial": page.first,
            "last_serial": page.last,
            "has_more": more,
        }

    async def refresh_metrics(self) -> None:
        """Read the bytes each app keeps in history into the metrics (the timer calls this,
        once this node has used history: on Redis it scans the history keys)."""
        if not self.used:
            return
        totals = await self.store.retained_bytes()
        for app_id, counters in self.metrics.apps.items():
            counters.history_bytes = totals.pop(app_id, 0)
        for app_id, retained in totals.items():  # apps with no connection or publish here yet
            self.metrics.app(app_id).history_bytes = retained
