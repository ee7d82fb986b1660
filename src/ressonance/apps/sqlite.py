"""Apps in a SQLite file: the embedded default (`sqlite:///ressonance.db`).

Guarantees:
- Every write is one `BEGIN IMMEDIATE` transaction that also bumps the revision, so a node
  that sees the new revision reads the write with it, and writers from several processes
  (nodes, workers, the `apps` CLI) take turns instead of failing.
- WAL journal mode: readers (every node polls the revision) never block the writer.
- A busy database is waited for (`busy_timeout`), not reported as an error; so is a switch to
  WAL that collides with another connection's (retried, since SQLite does not wait for it).
- The schema is migrated when the store opens (apps/migrations.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import aiosqlite

from ressonance.apps.base import AppExistsError, AppNotFoundError, AppRecord
from ressonance.apps.migrations import SCHEMA_TABLE, pending
from ressonance.apps.rows import COLUMNS, record_from_row, settings_json

BUSY_TIMEOUT_MS: Final = 10_000
WAL_ATTEMPTS: Final = 100  # of switching to WAL, WAL_RETRY_SECONDS apart (5 s at most)
WAL_RETRY_SECONDS: Final = 0.05


class SqliteAppRegistry:
    """An `AppRegistry` in one SQLite database file; open it with `SqliteAppRegistry.open`."""

    def __init__(self, db: aiosqlite.Connection, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    @classmethod
    async def open(
        cls, path: str | Path, clock: Callable[[], float] = time.time
    ) -> SqliteAppRegistry:
        """Open (creating it if needed) and migrate the database at `path`."""
        # isolation_level=None: no implicit transactions; each write says BEGIN IMMEDIATE.
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await _wal_mode(db)
            await db.execute("PRAGMA synchronous = NORMAL")
            await _migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db, clock)

    async def records(self) -> list[AppRecord]:
        async with self._db.execute(f"SELECT {COLUMNS} FROM ressonance_apps ORDER BY id") as rows:
            return [record_from_row(tuple(row)) for row in await rows.fetchall()]

    async def record(self, app_id: str) -> AppRecord | None:
        sql = f"SELECT {COLUMNS} FROM ressonance_apps WHERE id = ?"
        async with self._db.execute(sql, (app_id,)) as rows:
            row = await rows.fetchone()
        return None if row is None else record_from_row(tuple(row))

    async def create(self, record: AppRecord) -> None:
        now = self._clock()
        values = (
            *(record.id, record.key, record.secret, record.name, record.enabled, record.plan),
            *(settings_json(record), record.created_at or now, now),
        )
        async with self._write():
            try:
                await self._db.execute(
                    f"INSERT INTO ressonance_apps ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
            except sqlite3.IntegrityError:
                raise AppExistsError(
                    f"an app with id {record.id!r} or key {record.key!r} exists"
                ) from None

    async def replace(self, record: AppRecord) -> None:
        values = (
            *(record.key, record.secret, record.name, record.enabled, record.plan),
            *(settings_json(record), self._clock(), record.id),
        )
        async with self._write():
            try:
                cursor = await self._db.execute(
                    "UPDATE ressonance_apps SET key = ?, secret = ?, name = ?, enabled = ?,"
                    " plan = ?, settings = ?, updated_at = ? WHERE id = ?",
                    values,
                )
            except sqlite3.IntegrityError:
                raise AppExistsError(f"another app has the key {record.key!r}") from None
            if cursor.rowcount == 0:
                raise AppNotFoundError(f"no app with id {record.id!r}")

    async def delete(self, app_id: str) -> bool:
        async with self._write() as write:
            cursor = await self._db.execute("DELETE FROM ressonance_apps WHERE id = ?", (app_id,))
            write.changed = cursor.rowcount > 0
        return write.changed

    async def revision(self) -> int:
        async with self._db.execute("SELECT revision FROM ressonance_apps_revision") as rows:
            row = await rows.fetchone()
        return int(row[0]) if row is not None else 0

    async def close(self) -> None:
        await self._db.close()

    def _write(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """`BEGIN IMMEDIATE` ... bump the revision (if `changed`), `COMMIT`; rolled back on error."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self.changed = True

    async def __aenter__(self) -> _Transaction:
        await self._db.execute("BEGIN IMMEDIATE")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            await self._db.execute("ROLLBACK")
            return
        if self.changed:
            await self._db.execute(
                "UPDATE ressonance_apps_revision SET revision = revision + 1 WHERE id = 1"
            )
        await self._db.execute("COMMIT")


async def _wal_mode(db: aiosqlite.Connection) -> None:
    """Switch to WAL, retrying while another connection switches it at the same moment.

    The switch needs an exclusive lock, and SQLite answers "database is locked" at once rather
    than wait (busy_timeout) when two connections escalate together, as nodes and workers
    opening a new database at the same time do.
    """
    for attempt in range(WAL_ATTEMPTS):
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_ATTEMPTS - 1:
                raise
            await asyncio.sleep(WAL_RETRY_SECONDS)


async def _migrate(db: aiosqlite.Connection) -> None:
    await db.execute("BEGIN IMMEDIATE")  # one node migrates; the others wait, then find it done
    try:
        await db.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER NOT NULL)")
        async with db.execute(f"SELECT max(version) FROM {SCHEMA_TABLE}") as rows:
            row = await rows.fetchone()
        current = int(row[0]) if row is not None and row[0] is not None else 0
        for migration in pending(current):
            for statement in migration.sqlite:
                await db.execute(statement)
            await db.execute(
                f"INSERT INTO {SCHEMA_TABLE} (version) VALUES (?)", (migration.version,)
            )
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
