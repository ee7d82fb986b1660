"""Webhook events recorded by the presence scripts themselves, in the transition's own step.

A presence script that may cause webhook events starts with `SERVER_NOW` and `HOOKS_LUA`,
calls `wh_open(h, a)` with the KEYS index of the hook keys and the ARGV index of the hook
arguments, and then `wh_occupied`, `wh_vacated`, `wh_member_added`, `wh_member_removed`
and `wh_count` where its transitions happen. They keep the rules of
state/memory_hooks.py, lane by lane, in Lua:
- a delayed event (vacated, member_removed, a throttled count) is a lane stream entry with
  fields `d` (due, ms) and `k` (its key), and `{prefix}:wh:delayed` maps the key to the
  entry's id; cancelling deletes both (XDEL, HDEL); `fire` (state/redis_webhooks.py) deletes
  only the key, after which the event can no longer be cancelled.
- one happening has one id: the node's random `base` and a counter of the script.

`hook_keys` and `hook_args` make the KEYS and ARGV the functions read:
KEYS[h] delayed hash, KEYS[h+1] the lanes set, KEYS[h+2] the channel's count throttle,
KEYS[h+3...] the lane streams; ARGV[a] the spec (JSON: lane names `l`, and for each lane the
letters of the events it takes, `k`: o occupied, v vacated, a added, r removed, c count),
ARGV[a+1] the id base, ARGV[a+2] the leave delay in ms. An empty spec records nothing (and
no hook keys are passed).
"""

from __future__ import annotations

import functools
import json
from typing import Final

from ressonance.protocol.webhooks import ChannelHooks
from ressonance.state.memory_hooks import COUNT_THROTTLE_SECONDS, COUNT_UNTHROTTLED

HOOKS_LUA: Final = f"""
local W = nil
local function wh_open(h, a)
  if ARGV[a] == '' then return end
  W = {{h = h, spec = cjson.decode(ARGV[a]), base = ARGV[a + 1],
        delay = tonumber(ARGV[a + 2]), n = 0}}
end
local function wh_id()
  W.n = W.n + 1
  return W.base .. string.format('%02x', W.n)
end
local function wh_takes(i, letter) return string.find(W.spec.k[i], letter, 1, true) ~= nil end
local function wh_none(letters)
  if not W then return true end
  for i = 1, #W.spec.l do
    for c in string.gmatch(letters, '.') do if wh_takes(i, c) then return false end end
  end
  return true
end
local function wh_key(i, kind, channel, user)
  return W.spec.l[i] .. '\\31' .. kind .. '\\31' .. channel .. '\\31' .. (user or '')
end
local function wh_add(i, channel, event, due, key)
  local stream = KEYS[W.h + 2 + i]
  local id
  if due then
    id = redis.call('XADD', stream, '*', 'c', channel, 'e', event, 'd', due, 'k', key)
    redis.call('HSET', KEYS[W.h], key, id)
  else
    id = redis.call('XADD', stream, '*', 'c', channel, 'e', event)
  end
  redis.call('SADD', KEYS[W.h + 1], W.spec.l[i])
end
local function wh_cancel(i, key)
  local id = redis.call('HGET', KEYS[W.h], key)
  if not id then return false end
  redis.call('HDEL', KEYS[W.h], key)
  redis.call('XDEL', KEYS[W.h + 2 + i], id)
  return true
end
local function wh_event(name, channel, extra)
  local event = {{name = name, channel = channel, id = wh_id()}}
  for k, v in pairs(extra or {{}}) do event[k] = v end
  return cjson.encode(event)
end
local function wh_occupied(channel)
  if wh_none('ov') then return end
  local event = wh_event('channel_occupied', channel)
  for i = 1, #W.spec.l do
    local reloaded = wh_cancel(i, wh_key(i, 'v', channel))
    if not reloaded and wh_takes(i, 'o') then wh_add(i, channel, event) end
  end
end
local function wh_vacated(channel)
  if wh_none('v') then return end
  local event = wh_event('channel_vacated', channel)
  for i = 1, #W.spec.l do
    if wh_takes(i, 'v') then
      local key = wh_key(i, 'v', channel)
      wh_cancel(i, key)
      wh_add(i, channel, event, now + W.delay, key)
    end
  end
end
local function wh_member_added(channel, user)
  if wh_none('ar') then return end
  local event = wh_event('member_added', channel, {{user_id = user}})
  for i = 1, #W.spec.l do
    local came_back = wh_cancel(i, wh_key(i, 'r', channel, user))
    if not came_back and wh_takes(i, 'a') then wh_add(i, channel, event) end
  end
end
local function wh_member_removed(channel, user)
  if wh_none('r') then return end
  local event = wh_event('member_removed', channel, {{user_id = user}})
  for i = 1, #W.spec.l do
    if wh_takes(i, 'r') then
      local key = wh_key(i, 'r', channel, user)
      wh_cancel(i, key)
      wh_add(i, channel, event, now + W.delay, key)
    end
  end
end
local function wh_count(channel, count)
  if wh_none('c') then return end
  local event = wh_event('subscription_count', channel, {{subscription_count = count}})
  local due = nil
  if count > {COUNT_UNTHROTTLED} then
    local left = redis.call('PTTL', KEYS[W.h + 2])
    if left > 0 then
      due = now + left
    else
      redis.call('SET', KEYS[W.h + 2], '1', 'PX', {int(COUNT_THROTTLE_SECONDS * 1000)})
    end
  end
  for i = 1, #W.spec.l do
    if wh_takes(i, 'c') then
      local key = wh_key(i, 'c', channel)
      wh_cancel(i, key)
      if due then wh_add(i, channel, event, due, key) else wh_add(i, channel, event) end
    end
  end
end
"""


@functools.lru_cache(maxsize=4096)
def _spec(hooks: ChannelHooks) -> tuple[tuple[str, ...], str]:
    lanes = hooks.lanes()
    kinds = (
        ("o", hooks.occupied),
        ("v", hooks.vacated),
        ("a", hooks.member_added),
        ("r", hooks.member_removed),
        ("c", hooks.subscription_count),
    )
    letters = ["".join(letter for letter, taking in kinds if lane in taking) for lane in lanes]
    return lanes, json.dumps({"l": lanes, "k": letters}, separators=(",", ":"))


def hook_keys(prefix: str, app_id: str, channel: str, hooks: ChannelHooks) -> list[str]:
    """The hook KEYS of a script call (none when no lane takes a store event)."""
    if not hooks.has_store_events:
        return []
    lanes, _ = _spec(hooks)
    return [
        delayed_key(prefix),
        lanes_key(prefix),
        f"{prefix}:wh:throttle:{app_id}:{channel}",
        *(lane_key(prefix, lane) for lane in lanes),
    ]


def hook_args(hooks: ChannelHooks, base: str, leave_delay_ms: int) -> list[str | int]:
    """The hook ARGV of a script call (an empty spec when no lane takes a store event)."""
    if not hooks.has_store_events:
        return ["", "", 0]
    return [_spec(hooks)[1], base, leave_delay_ms]


def delayed_key(prefix: str) -> str:
    """The hash of the delayed events still cancellable: key -> stream entry id."""
    return f"{prefix}:wh:delayed"


def lanes_key(prefix: str) -> str:
    """The set of lanes that may hold events."""
    return f"{prefix}:wh:lanes"


def lane_key(prefix: str, lane: str) -> str:
    """The stream of one lane's events."""
    return f"{prefix}:wh:lane:{lane}"
