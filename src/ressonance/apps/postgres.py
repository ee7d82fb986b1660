"""Apps in PostgreSQL (`postgresql://...`): one store for a fleet of nodes.

Guarantees:
- Every write is one transaction that also bumps the revision (a one-row table), so a node
  that sees the new revision reads the write with it. Writers queue on that row's lock.
- Reads are single statements; polling the revision is one indexed row read per node per
  refresh interval.
- The schema is migrated when the store opens, under a transaction-scoped advisory lock, so
  nodes starting together migrate once (apps/migrations.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import asyncpg

from ressonance.apps.base import AppExistsError, AppNotFoundError, AppRecord
from ressonance.apps.migrations import POSTGRES_LOCK_ID, SCHEMA_TABLE, pending
from ressonance.apps.rows import COLUMNS, record_from_row, settings_json

# Polling and the occasional write need little; a small pool also survives one bad connection.
POOL_MAX_SIZE: Final = 4
CONNECT_TIMEOUT: Final = 10.0
BUMP: Final = "UPDATE ressonance_apps_revision SET revision = revision + 1 WHERE id = 1"


class PostgresAppRegistry:
    """An `AppRegistry` in a PostgreSQL database; open it with `PostgresAppRegistry.open`."""

    def __init__(self, pool: asyncpg.Pool, clock: Callable[[], float] = time.time) -> None:
        self._pool = pool
        self._clock = clock

    @classmethod
    async def open(cls, url: str, clock: Callable[[], float] = time.time) -> PostgresAppRegistry:
        """Connect to `url` and migrate the schema."""
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=POOL_MAX_SIZE, timeout=CONNECT_TIMEOUT
        )
        try:
            async with pool.acquire() as connection, connection.transaction():
                await _migrate(connection)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, clock)

    async def records(self) -> list[AppRecord]:
        rows = await self._pool.fetch(f"SELECT {COLUMNS} FROM ressonance_apps ORDER BY id")
        return [record_from_row(tuple(row.values())) for row in rows]

    async def record(self, app_id: str) -> AppRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {COLUMNS} FROM ressonance_apps WHERE id = $1", app_id
        )
        return None if row is None else record_from_row(tuple(row.values()))

    async def create(self, record: AppRecord) -> None:
        now = self._clock()
        async with self._pool.acquire() as connection, connection.transaction():
            try:
                await connection.execute(
                    f"INSERT INTO ressonance_apps ({COLUMNS})"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)",
                    *(record.id, record.key, record.secret, record.name, record.enabled),
                    *(record.plan, settings_json(record), record.created_at or now, now),
                )
            except asyncpg.UniqueViolationError:
                raise AppExistsError(
                    f"an app with id {record.id!r} or key {record.key!r} exists"
                ) from None
            await connection.execute(BUMP)

    async def replace(self, record: AppRecord) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            try:
                status = await connection.execute(
                    "UPDATE ressonance_apps SET key = $2, secret = $3, name = $4, enabled = $5,"
                    " plan = $6, settings = $7::jsonb, updated_at = $8 WHERE id = $1",
                    *(record.id, record.key, record.secret, record.name, record.enabled),
                    *(record.plan, settings_json(record), self._clock()),
                )
            except asyncpg.UniqueViolationError:
                raise AppExistsError(f"another app has the key {record.key!r}") from None
            if status == "UPDATE 0":
                raise AppNotFoundError(f"no app with id {record.id!r}")
            await connection.execute(BUMP)

    async def delete(self, app_id: str) -> bool:
        async with self._pool.acquire() as connection, connection.transaction():
            status = await connection.execute("DELETE FROM ressonance_apps WHERE id = $1", app_id)
            if status == "DELETE 0":
                return False
            await connection.execute(BUMP)
        return True

    async def revision(self) -> int:
        value = await self._pool.fetchval("SELECT revision FROM ressonance_apps_revision")
        return int(value) if value is not None else 0

    async def close(self) -> None:
        await self._pool.close()


async def _migrate(connection: asyncpg.Connection) -> None:
    # Held until the transaction ends: nodes starting together migrate one after the other.
    await connection.execute("SELECT pg_advisory_xact_lock($1)", POSTGRES_LOCK_ID)
    await connection.execute(
        f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER NOT NULL)"
    )
    current = await connection.fetchval(f"SELECT coalesce(max(version), 0) FROM {SCHEMA_TABLE}")
    for migration in pending(int(current)):
        for statement in migration.postgres:
            await connection.execute(statement)
        await connection.execute(
            f"INSERT INTO {SCHEMA_TABLE} (version) VALUES ($1)", migration.version
        )
