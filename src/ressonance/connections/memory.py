"""Connection counts of one process: the node is the whole cluster."""

from __future__ import annotations

from collections.abc import Mapping

from ressonance.protocol.app import UNLIMITED


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

    async def heartbeat(self) -> bool:
        return True

    async def restore(self, counts: Mapping[str, int]) -> None:
        self._counts = {app_id: n for app_id, n in counts.items() if n > 0}
