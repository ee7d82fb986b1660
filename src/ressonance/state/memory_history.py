"""Channel history and idempotency keys in this process: the defaults without a shared store.

Each class keeps the guarantees its seam states in `state.base`, on the injected clock. A
log is trimmed (size, then age) on each append and read of its channel; every minute of the
clock, the next append also sweeps every log, dropping what has aged out and the logs (and
serials) idle for longer than `SERIAL_TTL` after that, so quiet channels do not keep memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Final

from ressonance.state.base import Claim, HistoryEvent, HistoryPage, Retention

SERIAL_TTL: Final = 86_400.0  # a log's serial outlives its events by a day
SWEEP_SECONDS: Final = 60.0


# A kept event: (serial, name, data, time_ms), a plain tuple of plain values, which the
# garbage collector stops tracking (a HistoryEvent, a tuple subclass, would stay tracked).
_Kept = tuple[int, str, str, int]


@dataclass(slots=True)
class _Log:
    last: int  # the newest serial given
    touched: float  # when it was last appended to or asked for its position
    ttl: int  # the retention it was last used with (for the sweep)
    events: deque[_Kept] = field(default_factory=deque)
    bytes: int = 0

    def trim(self, size: int, cutoff_ms: int) -> None:
        events = self.events
        while events and (len(events) > size or events[0][3] < cutoff_ms):
            _, name, data, _ = events.popleft()
            self.bytes -= _size(name, data)


def _size(name: str, data: str) -> int:
    """Bytes of an event's name and data in UTF-8, as Redis counts them."""
    return len(name.encode()) + len(data.encode())


class MemoryHistoryStore:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._logs: dict[tuple[str, str], _Log] = {}
        self._next_sweep = clock() + SWEEP_SECONDS

    def _log(self, app_id: str, channel: str, retention: Retention) -> _Log:
        now = self._clock()
        log = self._logs.get((app_id, channel))
        if log is None or (not log.events and now - log.touched > log.ttl + SERIAL_TTL):
            log = self._logs[app_id, channel] = _Log(int(now * 1_000_000), now, retention.ttl)
        log.touched = now
        log.ttl = retention.ttl
        return log

    async def append(
        self, app_id: str, channel: str, name: str, data: str, retention: Retention
    ) -> int:
        self._sweep()
        log = self._log(app_id, channel, retention)
        log.last += 1
        now_ms = int(self._clock() * 1000)
        log.events.append((log.last, name, data, now_ms))
        log.bytes += _size(name, data)
        log.trim(retention.size, now_ms - retention.ttl * 1000)
        return log.last

    async def position(self, app_id: str, channel: str, retention: Retention) -> int:
        return self._log(app_id, channel, retention).last

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
        log = self._logs.get((app_id, channel))
        if log is None:
            return HistoryPage([], None, None)
        log.trim(retention.size, int(self._clock() * 1000) - retention.ttl * 1000)
        events = log.events
        if not events:
            return HistoryPage([], None, log.last)
        first = events[0][0]  # kept serials are consecutive, up to log.last
        low = first if after is None else max(first, after + 1)
        high = log.last if before is None else min(log.last, before - 1)
        if newest:
            low = max(low, high - limit + 1)
        else:
            high = min(high, low + limit - 1)
        kept = islice(events, low - first, high - first + 1) if low <= high else ()
        return HistoryPage([HistoryEvent._make(event) for event in kept], first, log.last)

    async def retained_bytes(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (app_id, _), log in self._logs.items():
            totals[app_id] = totals.get(app_id, 0) + log.bytes
        return totals

    def _sweep(self) -> None:
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        for key, log in list(self._logs.items()):
            log.trim(len(log.events), int((now - log.ttl) * 1000))
            if not log.events and now - log.touched > log.ttl + SERIAL_TTL:
                del self._logs[key]


class MemoryIdempotencyStore:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # (app, key) -> (fingerprint, answer or None while pending, expires at)
        self._keys: dict[tuple[str, str], tuple[str, str | None, float]] = {}
        self._next_sweep = clock() + SWEEP_SECONDS

    async def claim(self, app_id: str, key: str, fingerprint: str, pending_ttl: int) -> Claim:
        now = self._clock()
        self._sweep(now)
        found = self._keys.get((app_id, key))
        if found is not None and found[2] > now:
            return Claim(False, found[0], found[1])
        self._keys[app_id, key] = (fingerprint, None, now + pending_ttl)
        return Claim(True)

    async def complete(self, app_id: str, key: str, answer: str, ttl: int) -> None:
        found = self._keys.get((app_id, key))
        if found is not None:
            self._keys[app_id, key] = (found[0], answer, self._clock() + ttl)

    async def release(self, app_id: str, key: str) -> None:
        self._keys.pop((app_id, key), None)

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        for key, (_, _, expires_at) in list(self._keys.items()):
            if expires_at <= now:
                del self._keys[key]
