"""The PresenceStore seam: channel occupancy, presence rosters and signed-in users.

It is the one place the HTTP API reads counts from, so every node answers the same once a
shared implementation is plugged in. Guarantees:
- `add_member` reports True exactly once per user per channel (the user's first connection),
  and `remove_member` returns the user id exactly once (their last connection leaving):
  member_added and member_removed fire once per user, never per tab (reference §2.2).
- `add_user_connection` / `remove_user_connection` do the same for signed-in users, which
  drives watchlist online/offline events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ressonance.protocol.errors import RessonanceError


@dataclass(frozen=True, slots=True)
class Departure:
    """What a dead node's connections left behind, for the survivors to announce.

    `user_id` is set when a presence member left its channel (member_removed) or, with an
    empty `channel`, when a signed-in user's last connection is gone (watchlist offline).
    `count` is the channel's remaining subscription count.
    """

    app_id: str
    channel: str
    user_id: str | None
    count: int


class PresenceFullError(RessonanceError):
    """A new user would push a presence channel past its member limit; nothing was recorded."""


class PresenceStore(Protocol):
    async def join(self, app_id: str, channel: str, socket_id: str) -> int:
        """Count `socket_id` as subscribed; returns the channel's subscription count."""
        ...

    async def leave(self, app_id: str, channel: str, socket_id: str) -> int:
        """Forget `socket_id`'s subscription; returns the remaining subscription count."""
        ...

    async def subscription_count(self, app_id: str, channel: str) -> int: ...

    async def channels(self, app_id: str, prefix: str = "") -> dict[str, int]:
        """Occupied channels starting with `prefix`, with their subscription counts."""
        ...

    async def add_member(
        self,
        app_id: str,
        channel: str,
        socket_id: str,
        user_id: str,
        user_info: object,
        max_users: int | None = None,
    ) -> bool:
        """Add a presence member connection; True when the user is new to the channel.

        With `max_users`, a NEW user is refused (PresenceFullError, nothing recorded) when the
        channel already has that many users; the check and the add are one atomic step, so
        the limit holds across nodes. Another connection of a user already in is always let in.
        """
        ...

    async def remove_member(self, app_id: str, channel: str, socket_id: str) -> str | None:
        """Remove a member connection; the user id when it was the user's last one."""
        ...

    async def members(self, app_id: str, channel: str) -> dict[str, object]:
        """user_id -> user_info of a presence channel (no order is promised).

        A user's info is the one their first connection joined with.
        """
        ...

    async def user_count(self, app_id: str, channel: str) -> int: ...

    async def add_user_connection(self, app_id: str, user_id: str, socket_id: str) -> bool:
        """Index a signed-in connection; True when it is the user's first."""
        ...

    async def remove_user_connection(self, app_id: str, user_id: str, socket_id: str) -> bool:
        """Drop a signed-in connection; True when it was the user's last."""
        ...

    async def online(self, app_id: str, user_ids: tuple[str, ...]) -> set[str]:
        """Which of `user_ids` are signed in on at least one connection."""
        ...

    async def heartbeat(self) -> bool:
        """Say this node is alive (a shared store expires nodes that stop saying it).

        Returns False when this node's registration had lapsed (its first heartbeat, or the
        store lost it: expired during an outage, or the store restarted empty); the node then
        writes its connections' state again.
        """
        ...

    async def reap_dead_nodes(self) -> list[Departure]:
        """Remove the entries of nodes that stopped heartbeating; each is reaped once."""
        ...
