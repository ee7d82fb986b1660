"""Presence state of one process, in dictionaries."""

from __future__ import annotations

from collections import defaultdict

from ressonance.presence.base import Departure, PresenceFullError


class MemoryPresenceStore:
    """Single-node presence; the default without a shared store."""

    def __init__(self) -> None:
        self._subscribers: dict[tuple[str, str], set[str]] = defaultdict(set)
        # (app, channel) -> user_id -> (user_info, socket ids)
        self._members: dict[tuple[str, str], dict[str, tuple[object, set[str]]]] = defaultdict(dict)
        self._member_of: dict[tuple[str, str, str], str] = {}
        self._users: dict[tuple[str, str], set[str]] = defaultdict(set)

    async def join(self, app_id: str, channel: str, socket_id: str) -> int:
        sockets = self._subscribers[app_id, channel]
        sockets.add(socket_id)
        return len(sockets)

    async def leave(self, app_id: str, channel: str, socket_id: str) -> int:
        sockets = self._subscribers.get((app_id, channel))
        if sockets is None:
            return 0
        sockets.discard(socket_id)
        if not sockets:
            del self._subscribers[app_id, channel]
        return len(sockets)

    async def subscription_count(self, app_id: str, channel: str) -> int:
        return len(self._subscribers.get((app_id, channel), ()))

    async def channels(self, app_id: str, prefix: str = "") -> dict[str, int]:
        return {
            channel: len(sockets)
            for (app, channel), sockets in self._subscribers.items()
            if app == app_id and channel.startswith(prefix)
        }

    async def add_member(
        self,
        app_id: str,
        channel: str,
        socket_id: str,
        user_id: str,
        user_info: object,
        max_users: int | None = None,
    ) -> bool:
        roster = self._members[app_id, channel]
        if max_users is not None and user_id not in roster and len(roster) >= max_users:
            if not roster:
                del self._members[app_id, channel]
            raise PresenceFullError(channel)
        self._member_of[app_id, channel, socket_id] = user_id
        if user_id in roster:
            roster[user_id][1].add(socket_id)
            return False
        roster[user_id] = (user_info, {socket_id})
        return True

    async def remove_member(self, app_id: str, channel: str, socket_id: str) -> str | None:
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

    async def heartbeat(self) -> bool:
        """One process is the whole cluster: its state cannot lapse."""
        return True

    async def reap_dead_nodes(self) -> list[Departure]:
        return []
