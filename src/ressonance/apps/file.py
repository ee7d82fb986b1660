"""Static apps: the `[[apps]]` tables of a TOML file, plus fixed apps (from the environment).

The file is the source of truth and this registry only reads it: writes raise
`ReadOnlyRegistryError` naming the file. Editing the file takes effect without a restart:
`revision()` looks at the file's modification time and size, and reads it again when they
change. A file that no longer parses keeps the last good apps (and the problem is logged),
so a half-saved edit never takes every app offline.

The file may be the node's own config file: tables other than `[[apps]]` are ignored here.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from ressonance.apps.base import AppRecord, ReadOnlyRegistryError
from ressonance.apps.plans import setting_value
from ressonance.apps.settings import json_value
from ressonance.protocol.errors import ConfigError

log = logging.getLogger(__name__)

MAX_FILE_BYTES: Final = 1 << 20
_RECORD_STRINGS: Final = ("id", "key", "secret", "name", "plan")


class FileAppRegistry:
    """A read-only `AppRegistry` over a TOML file's `[[apps]]` and some fixed records."""

    def __init__(self, path: str | Path | None, fixed: Iterable[AppRecord] = ()) -> None:
        self.path = Path(path) if path is not None else None
        self._fixed = list(fixed)
        self._stamp: tuple[int, int] | None = None
        self._revision = 0
        self._records: dict[str, AppRecord] = {}
        self._load(raise_errors=True)

    async def records(self) -> list[AppRecord]:
        self._reload_if_changed()
        return [self._records[app_id] for app_id in sorted(self._records)]

    async def record(self, app_id: str) -> AppRecord | None:
        self._reload_if_changed()
        return self._records.get(app_id)

    async def create(self, record: AppRecord) -> None:
        raise self._read_only()

    async def replace(self, record: AppRecord) -> None:
        raise self._read_only()

    async def delete(self, app_id: str) -> bool:
        raise self._read_only()

    async def revision(self) -> int:
        self._reload_if_changed()
        return self._revision

    async def close(self) -> None:
        return None

    def _read_only(self) -> ReadOnlyRegistryError:
        where = f"edit {self.path}" if self.path is not None else "change the environment"
        return ReadOnlyRegistryError(
            f"the static app store is read-only: {where}, or use a sqlite:/// or "
            "postgresql:// apps URL to manage apps at runtime"
        )

    def _reload_if_changed(self) -> None:
        if self.path is not None and self._file_stamp() != self._stamp:
            self._load(raise_errors=False)

    def _file_stamp(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            status = self.path.stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size

    def _load(self, *, raise_errors: bool) -> None:
        stamp = self._file_stamp() if self.path is not None else None
        try:
            loaded = [*self._fixed, *(read_apps_file(self.path) if self.path else ())]
            records = unique_by_id(loaded)
        except ConfigError as exc:
            if raise_errors:
                raise
            log.error(
                "event=apps_file_invalid path=%s error=%r (keeping the last good apps)",
                self.path,
                str(exc),
            )
            self._stamp = stamp  # reported once per edit, not on every poll
            return
        self._stamp = stamp
        if records != self._records:
            self._records = records
            self._revision += 1


def read_apps_file(path: Path) -> list[AppRecord]:
    """The `[[apps]]` of the TOML file at `path`, checked; ConfigError on any problem."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: apps file is larger than 1 MB")
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read apps file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    tables = document.get("apps", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: apps: expected an array of tables ([[apps]])")
    return [record_from_table(table, f"apps[{i}]") for i, table in enumerate(tables)]


def record_from_table(table: object, where: str) -> AppRecord:
    """An AppRecord from one `[[apps]]` table (or the environment's app), checked."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    strings: dict[str, str] = {}
    settings: dict[str, object] = {}
    enabled = True
    for name, value in table.items():
        if name in _RECORD_STRINGS:
            strings[name] = _record_string(name, value, f"{where}.{name}")
        elif name == "enabled":
            enabled = bool(setting_value(name, value, f"{where}.{name}"))
        else:
            settings[name] = json_value(setting_value(name, value, f"{where}.{name}"))
    for required in ("id", "key", "secret"):
        if required not in strings:
            raise ConfigError(f"{where}.{required}: required")
    return AppRecord(
        id=strings["id"],
        key=strings["key"],
        secret=strings["secret"],
        name=strings.get("name", ""),
        enabled=enabled,
        plan=strings.get("plan", ""),
        settings=settings,
    )


def _record_string(name: str, value: object, where: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # `id = 100001` in TOML is a number: the commonest slip in an [[apps]] table.
        raise ConfigError(f'{where}: must be a string (quote it: {name} = "{value}")')
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a string")
    if name == "id" and not value.isdigit():
        raise ConfigError(f"{where}: must be digits only (the Pusher SDKs reject others)")
    if name not in ("name", "plan") and not value:
        raise ConfigError(f"{where}: must not be empty")
    return value


def unique_by_id(records: list[AppRecord]) -> dict[str, AppRecord]:
    """The records by id; ConfigError when two share an id or a key."""
    for attribute in ("id", "key"):
        seen: set[str] = set()
        for record in records:
            value = getattr(record, attribute)
            if value in seen:
                raise ConfigError(f"apps: two apps share the {attribute} {value!r}")
            seen.add(value)
    return {record.id: record for record in records}
