"""The ConnectionCounter seam: how many connections each app has open, cluster-wide.

Each node counts the connections it holds; the total of an app is the sum over the nodes
that are alive. Guarantees:
- `acquire` checks the limit and counts the new connection in one atomic step, so nodes
  admitting connections at the same time never take an app past its limit together.
- A node that stops heartbeating stops counting once its registration expires (the store's
  node TTL): a crashed node's connections do not hold its apps' quotas forever.
- After a lapse (`heartbeat` returned False: first beat, or the store lost this node's
  registration), the node writes its true counts again with `restore`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class ConnectionCounter(Protocol):
    async def acquire(self, app_id: str, limit: int) -> int | None:
        """Count one more connection of `app_id` on this node, unless the app already has
        `limit` (-1: no limit) across the cluster; the new cluster-wide total, or None when
        refused (nothing counted)."""
        ...

    async def release(self, app_id: str) -> None:
        """One connection of `app_id` on this node closed (never counts below zero)."""
        ...

    async def count(self, app_id: str) -> int:
        """The app's open connections across the nodes that are alive."""
        ...

    async def heartbeat(self) -> bool:
        """Keep this node's counts alive; False when its registration had lapsed."""
        ...

    async def restore(self, counts: Mapping[str, int]) -> None:
        """Set this node's counts to `counts` (app id -> open connections); apps not in
        `counts` have none here."""
        ...
