"""The webhook queue shared by the nodes of a cluster, in Redis (or Valkey) streams.

Keys, under `{prefix}:wh:`:
  lanes               set of the lanes that may hold events
  lane:{lane}         stream of the lane's events (fields c channel, e event; a delayed
                      event also d due ms, k key); an entry is deleted when delivered
  delayed             hash key -> entry id of the delayed events still cancellable
  lease:{lane}        the node working the lane (expires by itself: PX lease_ttl)
  once:{key}          a recent deduplicated event (cache_miss), PX its window
  dead:{app}          stream of the app's dead letters (the newest dead_letter_limit)
  log:{lane}          list of the lane's latest requests, newest first (LOG_LIMIT)

Presence events are written by the presence scripts (state/redis_hooks.py), in the
transition's own step; `add` buffers the others and `flush` sends them in one pipeline (one
round trip), so a node killed between the two loses that buffer only. Event times are the
stream ids' (the Redis server's clock, ms). Every script names the keys it touches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ressonance.protocol.webhooks import lane_app
from ressonance.state.base import DeadLetter, DeliveryAttempt, LaneDepth, QueuedEvent
from ressonance.state.redis import text
from ressonance.state.redis_hooks import delayed_key, lane_key, lanes_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

LOG_LIMIT: Final = 100
MAX_BUFFERED: Final = 100_000

# KEYS: lanes set, once key, lane streams...; ARGV: channel, event, once ms, lane names...
_ADD: Final = """
if ARGV[3] ~= '0' and not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then
  return 0
end
for i = 3, #KEYS do
  redis.call('XADD', KEYS[i], '*', 'c', ARGV[1], 'e', ARGV[2])
  redis.call('SADD', KEYS[1], ARGV[i + 1])
end
return 1
"""
# KEYS: lease; ARGV: node, ttl ms. 1 when this node holds the lease now.
_CLAIM: Final = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS: lease, stream, lanes set; ARGV: node, lane, only when empty (0/1).
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '1' then
  if redis.call('XLEN', KEYS[2]) > 0 then return 0 end
  redis.call('SREM', KEYS[3], ARGV[2])
  redis.call('DEL', KEYS[2])
end
redis.call('DEL', KEYS[1])
return 1
"""
# KEYS: delayed, stream; ARGV: key, entry id. 1 when the event is still wanted: its key still
# names it (now deleted: it can no longer be cancelled), or it was fired before and is still
# in the lane (read again by another worker). A cancelled event left the lane.
_FIRE: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
if #redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[2], 'COUNT', 1) == 1 then return 1 end
return 0
"""
# KEYS: stream, dead; ARGV: lane, reason, failed ms, cap, then id, channel, event, produced...
_DEAD_LETTER: Final = """
for i = 5, #ARGV, 4 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], '*', 'l', ARGV[1], 'c', ARGV[i + 1],
      'e', ARGV[i + 2], 'p', ARGV[i + 3], 'f', ARGV[3], 'r', ARGV[2])
  end
end
"""
# KEYS: dead, lanes set, lane streams...; ARGV: pairs of dead id, index of its lane stream.
_REPLAY: Final = """
local replayed = 0
for i = 1, #ARGV, 2 do
  local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i], 'COUNT', 1)
  if #found == 1 then
    local f = {}
    local fields = found[1][2]
    for j = 1, #fields, 2 do f[fields[j]] = fields[j + 1] end
    redis.call('XADD', KEYS[2 + tonumber(ARGV[i + 1])], '*', 'c', f['c'], 'e', f['e'])
    redis.call('SADD', KEYS[2], f['l'])
    redis.call('XDEL', KEYS[1], ARGV[i])
    replayed = replayed + 1
  end
end
return replayed
"""


def _fields(raw: Sequence[Any] | dict[Any, Any]) -> dict[str, bytes]:
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    return {text(k): v if isinstance(v, bytes) else str(v).encode() for k, v in pairs}


_ENTRY_ID: Final = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def _ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


class RedisWebhookQueue:
    """A `WebhookQueue` in Redis streams; one instance per node."""

    def __init__(
        self,
        redis: Redis,
        *,
        node_id: str,
        prefix: str = "ressonance",
        lease_ttl: float = 10.0,
        dead_letter_limit: int = 100_000,
    ) -> None:
        self._redis = redis
        self.node_id = node_id
        self._p = prefix
        self._lease_ms = int(lease_ttl * 1000)
        self.dead_letter_limit = dead_letter_limit
        self.wake: Callable[[], None] = lambda: None
        self.dropped = 0
        self._buffer: list[tuple[list[str], list[str | bytes | int]]] = []
        self._add = redis.register_script(_ADD)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._fire = redis.register_script(_FIRE)
        self._dead_letter = redis.register_script(_DEAD_LETTER)
        self._replay = redis.register_script(_REPLAY)

    def _k(self, name: str) -> str:
        return f"{self._p}:wh:{name}"

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None  # the client is the shared state's; `flush` is the node's to call

    # --- producing ----------------------------------------------------------------------

    def add(
        self,
        lanes: Sequence[str],
        channel: str,
        event: bytes,
        *,
        dedupe: str = "",
        dedupe_seconds: float = 0.0,
    ) -> None:
        if not lanes:
            return
        if not self._buffer:
            self.wake()
        if len(self._buffer) >= MAX_BUFFERED:
            del self._buffer[0]
            self.dropped += 1
        once = self._k(f"once:{dedupe}") if dedupe else self._k("once:-")
        keys = [lanes_key(self._p), once, *(lane_key(self._p, lane) for lane in lanes)]
        window = int(dedupe_seconds * 1000) if dedupe else 0
        self._buffer.append((keys, [channel, event, window, *lanes]))

    async def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args in batch:
                    await self._add(keys, args, client=pipe)
                await pipe.execute()
        except BaseException:
            # Some may have been written: a second copy is a duplicate (at-least-once), never
            # a loss. Kept for the next flush, in order.
            self._buffer[:0] = batch
            raise

    # --- working a lane -------------------------------------------------------------------

    async def lanes(self) -> list[str]:
        return sorted(text(lane) for lane in await self._redis.smembers(lanes_key(self._p)))

    async def claim(self, lane: str) -> bool:
        lease = self._k(f"lease:{lane}")
        return bool(await self._claim([lease], [self.node_id, self._lease_ms]))

    async def release(self, lane: str, *, if_empty: bool = False) -> bool:
        keys = [self._k(f"lease:{lane}"), lane_key(self._p, lane), lanes_key(self._p)]
        return bool(await self._release(keys, [self.node_id, lane, int(if_empty)]))

    async def read(self, lane: str, after: str = "", limit: int = 100) -> list[QueuedEvent]:
        start = f"({after}" if after else "-"
        entries: Any = await self._redis.xrange(lane_key(self._p, lane), start, "+", count=limit)
        events = []
        for raw_id, raw in entries:
            entry_id, fields = text(raw_id), _fields(raw)
            events.append(
                QueuedEvent(
                    position=entry_id,
                    channel=fields["c"].decode(),
                    event=fields["e"],
                    produced_ms=_ms(entry_id),
                    due_ms=int(fields.get("d", b"0")),
                    key=fields.get("k", b"").decode(),
                )
            )
        return events

    async def fire(self, lane: str, event: QueuedEvent) -> bool:
        keys = [delayed_key(self._p), lane_key(self._p, lane)]
        return bool(await self._fire(keys, [event.key, event.position]))

    async def done(self, lane: str, positions: Sequence[str]) -> None:
        if positions:
            await self._redis.xdel(lane_key(self._p, lane), *positions)

    async def dead_letter(
        self, lane: str, events: Sequence[QueuedEvent], reason: str, failed_ms: int
    ) -> None:
        if not events:
            return
        args: list[str | bytes | int] = [lane, reason, failed_ms, self.dead_letter_limit]
        for event in events:
            args += [event.position, event.channel, event.event, event.produced_ms]
        keys = [lane_key(self._p, lane), self._k(f"dead:{lane_app(lane)}")]
        await self._dead_letter(keys, args)

    async def record_attempt(self, lane: str, attempt: DeliveryAttempt) -> None:
        record = json.dumps(
            [attempt.at_ms, attempt.status, attempt.latency_ms, attempt.events, attempt.error]
        )
        key = self._k(f"log:{lane}")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, record)
            pipe.ltrim(key, 0, LOG_LIMIT - 1)
            await pipe.execute()

    async def depth(self, lanes: Sequence[str]) -> dict[str, LaneDepth]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for lane in lanes:
                pipe.xlen(lane_key(self._p, lane))
                pipe.xrange(lane_key(self._p, lane), "-", "+", count=1)
            replies = await pipe.execute()
        found = {}
        for index, lane in enumerate(lanes):
            count, first = replies[2 * index], replies[2 * index + 1]
            oldest = _ms(text(first[0][0])) if first else 0
            found[lane] = LaneDepth(int(count), oldest)
        return found

    # --- what an operator reads -----------------------------------------------------------

    async def dead_letters(
        self, app_id: str, after: str = "", limit: int = 100
    ) -> list[DeadLetter]:
        start = f"({after}" if after else "-"
        dead = self._k(f"dead:{app_id}")
        entries: Any = await self._redis.xrange(dead, start, "+", count=limit)
        letters = []
        for raw_id, raw in entries:
            f = _fields(raw)
            letters.append(
                DeadLetter(
                    id=text(raw_id),
                    lane=f["l"].decode(),
                    channel=f["c"].decode(),
                    event=f["e"],
                    produced_ms=int(f["p"]),
                    failed_ms=int(f["f"]),
                    reason=f["r"].decode(),
                )
            )
        return letters

    async def replay(self, app_id: str, ids: Sequence[str]) -> int:
        dead = self._k(f"dead:{app_id}")
        ids = [i for i in ids if _ENTRY_ID.fullmatch(i)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for dead_id in ids:
                pipe.xrange(dead, dead_id, dead_id, count=1)
            found = await pipe.execute()
        lanes: list[str] = []
        args: list[str | int] = []
        for dead_id, entries in zip(ids, found, strict=True):
            if not entries:
                continue
            lane = _fields(entries[0][1])["l"].decode()
            if lane not in lanes:
                lanes.append(lane)
            args += [dead_id, lanes.index(lane) + 1]
        if not args:
            return 0
        keys = [dead, lanes_key(self._p), *(lane_key(self._p, lane) for lane in lanes)]
        return int(await self._replay(keys, args))

    async def delivery_log(self, lane: str, limit: int = 100) -> list[DeliveryAttempt]:
        records = await self._redis.lrange(self._k(f"log:{lane}"), 0, limit - 1)
        attempts = []
        for record in records:
            at_ms, status, latency_ms, events, error = json.loads(record)
            attempts.append(DeliveryAttempt(at_ms, status, latency_ms, events, error))
        return attempts
