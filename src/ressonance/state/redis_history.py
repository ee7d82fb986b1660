"""Channel history shared by every node through Redis (or Valkey): one stream per channel.

Keys of a channel (app ids have no ':', so the app of a key is known from it):
- `{prefix}:history:{app}:{channel}`: a stream whose entry ids are `<serial>-0`, with the
  fields `t` (publish time, ms of the publishing node's clock), `n` (event name), `d` (data);
- `{prefix}:history-serial:{app}:{channel}`: the newest serial given (INCR);
- `{prefix}:history-bytes:{app}:{channel}`: bytes of names and data the stream holds.

Appending is one script: start the serial at the clock's microseconds if the channel has
none, INCR it, XADD the entry, then trim from the head what is over the size or older than
the retention (each entry is trimmed once, so a publish costs O(1) amortized). A read is one
script too: the same trim, then the bounds and the range, so what it answers is what the
retention keeps. The stream and its byte count expire `ttl` after the last append (nothing
in them is younger), the serial a day later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ressonance.state.base import HistoryEvent, HistoryPage, Retention
from ressonance.state.redis import text

if TYPE_CHECKING:
    from redis.asyncio import Redis

SERIAL_TTL_MS: Final = 86_400_000

# Removes from the head of stream `log` what is over `size` entries or older than `cutoff`.
_TRIM: Final = """
local function trim(log, bytes, cutoff, size)
  local len = redis.call('XLEN', log)
  local over = len - size
  local removed, freed, start = 0, 0, '-'
  while true do
    local batch = redis.call('XRANGE', log, start, '+', 'COUNT', 100)
    local done = #batch < 100
    for i = 1, #batch do
      local f = batch[i][2]
      if removed >= over and tonumber(f[2]) >= cutoff then
        done = true
        break
      end
      removed = removed + 1
      freed = freed + #f[4] + #f[6]
    end
    if done then break end
    start = '(' .. batch[#batch][1]
  end
  if removed > 0 then
    redis.call('XTRIM', log, 'MAXLEN', len - removed)
    redis.call('DECRBY', bytes, freed)
  end
end
"""

# KEYS: log, serial, bytes. ARGV: now ms, seed (µs), size, ttl ms, serial ttl ms, name,
# data. The serial.
_APPEND: Final = (
    _TRIM
    + """
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[2]) end
local serial = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], string.format('%d', serial) .. '-0',
           't', ARGV[1], 'n', ARGV[6], 'd', ARGV[7])
redis.call('INCRBY', KEYS[3], #ARGV[6] + #ARGV[7])
trim(KEYS[1], KEYS[3], tonumber(ARGV[1]) - tonumber(ARGV[4]), tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return string.format('%d', serial)
"""
)

# KEYS: serial. ARGV: seed (µs), ttl ms. The newest serial, the log started if it has none.
_POSITION: Final = """
local serial = redis.call('GET', KEYS[1])
if not serial then
  serial = ARGV[1]
  redis.call('SET', KEYS[1], serial)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return serial
"""

# KEYS: log, serial, bytes. ARGV: now ms, size, ttl ms, 'newest' or 'oldest', low, high,
# count (low and high are XRANGE bounds). {newest serial, oldest kept id, entries}.
_READ: Final = (
    _TRIM
    + """
trim(KEYS[1], KEYS[3], tonumber(ARGV[1]) - tonumber(ARGV[3]), tonumber(ARGV[2]))
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first = false
if head[1] then first = head[1][1] end
local entries
if ARGV[4] == 'newest' then
  entries = redis.call('XREVRANGE', KEYS[1], ARGV[6], ARGV[5], 'COUNT', ARGV[7])
else
  entries = redis.call('XRANGE', KEYS[1], ARGV[5], ARGV[6], 'COUNT', ARGV[7])
end
return {redis.call('GET', KEYS[2]), first, entries}
"""
)


class RedisHistoryStore:
    def __init__(
        self, redis: Redis, clock: Callable[[], float], prefix: str = "ressonance"
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._p = prefix
        self._append = redis.register_script(_APPEND)
        self._position = redis.register_script(_POSITION)
        self._read = redis.register_script(_READ)

    def _keys(self, app_id: str, channel: str) -> list[str]:
        name = f"{app_id}:{channel}"
        p = self._p
        return [f"{p}:history:{name}", f"{p}:history-serial:{name}", f"{p}:history-bytes:{name}"]

    async def append(
        self, app_id: str, channel: str, name: str, data: str, retention: Retention
    ) -> int:
        now = self._clock()
        ttl_ms = retention.ttl * 1000
        serial = await self._append(
            self._keys(app_id, channel),
            [
                int(now * 1000),
                int(now * 1_000_000),
                retention.size,
                ttl_ms,
                ttl_ms + SERIAL_TTL_MS,
                name,
                data,
            ],
        )
        return int(serial)

    async def position(self, app_id: str, channel: str, retention: Retention) -> int:
        key = self._keys(app_id, channel)[1]
        seed = int(self._clock() * 1_000_000)
        return int(await self._position([key], [seed, retention.ttl * 1000 + SERIAL_TTL_MS]))

    async def read(
        self,
        app_id: str,
        channel: str,
        retention: Retention,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int,
        newest: bool = False,
    ) -> HistoryPage:
        low = "-" if after is None else f"({after}-0"
        high = "+" if before is None else f"({before}-0"
        last, first, entries = await self._read(
            self._keys(app_id, channel),
            [
                int(self._clock() * 1000),
                retention.size,
                retention.ttl * 1000,
                "newest" if newest else "oldest",
                low,
                high,
                limit,
            ],
        )
        events = [_event(entry_id, fields) for entry_id, fields in entries]
        if newest:
            events.reverse()
        return HistoryPage(
            events,
            None if first is None else _serial(first),
            None if last is None else int(last),
        )

    async def retained_bytes(self) -> dict[str, int]:
        pattern = f"{self._p}:history-bytes:*"
        keys = [text(key) async for key in self._redis.scan_iter(match=pattern, count=1000)]
        totals: dict[str, int] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            for key, value in zip(chunk, await self._redis.mget(chunk), strict=True):
                if value is not None:
                    app_id = key[len(pattern) - 1 :].split(":", 1)[0]
                    totals[app_id] = totals.get(app_id, 0) + int(value)
        return totals


def _serial(entry_id: bytes | str) -> int:
    return int(text(entry_id).partition("-")[0])


def _event(entry_id: bytes, fields: list[bytes]) -> HistoryEvent:
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    return HistoryEvent(
        serial=_serial(entry_id),
        name=text(values[b"n"]),
        data=text(values[b"d"]),
        time_ms=int(values[b"t"]),
    )
