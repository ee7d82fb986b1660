"""The app stores' schema, as numbered migrations applied in order (SQLite and PostgreSQL).

Rules:
- A migration, once released, never changes; a schema change is a new migration with the
  next number. Each runs in one transaction together with the bump of
  `ressonance_schema.version`, so a crash leaves the database at a whole version.
- Opening a store applies whatever is pending. Two nodes starting at once are serialized by
  the database (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock),
  and the second finds nothing left to do.
- A database newer than this code (a higher version) is refused rather than misread.
- Tables are prefixed `ressonance_` so the store can share a database with other software.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ressonance.protocol.errors import RessonanceError

SCHEMA_TABLE: Final = "ressonance_schema"
# Any fixed 64-bit number: the PostgreSQL advisory lock that serializes migrations.
POSTGRES_LOCK_ID: Final = 0x7265_7373_6F6E_0001


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


MIGRATIONS: Final = (
    Migration(
        1,
        "apps and the revision nodes poll",
        sqlite=(
            """
            CREATE TABLE ressonance_apps (
                id TEXT PRIMARY KEY,
                key TEXT NOT NULL UNIQUE,
                secret TEXT NOT NULL,
                name TEXT NOT NULL DEFAULT '',
                enabled INTEGER NOT NULL DEFAULT 1,
                plan TEXT NOT NULL DEFAULT '',
                settings TEXT NOT NULL DEFAULT '{}',
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )
            """,
            """
            CREATE TABLE ressonance_apps_revision (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                revision INTEGER NOT NULL
            )
            """,
            "INSERT INTO ressonance_apps_revision (id, revision) VALUES (1, 0)",
        ),
        postgres=(
            """
            CREATE TABLE ressonance_apps (
                id TEXT PRIMARY KEY,
                key TEXT NOT NULL UNIQUE,
                secret TEXT NOT NULL,
                name TEXT NOT NULL DEFAULT '',
                enabled BOOLEAN NOT NULL DEFAULT TRUE,
                plan TEXT NOT NULL DEFAULT '',
                settings JSONB NOT NULL DEFAULT '{}',
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE ressonance_apps_revision (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                revision BIGINT NOT NULL
            )
            """,
            "INSERT INTO ressonance_apps_revision (id, revision) VALUES (1, 0)",
        ),
    ),
)

LATEST: Final = MIGRATIONS[-1].version


class SchemaTooNewError(RessonanceError):
    """The database was migrated by a newer Ressonance than this one."""


def pending(current: int) -> list[Migration]:
    """The migrations a database at version `current` still needs, in order."""
    if current > LATEST:
        raise SchemaTooNewError(
            f"the app store's schema is at version {current}, newer than this Ressonance "
            f"knows ({LATEST}); upgrade Ressonance"
        )
    return [migration for migration in MIGRATIONS if migration.version > current]
