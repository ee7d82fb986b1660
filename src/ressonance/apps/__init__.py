"""App stores: where tenants' credentials and settings live.

`open_registry(url)` opens the registry a URL names (ARCHITECTURE.md "Backends, picked by URL"):

- `sqlite:///ressonance.db` (a relative path) or `sqlite:////var/lib/ressonance/apps.db`
  (absolute): a SQLite file, the embedded default;
- `postgresql://user:pass@host:5432/db` or `postgres://...`: PostgreSQL, for a fleet;
- `file:apps.toml`, `file:///etc/ressonance/apps.toml` or a plain path to a `.toml` file:
  the static `[[apps]]` of a TOML file (read-only, reloaded when the file changes).

Backends are imported only when their URL is used; a missing driver is reported with the
extra that installs it. A SQLite file is created 0600 and tightened if found looser
(apps/private_files.py): it holds every app's secret.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ressonance.apps.base import AppRegistry
from ressonance.apps.migrations import SchemaTooNewError
from ressonance.protocol.errors import ConfigError
from ressonance.protocol.urls import redacted_url

REGISTRY_SCHEMES = ("sqlite:///", "postgresql://", "postgres://", "file:")
SHOWN_LIMIT = 120  # characters of an app store URL shown in a message


async def open_registry(url: str, *, setting: str = "apps") -> AppRegistry:
    """The app registry `url` names, opened (and migrated); ConfigError when it cannot be.

    `setting` is how errors name where the URL came from (a flag or a config key).
    """
    match _scheme(url):
        case "sqlite":
            path = sqlite_path(url, setting)
            return await _guarded(_open_sqlite(path, setting), setting)
        case "postgresql" | "postgres":
            return await _guarded(_open_postgres(url, setting), setting)
        case "file":
            from ressonance.apps.file import FileAppRegistry

            return FileAppRegistry(file_path(url, setting))
        case _:
            raise ConfigError(
                f"{setting}: {redacted_url(url, SHOWN_LIMIT)!r} is not an app store URL "
                "(sqlite:///path.db, postgresql://... or a .toml file)"
            )


async def _guarded(opening: Awaitable[AppRegistry], setting: str) -> AppRegistry:
    try:
        return await opening
    except SchemaTooNewError as exc:
        raise ConfigError(f"{setting}: {exc}") from None


def _scheme(url: str) -> str:
    if "://" in url:
        return url.split("://", 1)[0].lower()
    if url.lower().startswith("file:"):
        return "file"
    if url.endswith(".toml"):
        return "file"  # a plain path to a TOML file
    return ""


def sqlite_path(url: str, setting: str = "apps") -> str:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` URL."""
    if not url.lower().startswith("sqlite:///"):
        raise ConfigError(
            f"{setting}: {url[:60]!r}: a SQLite URL has three slashes and a path, "
            "like sqlite:///ressonance.db (relative) or sqlite:////var/lib/ressonance.db"
        )
    rest = url[len("sqlite:///") :]
    if "?" in rest or "#" in rest:
        raise ConfigError(f"{setting}: {url[:60]!r}: SQLite URLs take no query or fragment")
    path = unquote(rest)
    if not path or path.endswith("/"):
        raise ConfigError(f"{setting}: {url[:60]!r}: no database file after sqlite:///")
    return path


def file_path(url: str, setting: str = "apps") -> Path:
    """The file of a `file:` URL or a plain path; it must exist."""
    if url.lower().startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{setting}: {url[:60]!r}: only local files (file:///path)")
        path = Path(unquote(parts.path))
    elif url.lower().startswith("file:"):
        path = Path(unquote(url[len("file:") :]))
    else:
        path = Path(url)
    if not path.is_file():
        raise ConfigError(f"{setting}: {str(path)[:80]!r}: no such apps file")
    return path


async def _open_sqlite(path: str, setting: str) -> AppRegistry:
    try:
        from ressonance.apps.sqlite import SqliteAppRegistry
    except ImportError:
        raise ConfigError(
            f"{setting}: sqlite:// needs aiosqlite: pip install 'ressonance[sqlite]'"
        ) from None
    import sqlite3

    from ressonance.apps.private_files import private_sqlite_file

    # Checked first: a failed connect leaves aiosqlite's worker thread talking to a loop
    # that may be gone, and the usual causes deserve a plainer message anyway.
    problem = _sqlite_file_problem(path)
    if problem:
        raise ConfigError(f"{setting}: cannot open the SQLite database {path!r} ({problem})")
    try:
        if path != ":memory:":
            private_sqlite_file(Path(path))  # it holds every app's secret: 0600
        return await SqliteAppRegistry.open(path)
    except OSError as exc:
        raise ConfigError(
            f"{setting}: cannot open the SQLite database {path!r} ({exc.strerror})"
        ) from None
    except sqlite3.Error as exc:
        raise ConfigError(f"{setting}: cannot open the SQLite database {path!r} ({exc})") from None


def _sqlite_file_problem(path: str) -> str:
    if path == ":memory:":
        return ""
    file = Path(path)
    if file.exists():
        return "" if os.access(file, os.R_OK | os.W_OK) else "not readable and writable"
    parent = file.parent
    if not parent.is_dir():
        return f"the directory {str(parent)!r} does not exist"
    return "" if os.access(parent, os.W_OK | os.X_OK) else "its directory is not writable"


async def _open_postgres(url: str, setting: str) -> AppRegistry:
    try:
        from ressonance.apps.postgres import PostgresAppRegistry
    except ImportError:
        raise ConfigError(
            f"{setting}: postgresql:// needs asyncpg: pip install 'ressonance[postgres]'"
        ) from None
    import asyncpg

    try:
        return await PostgresAppRegistry.open(url)
    except (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        shown = redacted_url(url, SHOWN_LIMIT)
        raise ConfigError(
            f"{setting}: cannot open the PostgreSQL app store {shown} ({exc})"
        ) from None


__all__ = ["REGISTRY_SCHEMES", "SHOWN_LIMIT", "file_path", "open_registry", "sqlite_path"]
