"""The webhook events of a single node's presence transitions (`--state memory://`).

`MemoryPresenceStore` calls these in the same step as each transition, with no await in
between, so the decisions below see presence exactly as the transition left it. They follow
the rules the Redis scripts follow (state/redis_hooks.py), lane by lane:
- occupied cancels the lane's delayed vacated of the channel (a reload: neither is sent),
  else is recorded; vacated is recorded delayed by `leave_delay` seconds;
- member_added cancels the lane's delayed member_removed of that user, else is recorded;
  member_removed is recorded delayed;
- subscription_count is recorded at once up to `COUNT_UNTHROTTLED` subscribers, above
  that at most once per `COUNT_THROTTLE_SECONDS` per channel: a change within the window
  replaces the delayed count with the latest one.
One happening has one event id, whichever lanes take it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from ressonance.protocol.webhooks import (
    CHANNEL_OCCUPIED,
    CHANNEL_VACATED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    SUBSCRIPTION_COUNT,
    ChannelHooks,
    event_ids,
    event_json,
)
from ressonance.state.sqlite_webhooks import SqliteWebhookQueue

COUNT_UNTHROTTLED: Final = 100
COUNT_THROTTLE_SECONDS: Final = 5.0


def delay_key(lane: str, kind: str, channel: str, user_id: str = "") -> str:
    """The key of a lane's delayed event (kind "v" vacated, "r" member_removed, "c" count)."""
    return "\x1f".join((lane, kind, channel, user_id))


def _unique(*lanes: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(lane for group in lanes for lane in group))


class MemoryHooks:
    """Records the webhook events of `MemoryPresenceStore`'s transitions in the queue."""

    def __init__(
        self,
        queue: SqliteWebhookQueue,
        clock: Callable[[], float],
        leave_delay: float = 3.0,
    ) -> None:
        self.queue = queue
        self.clock = clock
        self.leave_delay = leave_delay
        self._new_id = event_ids()
        self._throttled: dict[tuple[str, str], float] = {}  # (app, channel) -> window end

    def occupied(self, channel: str, hooks: ChannelHooks) -> None:
        event = event_json(CHANNEL_OCCUPIED, channel, self._new_id())
        for lane in _unique(hooks.occupied, hooks.vacated):
            reloaded = self.queue.cancel(delay_key(lane, "v", channel))
            if not reloaded and lane in hooks.occupied:
                self.queue.record(lane, channel, event)

    def vacated(self, channel: str, hooks: ChannelHooks) -> None:
        event = event_json(CHANNEL_VACATED, channel, self._new_id())
        due = self._due(self.leave_delay)
        for lane in hooks.vacated:
            self.queue.record(lane, channel, event, due, delay_key(lane, "v", channel))

    def member_added(self, channel: str, user_id: str, hooks: ChannelHooks) -> None:
        event = event_json(MEMBER_ADDED, channel, self._new_id(), user_id=user_id)
        for lane in _unique(hooks.member_added, hooks.member_removed):
            came_back = self.queue.cancel(delay_key(lane, "r", channel, user_id))
            if not came_back and lane in hooks.member_added:
                self.queue.record(lane, channel, event)

    def member_removed(self, channel: str, user_id: str, hooks: ChannelHooks) -> None:
        event = event_json(MEMBER_REMOVED, channel, self._new_id(), user_id=user_id)
        due = self._due(self.leave_delay)
        for lane in hooks.member_removed:
            key = delay_key(lane, "r", channel, user_id)
            self.queue.record(lane, channel, event, due, key)

    def count(self, app_id: str, channel: str, count: int, hooks: ChannelHooks) -> None:
        if not hooks.subscription_count:
            return
        event = event_json(SUBSCRIPTION_COUNT, channel, self._new_id(), subscription_count=count)
        now = self.clock()
        ends = self._throttled.get((app_id, channel), 0.0)
        due = 0
        if count > COUNT_UNTHROTTLED and ends > now:
            due = self._due(ends - now)
        elif count > COUNT_UNTHROTTLED:
            self._throttled[app_id, channel] = now + COUNT_THROTTLE_SECONDS
        for lane in hooks.subscription_count:
            key = delay_key(lane, "c", channel)
            self.queue.cancel(key)  # an older count still waiting is replaced
            self.queue.record(lane, channel, event, due, key if due else "")
        if len(self._throttled) > 10_000:  # forget the windows that ended
            self._throttled = {k: t for k, t in self._throttled.items() if t > now}

    def _due(self, seconds: float) -> int:
        return int((self.clock() + seconds) * 1000)
