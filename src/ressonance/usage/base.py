"""The UsageStore seam: per-app, per-day counters shared by every node.

Messages are counted the way Pusher counts them: one per published event per channel plus
one per copy delivered to a subscriber. Days are UTC dates, "YYYY-MM-DD".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: str
    messages: int = 0
    peak_connections: int = 0


class UsageStore(Protocol):
    async def add_messages(self, app_id: str, day: str, count: int) -> int:
        """Add `count` messages to the app's day; the day's new total."""
        ...

    async def messages(self, app_id: str, day: str) -> int:
        """The app's messages on `day` so far."""
        ...

    async def record_connections(self, app_id: str, day: str, connections: int) -> None:
        """Note a cluster-wide concurrent connection count (the day keeps its peak)."""
        ...

    async def usage(self, app_id: str, days: Sequence[str]) -> list[DayUsage]:
        """The app's usage on each of `days`, in that order (zeros for days without any)."""
        ...
