"""The AppStore seam: looking apps up by id or key.

Implementations must be safe to call on every connection and request; a store that reads
a remote database caches its answers.
"""

from __future__ import annotations

from typing import Protocol

from ressonance.protocol.app import App


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
