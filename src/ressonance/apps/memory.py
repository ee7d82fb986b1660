"""Apps held in memory: the static apps of a config file or the environment."""

from __future__ import annotations

from collections.abc import Iterable

from ressonance.protocol.app import App


class MemoryAppStore:
    """A fixed set of apps; ids and keys must be unique."""

    def __init__(self, apps: Iterable[App]) -> None:
        self._apps = list(apps)
        self._by_id = {app.id: app for app in self._apps}
        self._by_key = {app.key: app for app in self._apps}
        if len(self._by_id) != len(self._apps) or len(self._by_key) != len(self._apps):
            raise ValueError("app ids and keys must be unique")

    async def find_by_id(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)

    async def find_by_key(self, key: str) -> App | None:
        return self._by_key.get(key)

    async def all(self) -> list[App]:
        return list(self._apps)
