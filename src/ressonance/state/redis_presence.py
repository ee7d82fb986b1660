"""Presence state shared by every node through Redis (or Valkey).

Keys, all under `{prefix}:`, with app ids keeping tenants apart:
  {app}:subs:{channel}     hash socket_id -> node_id      (subscription count = HLEN)
  {app}:channels           set of occupied channels
  {app}:roster:{channel}   hash user_id -> user_info JSON (presence members)
  {app}:conns:{channel}    hash user_id -> connection count
  {app}:msock:{channel}    hash socket_id -> user_id
  {app}:user:{user_id}     set of signed-in socket ids
  node:{id}:entries        set of everything node `id` added, for reaping it

Every decision that must be atomic (first or last member of a user, last subscriber of a
channel) is one Lua script, and a presence subscribe is one script (one round trip): the
member, the occupancy and the roster together. Each script names every key it touches in
KEYS; a single Redis primary is assumed for now (the keys of one script do not share a hash
slot). The node's lease and the reaping of dead nodes are `RedisMembership`'s; `reap` is
the part of it that removes one node's entries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import orjson

from ressonance.protocol.webhooks import NO_HOOKS, ChannelHooks, event_ids
from ressonance.state.base import Departure, HooksFor, Joined, PresenceFullError, no_hooks
from ressonance.state.redis import SERVER_NOW, entries_key, text
from ressonance.state.redis_hooks import HOOKS_LUA, hook_args, hook_keys

if TYPE_CHECKING:
    from redis.asyncio import Redis

SEP: Final = "\x1f"

# Scripts that may record webhook events start with SERVER_NOW + HOOKS_LUA and open the hook
# KEYS/ARGV that follow their own (state/redis_hooks.py).
_HOOKED: Final = SERVER_NOW + HOOKS_LUA
# KEYS: subs, channels, entries, hooks...; ARGV: socket, node, channel, entry, hooks...
_JOIN: Final = (
    _HOOKED
    + """
wh_open(4, 5)
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
local n = redis.call('HLEN', KEYS[1])
if added == 1 then
  if n == 1 then wh_occupied(ARGV[3]) end
  wh_count(ARGV[3], n)
end
return n
"""
)
# KEYS: subs, channels, entries, hooks...; ARGV: socket, channel, entry, hooks...
_LEAVE: Final = (
    _HOOKED
    + """
wh_open(4, 4)
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[3])
local n = redis.call('HLEN', KEYS[1])
if n == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
if removed == 1 then
  if n == 0 then wh_vacated(ARGV[2]) end
  wh_count(ARGV[2], n)
end
return n
"""
)
# KEYS: roster, conns, msock, subs, channels, entries, hooks...
# ARGV: socket, user, info JSON, max users (-1: none), node, channel, member entry, sub entry,
# hooks... Returns {-1} when full, else {new member 0/1, subscription count, roster as user,
# info...}. Occupied is recorded before member_added.
_JOIN_PRESENCE: Final = (
    _HOOKED
    + """
wh_open(7, 9)
local new = 0
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then
  local most = tonumber(ARGV[4])
  if most >= 0 and redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0
     and redis.call('HLEN', KEYS[1]) >= most then return {-1} end
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[6], ARGV[7])
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
    new = 1
  end
end
local added = redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
redis.call('SADD', KEYS[5], ARGV[6])
redis.call('SADD', KEYS[6], ARGV[8])
local count = redis.call('HLEN', KEYS[4])
if added == 1 and count == 1 then wh_occupied(ARGV[6]) end
if new == 1 then wh_member_added(ARGV[6], ARGV[2]) end
return {new, count, redis.call('HGETALL', KEYS[1])}
"""
)
# KEYS: roster, conns, msock, entries, hooks...; ARGV: socket, entry, channel, hooks...
_REMOVE_MEMBER: Final = (
    _HOOKED
    + """
wh_open(5, 4)
redis.call('SREM', KEYS[4], ARGV[2])
local user = redis.call('HGET', KEYS[3], ARGV[1])
if not user then return false end
redis.call('HDEL', KEYS[3], ARGV[1])
local n = redis.call('HINCRBY', KEYS[2], user, -1)
if n > 0 then return false end
redis.call('HDEL', KEYS[2], user)
redis.call('HDEL', KEYS[1], user)
wh_member_removed(ARGV[3], user)
return user
"""
)
_ADD_USER: Final = """
local added = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if added == 1 and redis.call('SCARD', KEYS[1]) == 1 then return 1 end
return 0
"""
_REMOVE_USER: Final = """
local removed = redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
if removed == 1 and redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
"""


class RedisPresenceStore:
    """Cluster-wide presence; one instance per node (it records what its node added)."""

    def __init__(
        self,
        redis: Redis,
        *,
        node_id: str,
        prefix: str = "ressonance",
        leave_delay: float = 3.0,
    ) -> None:
        self._redis = redis
        self._node_id = node_id
        self._p = prefix
        self._delay_ms = int(leave_delay * 1000)
        self._new_base = event_ids()
        self._join = redis.register_script(_JOIN)
        self._leave = redis.register_script(_LEAVE)
        self._join_presence = redis.register_script(_JOIN_PRESENCE)
        self._remove_member = redis.register_script(_REMOVE_MEMBER)
        self._add_user = redis.register_script(_ADD_USER)
        self._remove_user = redis.register_script(_REMOVE_USER)

    def _k(self, app_id: str, kind: str, name: str = "") -> str:
        return f"{self._p}:{app_id}:{kind}:{name}" if name else f"{self._p}:{app_id}:{kind}"

    def _entries(self, node_id: str) -> str:
        return entries_key(self._p, node_id)

    def _channel_keys(self, app_id: str, channel: str, node_id: str) -> list[str]:
        return [
            self._k(app_id, "subs", channel),
            self._k(app_id, "channels"),
            self._entries(node_id),
        ]

    def _member_keys(self, app_id: str, channel: str, node_id: str) -> list[str]:
        return [
            self._k(app_id, "roster", channel),
            self._k(app_id, "conns", channel),
            self._k(app_id, "msock", channel),
            self._entries(node_id),
        ]

    def _hook_keys(self, app_id: str, channel: str, hooks: ChannelHooks) -> list[str]:
        return hook_keys(self._p, app_id, channel, hooks)

    def _hook_args(self, hooks: ChannelHooks) -> list[str | int]:
        base = self._new_base()[:22] if hooks.has_store_events else ""
        return hook_args(hooks, base, self._delay_ms)

    async def join(
        self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks = NO_HOOKS
    ) -> int:
        entry = SEP.join(("s", app_id, channel, socket_id))
        keys = self._channel_keys(app_id, channel, self._node_id)
        keys += self._hook_keys(app_id, channel, hooks)
        args = [socket_id, self._node_id, channel, entry, *self._hook_args(hooks)]
        return int(await self._join(keys, args))

    async def leave(
        self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks = NO_HOOKS
    ) -> int:
        return await self._leave_as(app_id, channel, socket_id, self._node_id, hooks)

    async def _leave_as(
        self, app_id: str, channel: str, socket_id: str, node_id: str, hooks: ChannelHooks
    ) -> int:
        entry = SEP.join(("s", app_id, channel, socket_id))
        keys = self._channel_keys(app_id, channel, node_id)
        keys += self._hook_keys(app_id, channel, hooks)
        args = [socket_id, channel, entry, *self._hook_args(hooks)]
        return int(await self._leave(keys, args))

    async def subscription_count(self, app_id: str, channel: str) -> int:
        return int(await self._redis.hlen(self._k(app_id, "subs", channel)))

    async def channels(self, app_id: str, prefix: str = "") -> dict[str, int]:
        occupied = await self._redis.smembers(self._k(app_id, "channels"))
        names = sorted(text(n) for n in occupied)
        names = [n for n in names if n.startswith(prefix)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hlen(self._k(app_id, "subs", name))
            counts = await pipe.execute()
        return {name: int(count) for name, count in zip(names, counts, strict=True) if count}

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
        keys = [
            *(self._k(app_id, kind, channel) for kind in ("roster", "conns", "msock", "subs")),
            self._k(app_id, "channels"),
            self._entries(self._node_id),
            *self._hook_keys(app_id, channel, hooks),
        ]
        most = -1 if max_users is None else max_users
        info = orjson.dumps(user_info)
        args: list[str | bytes | int] = [socket_id, user_id, info, most, self._node_id, channel]
        entries = [SEP.join((kind, app_id, channel, socket_id)) for kind in ("m", "s")]
        reply = await self._join_presence(keys, [*args, *entries, *self._hook_args(hooks)])
        if int(reply[0]) < 0:
            raise PresenceFullError(channel)
        new_member, count, flat = reply
        roster = {text(flat[i]): orjson.loads(flat[i + 1]) for i in range(0, len(flat), 2)}
        return Joined(bool(new_member), int(count), dict(sorted(roster.items())))

    async def remove_member(
        self, app_id: str, channel: str, socket_id: str, hooks: ChannelHooks = NO_HOOKS
    ) -> str | None:
        return await self._remove_member_as(app_id, channel, socket_id, self._node_id, hooks)

    async def _remove_member_as(
        self, app_id: str, channel: str, socket_id: str, node_id: str, hooks: ChannelHooks
    ) -> str | None:
        entry = SEP.join(("m", app_id, channel, socket_id))
        keys = self._member_keys(app_id, channel, node_id)
        keys += self._hook_keys(app_id, channel, hooks)
        user = await self._remove_member(keys, [socket_id, entry, channel, *self._hook_args(hooks)])
        return user.decode() if user else None

    async def members(self, app_id: str, channel: str) -> dict[str, object]:
        raw = await self._redis.hgetall(self._k(app_id, "roster", channel))
        return {text(user): orjson.loads(info) for user, info in sorted(raw.items())}

    async def user_count(self, app_id: str, channel: str) -> int:
        return int(await self._redis.hlen(self._k(app_id, "roster", channel)))

    async def add_user_connection(self, app_id: str, user_id: str, socket_id: str) -> bool:
        entry = SEP.join(("u", app_id, user_id, socket_id))
        keys = [self._k(app_id, "user", user_id), self._entries(self._node_id)]
        return bool(await self._add_user(keys, [socket_id, entry]))

    async def remove_user_connection(self, app_id: str, user_id: str, socket_id: str) -> bool:
        return await self._remove_user_as(app_id, user_id, socket_id, self._node_id)

    async def _remove_user_as(
        self, app_id: str, user_id: str, socket_id: str, node_id: str
    ) -> bool:
        entry = SEP.join(("u", app_id, user_id, socket_id))
        keys = [self._k(app_id, "user", user_id), self._entries(node_id)]
        return bool(await self._remove_user(keys, [socket_id, entry]))

    async def online(self, app_id: str, user_ids: tuple[str, ...]) -> set[str]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.exists(self._k(app_id, "user", user_id))
            found = await pipe.execute()
        return {user_id for user_id, hit in zip(user_ids, found, strict=True) if hit}

    # --- reaping a dead node (for RedisMembership) -----------------------------------

    async def reap(self, node_id: str, hooks: HooksFor = no_hooks) -> list[Departure]:
        """Remove every entry node `node_id` added; what they left, as departures (and
        their webhook events, for the lanes `hooks` names)."""
        departures = []
        entries = await self._redis.smembers(self._entries(node_id))
        # Members first, so member_removed precedes the count that no longer includes them.
        for entry in sorted((text(e) for e in entries), key=lambda e: "msu".index(e[0])):
            departures += await self._reap_entry(entry, node_id, hooks)
        return departures

    async def _reap_entry(self, entry: str, node_id: str, hooks: HooksFor) -> list[Departure]:
        kind, app_id, name, socket_id = entry.split(SEP)
        if kind == "m":
            channel_hooks = await hooks(app_id, name)
            user = await self._remove_member_as(app_id, name, socket_id, node_id, channel_hooks)
            return [Departure(app_id, name, user, -1)] if user else []
        if kind == "s":
            channel_hooks = await hooks(app_id, name)
            count = await self._leave_as(app_id, name, socket_id, node_id, channel_hooks)
            return [Departure(app_id, name, None, count)]
        if await self._remove_user_as(app_id, name, socket_id, node_id):
            return [Departure(app_id, "", name, 0)]
        return []
