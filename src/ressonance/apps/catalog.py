"""The apps a node serves, answered from memory and refreshed from an `AppRegistry`.

Rules:
- Lookups (`find_by_id`, `find_by_key`, `all`) read a snapshot: two dicts of resolved
  `App`s. They never touch the registry, so a slow or unreachable database never slows a
  connection or a request.
- `refresh()` polls `registry.revision()`; only when it moved are the records read again
  and resolved with the configured plans. A new snapshot replaces the old one whole.
- A record that cannot be resolved (an unknown plan, a bad setting) is logged and left
  out; the others still load. An unreachable registry keeps the last snapshot.
- After a change, `on_change(before, after)` is told the apps by id before and after, so
  the node can close the connections of apps that were disabled or deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from ressonance.apps.base import AppRecord, AppRegistry, resolve_record
from ressonance.apps.plans import BUILTIN_PLANS, Plan
from ressonance.protocol.app import App
from ressonance.protocol.errors import ConfigError

log = logging.getLogger(__name__)

AppsById = Mapping[str, App]
ChangeListener = Callable[[AppsById, AppsById], Awaitable[None] | None]


class AppCatalog:
    """An `AppStore` over an `AppRegistry`: resolved apps in memory, polled for changes."""

    def __init__(
        self,
        registry: AppRegistry,
        plans: Mapping[str, Plan] = BUILTIN_PLANS,
        on_change: ChangeListener | None = None,
    ) -> None:
        self.registry = registry
        self.plans = plans
        self.on_change = on_change
        self._revision: int | None = None
        self._by_id: AppsById = MappingProxyType({})
        self._by_key: dict[str, App] = {}
        self._failing = False

    async def find_by_id(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)

    async def find_by_key(self, key: str) -> App | None:
        return self._by_key.get(key)

    async def all(self) -> list[App]:
        return [self._by_id[app_id] for app_id in sorted(self._by_id)]

    @property
    def revision(self) -> int | None:
        """The registry revision of the snapshot; None before the first load."""
        return self._revision

    async def refresh(self) -> bool:
        """Reload when the registry's revision moved; True when the snapshot changed.

        Registry errors propagate (the snapshot stays as it was); `run` logs them.
        """
        revision = await self.registry.revision()  # before the records: see AppRegistry
        if revision == self._revision:
            return False
        records = await self.registry.records()
        before = self._by_id
        self._by_id = MappingProxyType(self._resolve_all(records))
        self._by_key = {app.key: app for app in self._by_id.values()}
        first = self._revision is None
        self._revision = revision
        changed = dict(before) != dict(self._by_id)
        if changed and not first:
            log.info("event=apps_changed revision=%d apps=%d", revision, len(self._by_id))
            if self.on_change is not None:
                outcome = self.on_change(before, self._by_id)
                if outcome is not None:
                    await outcome
        return changed

    async def run(self, interval: float) -> None:
        """Refresh every `interval` seconds until cancelled; errors are logged, not raised."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down: keep serving the last snapshot
                if not self._failing:
                    log.warning("event=apps_refresh_failed error=%r (serving the last apps)", exc)
                self._failing = True
            else:
                if self._failing:
                    log.info("event=apps_refresh_recovered")
                self._failing = False

    def _resolve_all(self, records: list[AppRecord]) -> dict[str, App]:
        apps: dict[str, App] = {}
        keys: set[str] = set()
        for record in records:
            app = self._resolve(record)
            if app is None:
                continue
            if app.key in keys:  # only a file store can hold this; the databases refuse it
                log.error("event=app_skipped app_id=%s error='duplicate key'", record.id)
                continue
            keys.add(app.key)
            apps[app.id] = app
        return apps

    def _resolve(self, record: AppRecord) -> App | None:
        try:
            return resolve_record(record, self.plans)
        except (ConfigError, TypeError, ValueError) as exc:
            log.error("event=app_skipped app_id=%s error=%r", record.id, str(exc))
            return None
