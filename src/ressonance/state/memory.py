"""The shared state of one process, in dictionaries: the default without a shared store.

Each class keeps the guarantees its seam states in `state.base`; expiry and windows follow an
injected clock where there is one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ressonance.protocol.app import UNLIMITED
from ressonance.protocol.webhooks import NO_HOOKS, ChannelHooks
from ressonance.state.base import (
    CachedEvent,
    DayUsage,
    Decision,
    Departure,
    HooksFor,
    Joined,
    PresenceFullError,
    SharedState,
    no_hooks,
)
from ressonance.state.memory_history import MemoryHistoryStore, MemoryIdempotencyStore
from ressonance.state.memory_hooks import MemoryHooks
from ressonance.state.sqlite_webhooks import SqliteWebhookQueue


class MemoryPresenceStore:
    """Single-node presence; the default without a shared store. With `hooks`, the webhook
    events of each transition are recorded in the same step (state/memory_hooks.py)."""

    def __init__(self, hooks: MemoryHooks | None = None) -> None:
        self._hooks = hooks
        self._subscribers: dict[tuple[str, str], set[str]] = defaultdict(set)
        # (app, channel) -> user_id -> (user_info, socket ids)
        self._members: dict[tuple[str, str], dict[str, tuple[object, set[str]]]] = defaultdict(dict)
        self._member_of: dict[tuple[str, str, str], str] = {}
        self._users: dict[tuple[str, str], set[str]] = defaultdict(set)

    async def join(
        self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks = NO_HOOKS
    ) -> int:
        return self._join(app_id, channel, socket_id, hooks)

    def _join(self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks) -> int:
        sockets = self._subscribers[app_id, channel]
        added = socket_id not in sockets
        sockets.add(socket_id)
        if self._hooks is not None and added and hooks.has_store_events:
            if len(sockets) == 1:
                self._hooks.occupied(channel, hooks)
            self._hooks.count(app_id, channel, len(sockets), hooks)
        return len(sockets)

    async def leave(
        self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks = NO_HOOKS
    ) -> int:
        sockets = self._subscribers.get((app_id, channel))
        if sockets is None or socket_id not in sockets:
            return len(sockets or ())
        sockets.discard(socket_id)
        if not sockets:
            del self._subscribers[app_id, channel]
        if self._hooks is not None and hooks.has_store_events:
            if not sockets:
                self._hooks.vacated(channel, hooks)
            self._hooks.count(app_id, channel, len(sockets), hooks)
        return len(sockets)

    async def subscription_count(self, app_id: str, channel: str) -> int:
        return len(self._subscribers.get((app_id, channel), ()))

    async def channels(self, app_id: str, prefix: str = "") -> dict[str, int]:
        return {
            channel: len(sockets)
            for (app, channel), sockets in self._subscribers.items()
            if app == app_id and channel.startswith(prefix)
        }

    async def join_presence(
        self,
        app_id: str,
        channel: str,
        socket_id: str,
        user_id: str,
        user_info: object,
        max_users: int | None = None,
        hooks: ChannelHooks = NO_HOOKS,
    ) -> Joined:
        roster = self._members[app_id, channel]
        if max_users is not None and user_id not in roster and len(roster) >= max_users:
            if not roster:
                del self._members[app_id, channel]
            raise PresenceFullError(channel)
        new_member = False
        if self._member_of.setdefault((app_id, channel, socket_id), user_id) == user_id:
            if user_id in roster:
                roster[user_id][1].add(socket_id)
            else:
                roster[user_id] = (user_info, {socket_id})
                new_member = True
        count = self._join(app_id, channel, socket_id, hooks)  # occupied comes first
        if self._hooks is not None and new_member and hooks.has_store_events:
            self._hooks.member_added(channel, user_id, hooks)
        return Joined(new_member, count, await self.members(app_id, channel))

    async def remove_member(
        self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks = NO_HOOKS
    ) -> str | None:
        gone = self._remove_member(app_id, channel, socket_id)
        if self._hooks is not None and gone is not None and hooks.has_store_events:
            self._hooks.member_removed(channel, gone, hooks)
        return gone

    def _remove_member(self, app_id: str, channel: str, socket_id: str) -> str | None:
        user_id = self._member_of.pop((app_id, channel, socket_id), None)
        roster = self._members.get((app_id, channel))
        if user_id is None or roster is None:
            return None
        sockets = roster[user_id][1]
        sockets.discard(socket_id)
        if sockets:
            return None
        del roster[user_id]
        if not roster:
            del self._members[app_id, channel]
        return user_id

    async def members(self, app_id: str, channel: str) -> dict[str, object]:
        roster = self._members.get((app_id, channel), {})
        return {user_id: info for user_id, (info, _) in roster.items()}

    async def user_count(self, app_id: str, channel: str) -> int:
        return len(self._members.get((app_id, channel), ()))

    async def add_user_connection(self, app_id: str, user_id: str, socket_id: str) -> bool:
        sockets = self._users[app_id, user_id]
        if socket_id in sockets:  # signing in again on one connection is not a new one
            return False
        sockets.add(socket_id)
        return len(sockets) == 1

    async def remove_user_connection(self, app_id: str, user_id: str, socket_id: str) -> bool:
        sockets = self._users.get((app_id, user_id))
        if sockets is None or socket_id not in sockets:
            return False
        sockets.discard(socket_id)
        if sockets:
            return False
        del self._users[app_id, user_id]
        return True

    async def online(self, app_id: str, user_ids: tuple[str, ...]) -> set[str]:
        return {user_id for user_id in user_ids if (app_id, user_id) in self._users}


class MemoryCacheStore:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._values: dict[tuple[str, str], tuple[str, str, float]] = {}

    async def put(self, app_id: str, channel: str, event: str, data: str, ttl: int) -> None:
        self._values[app_id, channel] = (event, data, self._clock() + ttl)

    async def get(self, app_id: str, channel: str) -> CachedEvent | None:
        value = self._values.get((app_id, channel))
        if value is None:
            return None
        event, data, expires_at = value
        left = expires_at - self._clock()
        if left <= 0:
            del self._values[app_id, channel]
            return None
        return CachedEvent(event, data, math.ceil(left))


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}

    async def consume(self, key: str, limit: int, cost: int = 1) -> Decision:
        now = self._clock()
        window = math.floor(now)
        start, used = self._windows.get(key, (window, 0))
        if start != window:
            used = 0
        retry_after = window + 1 - now
        if used + cost > limit:
            self._windows[key] = (window, used)
            return Decision(False, limit, max(0, limit - used), retry_after)
        self._windows[key] = (window, used + cost)
        return Decision(True, limit, limit - used - cost, retry_after)

    async def forget(self, key: str) -> None:
        self._windows.pop(key, None)


class MemoryUsageStore:
    def __init__(self) -> None:
        self._messages: dict[tuple[str, str], int] = {}
        self._peaks: dict[tuple[str, str], int] = {}

    async def add_messages(self, app_id: str, day: str, count: int) -> int:
        total = self._messages.get((app_id, day), 0) + count
        self._messages[(app_id, day)] = total
        return total

    async def messages(self, app_id: str, day: str) -> int:
        return self._messages.get((app_id, day), 0)

    async def record_connections(self, app_id: str, day: str, connections: int) -> None:
        key = (app_id, day)
        self._peaks[key] = max(self._peaks.get(key, 0), connections)

    async def usage(self, app_id: str, days: Sequence[str]) -> list[DayUsage]:
        return [
            DayUsage(day, self._messages.get((app_id, day), 0), self._peaks.get((app_id, day), 0))
            for day in days
        ]


class MemoryConnectionCounter:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    async def acquire(self, app_id: str, limit: int) -> int | None:
        count = self._counts.get(app_id, 0)
        if limit != UNLIMITED and count >= limit:
            return None
        self._counts[app_id] = count + 1
        return count + 1

    async def release(self, app_id: str) -> None:
        count = self._counts.get(app_id, 0) - 1
        if count > 0:
            self._counts[app_id] = count
        else:
            self._counts.pop(app_id, None)

    async def count(self, app_id: str) -> int:
        return self._counts.get(app_id, 0)

    async def restore(self, counts: Mapping[str, int]) -> None:
        self._counts = {app_id: n for app_id, n in counts.items() if n > 0}


class MemoryMembership:
    """One process is the whole cluster: its lease cannot lapse, and no node dies unseen."""

    async def heartbeat(self) -> bool:
        return True

    async def reap_dead_nodes(self, hooks: HooksFor = no_hooks) -> list[Departure]:
        return []


def memory_state(
    clock: Callable[[], float],
    *,
    node_id: str = "",
    webhooks_file: Path | None = None,
    leave_delay: float = 3.0,
    lease_ttl: float = 10.0,
) -> SharedState:
    """The stores of one process that shares nothing (`--state memory://`); its webhook
    queue is durable in `webhooks_file` (SQLite), or in memory without one."""
    queue = SqliteWebhookQueue(webhooks_file, node_id=node_id, clock=clock, lease_ttl=lease_ttl)

    async def close() -> None:
        await queue.close()

    return SharedState(
        presence=MemoryPresenceStore(MemoryHooks(queue, clock, leave_delay)),
        cache=MemoryCacheStore(clock),
        limiter=MemoryRateLimiter(clock),
        usage=MemoryUsageStore(),
        connections=MemoryConnectionCounter(),
        membership=MemoryMembership(),
        history=MemoryHistoryStore(clock),
        idempotency=MemoryIdempotencyStore(clock),
        webhooks=queue,
        close=close,
    )
