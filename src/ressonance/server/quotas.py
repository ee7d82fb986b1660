"""A node's share of the app quotas (issue "Apps, plans and protection" §3), cluster-wide.

What each quota costs where:
- Concurrent connections: one atomic `acquire` in the shared ConnectionCounter per new
  WebSocket (refused: close 4004), one `release` when it closes.
- Messages a day, counted as Pusher counts them: one per event published on a channel (HTTP
  API, client events) plus one per copy delivered to a subscriber (events, presence and
  subscription_count events alike). The hot path only adds to a local dict, once per publish
  and once per local fanout, never per recipient; the node's timer adds those counts to the
  shared UsageStore every tick and reads the cluster's total back in the same call. Whether an
  app is over its quota is answered from that total plus what this node counted since, so it
  costs no I/O per request; the cluster may overshoot by what it sends within one tick.
- App-wide rates (backend events, read requests, client events per second): the shared
  RateLimiter, one round trip per request, only for apps that set the limit.
- Peak concurrent connections per app per day: from the totals `acquire` returns, written by
  the timer.

Days are UTC dates of the injected clock. Counts made in the last tick before midnight are
credited to the day that ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from ressonance.protocol.app import UNLIMITED, App
from ressonance.server.metrics import Metrics
from ressonance.state.base import ConnectionCounter, Decision, RateLimiter, UsageStore

log = logging.getLogger(__name__)

# The `quota` label of ressonance_quota_refusals_total: a fixed set.
CONNECTIONS: Final = "max_connections"
MESSAGES_PER_DAY: Final = "max_messages_per_day"
BACKEND_EVENTS: Final = "max_backend_events_per_sec"
READ_REQUESTS: Final = "max_read_requests_per_sec"
APP_CLIENT_EVENTS: Final = "max_app_client_events_per_sec"
CONNECTION_CLIENT_EVENTS: Final = "max_client_events_per_sec"


def utc_day(now: float) -> str:
    """The UTC date of a Unix time, "YYYY-MM-DD"."""
    return time.strftime("%Y-%m-%d", time.gmtime(now))


class Quotas:
    """Quota checks and usage metering of one node."""

    def __init__(
        self,
        *,
        usage: UsageStore,
        limiter: RateLimiter,
        connections: ConnectionCounter,
        clock: Callable[[], float],
        metrics: Metrics,
    ) -> None:
        self.usage = usage
        self.limiter = limiter
        self.connections = connections
        self._clock = clock
        self._metrics = metrics
        self._day = utc_day(clock())
        self._pending: dict[str, int] = {}  # messages counted here, not yet in the store
        self._totals: dict[str, int] = {}  # the day's cluster total, as last read
        self._peaks: dict[str, int] = {}  # highest cluster-wide connection count seen
        self._slots: dict[str, set[str]] = {}  # app id -> socket ids holding a slot

    # --- connections ----------------------------------------------------------------------

    async def acquire(self, app: App) -> bool:
        """Take one of the app's connection slots; False (and counted) when it has none."""
        total = await self.connections.acquire(app.id, app.max_connections)
        if total is None:
            self.refused(app.id, CONNECTIONS)
            return False
        if total > self._peaks.get(app.id, 0):
            self._peaks[app.id] = total
        return True

    def hold(self, app_id: str, socket_id: str) -> None:
        """The slot just acquired belongs to this connection."""
        self._slots.setdefault(app_id, set()).add(socket_id)

    async def release(self, app_id: str, socket_id: str | None = None) -> None:
        """Give back the slot of `socket_id` (idempotent), or an unheld one (None)."""
        held = self._slots.get(app_id)
        if socket_id is not None and (held is None or socket_id not in held):
            return
        await self.connections.release(app_id)
        if held is not None and socket_id is not None:
            held.discard(socket_id)
            if not held:
                del self._slots[app_id]

    def slot_counts(self) -> dict[str, int]:
        """This node's connections per app, as the shared counter should hold them."""
        return {app_id: len(held) for app_id, held in self._slots.items()}

    # --- messages a day -------------------------------------------------------------------

    def count(self, app_id: str, messages: int) -> None:
        """Meter `messages` of the app (no I/O: the timer stores them)."""
        if messages:
            self._pending[app_id] = self._pending.get(app_id, 0) + messages

    async def over_daily_quota(self, app: App) -> bool:
        """Whether the app has used its messages for today (UTC), cluster-wide."""
        limit = app.max_messages_per_day
        if limit == UNLIMITED:
            return False
        total = self._totals.get(app.id)
        if total is None:  # first sight today: read it once, the timer refreshes it
            total = self._totals[app.id] = await self.usage.messages(app.id, self._day)
        if total + self._pending.get(app.id, 0) < limit:
            return False
        self.refused(app.id, MESSAGES_PER_DAY)
        return True

    # --- rates ----------------------------------------------------------------------------

    async def backend_events(self, app: App, cost: int) -> Decision | None:
        """The refusal when `cost` more events would pass the app's events per second."""
        return await self._rate(app, BACKEND_EVENTS, app.max_backend_events_per_sec, cost)

    async def read_request(self, app: App) -> Decision | None:
        """The refusal when one more read would pass the app's reads per second."""
        return await self._rate(app, READ_REQUESTS, app.max_read_requests_per_sec, 1)

    async def app_client_event(self, app: App) -> Decision | None:
        """The refusal when one more client event would pass the app's limit per second."""
        return await self._rate(app, APP_CLIENT_EVENTS, app.max_app_client_events_per_sec, 1)

    async def _rate(self, app: App, quota: str, limit: int, cost: int) -> Decision | None:
        if limit == UNLIMITED:
            return None
        decision = await self.limiter.consume(f"{quota}:{app.id}", limit, cost)
        if decision.allowed:
            return None
        self.refused(app.id, quota)
        return decision

    def refused(self, app_id: str, quota: str) -> None:
        self._metrics.quota_refused(app_id, quota)

    # --- the timer's work -----------------------------------------------------------------

    async def flush(self) -> None:
        """Store what was counted since the last tick and read the cluster's totals back."""
        day = self._day
        pending, self._pending = self._pending, {}
        peaks, self._peaks = self._peaks, {}
        try:
            for app_id in sorted(set(pending) | set(self._totals)):
                total = await self.usage.add_messages(app_id, day, pending.get(app_id, 0))
                pending.pop(app_id, None)
                if app_id in self._totals:  # an app with a daily quota: keep its total fresh
                    self._totals[app_id] = total
            for app_id in sorted(peaks):
                await self.usage.record_connections(app_id, day, peaks.pop(app_id))
        finally:  # what could not be stored is counted again next tick
            for app_id, messages in pending.items():
                self.count(app_id, messages)
            for app_id, peak in peaks.items():
                self._peaks[app_id] = max(peak, self._peaks.get(app_id, 0))
        await self._roll_day()

    async def _roll_day(self) -> None:
        today = utc_day(self._clock())
        if today == self._day:
            return
        self._day = today
        self._totals.clear()
        for app_id in sorted(self._slots):  # the new day's peak starts at what is open now
            self._peaks[app_id] = max(
                self._peaks.get(app_id, 0), await self.connections.count(app_id)
            )
