"""Usage counters of one process."""

from __future__ import annotations

from collections.abc import Sequence

from ressonance.usage.base import DayUsage


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
