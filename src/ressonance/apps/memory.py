"""Apps held in memory: the static apps of a config file or the environment."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

from ressonance.apps.base import AppExistsError, AppNotFoundError, AppRecord
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


class MemoryAppRegistry:
    """An `AppRegistry` in memory, for tests and single-process tools."""

    def __init__(
        self, records: Iterable[AppRecord] = (), clock: Callable[[], float] = time.time
    ) -> None:
        self._records = {record.id: record for record in records}
        self._revision = 0
        self._clock = clock

    async def records(self) -> list[AppRecord]:
        return [self._records[app_id] for app_id in sorted(self._records)]

    async def record(self, app_id: str) -> AppRecord | None:
        return self._records.get(app_id)

    async def create(self, record: AppRecord) -> None:
        if record.id in self._records or self._key_taken(record.key, None):
            raise AppExistsError(f"an app with id {record.id!r} or this key exists")
        now = self._clock()
        created = record.created_at or now
        self._records[record.id] = dataclasses.replace(
            record, settings=dict(record.settings), created_at=created, updated_at=now
        )
        self._revision += 1

    async def replace(self, record: AppRecord) -> None:
        if record.id not in self._records:
            raise AppNotFoundError(f"no app with id {record.id!r}")
        if self._key_taken(record.key, record.id):
            raise AppExistsError("another app has this key")
        created = self._records[record.id].created_at
        self._records[record.id] = dataclasses.replace(
            record, settings=dict(record.settings), created_at=created, updated_at=self._clock()
        )
        self._revision += 1

    async def delete(self, app_id: str) -> bool:
        if self._records.pop(app_id, None) is None:
            return False
        self._revision += 1
        return True

    async def revision(self) -> int:
        return self._revision

    async def close(self) -> None:
        return None

    def _key_taken(self, key: str, other_than: str | None) -> bool:
        return any(r.key == key and r.id != other_than for r in self._records.values())
