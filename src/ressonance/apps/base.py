"""The app store seams.

`AppStore` is what the hot path reads: resolved `App`s by id or key. Implementations must be
safe to call on every connection and request; one that reads a database answers from a cache.

`AppRegistry` is where apps are kept and managed (the CLI and the admin API write to it): raw
`AppRecord`s, each an app's credentials, its plan and its own settings (overrides of the
plan). Nodes notice changes by polling `revision()`, which grows with every write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from ressonance.apps.plans import BUILTIN_PLANS, Plan, resolve
from ressonance.protocol.app import App
from ressonance.protocol.errors import RessonanceError


class AppStore(Protocol):
    """Read access to the apps a node serves."""

    async def find_by_id(self, app_id: str) -> App | None:
        """The app with this id, or None."""
        ...

    async def find_by_key(self, key: str) -> App | None:
        """The app with this key, or None."""
        ...

    async def all(self) -> list[App]:
        """Every app, in a stable order."""
        ...


class AppExistsError(RessonanceError):
    """Another app already has this id or key."""


class AppNotFoundError(RessonanceError):
    """No app has this id."""


class ReadOnlyRegistryError(RessonanceError):
    """This registry cannot be written (the static file store): change the file instead."""


@dataclass(frozen=True, slots=True)
class AppRecord:
    """An app as its registry keeps it. `settings` are the app's own (JSON-compatible) values.

    Registries keep settings as JSON: lists, not tuples, come back. They set `created_at`
    on create (unless given) and `updated_at` on every write; `replace` keeps `created_at`.
    """

    id: str
    key: str
    secret: str = field(repr=False)  # never in logs or tracebacks
    name: str = ""
    enabled: bool = True
    plan: str = ""
    settings: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    created_at: float = 0.0  # Unix seconds
    updated_at: float = 0.0


class AppRegistry(Protocol):
    """Where apps are created, changed and deleted."""

    async def records(self) -> list[AppRecord]:
        """Every app, ordered by id."""
        ...

    async def record(self, app_id: str) -> AppRecord | None:
        """The app with this id, or None."""
        ...

    async def create(self, record: AppRecord) -> None:
        """Add an app; AppExistsError when its id or key is taken."""
        ...

    async def replace(self, record: AppRecord) -> None:
        """Overwrite the app with `record.id`; AppNotFoundError when there is none."""
        ...

    async def delete(self, app_id: str) -> bool:
        """Remove an app; False when there was none."""
        ...

    async def revision(self) -> int:
        """A number that grows with every change (nodes poll it to reload).

        Read it before `records()`: a write between the two is then seen again next time.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def resolve_record(record: AppRecord, plans: Mapping[str, Plan] = BUILTIN_PLANS) -> App:
    """The effective App of a record: its plan's settings, then its own (ConfigError if bad)."""
    return resolve(
        id=record.id,
        key=record.key,
        secret=record.secret,
        name=record.name,
        enabled=record.enabled,
        plan=record.plan,
        overrides=record.settings,
        plans=plans,
    )
