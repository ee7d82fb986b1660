"""Where a node's apps come from, and the registry that holds them, opened.

One source, never two, so that no app is defined twice (config.py refuses both at once):
- an apps URL (`--apps`, `RESSONANCE_APPS`, `[server] apps`): a SQLite or PostgreSQL
  registry, or a TOML file of `[[apps]]`;
- else the static apps: the config file's `[[apps]]` tables plus one app from
  `RESSONANCE_APP_*` variables, or from Soketi's `SOKETI_DEFAULT_APP_*` ones read as their
  aliases (one set or the other, never both; the file is watched: edits apply without a
  restart);
- else the embedded default, a SQLite registry in the user's state directory
  (`~/.local/state/ressonance/ressonance.db`), where a development app is created on first
  start, so its credentials survive restarts wherever the server is started from.

Rules: this module takes plain values (URLs, paths, an environment mapping), never the
settings object, since apps/ sits below config.py; the command line passes them in. A state
directory that cannot be created is logged and replaced by a database in memory. The state
directory is 0700 and the database in it 0600 (apps/private_files.py).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ressonance.apps import open_registry
from ressonance.apps.base import AppRecord, AppRegistry, resolve_record
from ressonance.apps.file import FileAppRegistry, record_from_table
from ressonance.apps.plans import BUILTIN_PLANS, OWN_SETTINGS, Plan
from ressonance.apps.private_files import private_directory
from ressonance.apps.settings import text_value
from ressonance.protocol.app import (
    BOOL_SETTINGS,
    CHOICE_SETTINGS,
    INT_SETTINGS,
    LIST_SETTINGS,
    App,
)
from ressonance.protocol.errors import ConfigError

log = logging.getLogger(__name__)

ENV_PREFIX: Final = "RESSONANCE_APP_"
# Soketi's default-app variables, read as aliases of ours (docs/howto/migrate.md): suffix ->
# our setting. Soketi's other SOKETI_DEFAULT_APP_* (webhooks) have no alias: an error.
SOKETI_PREFIX: Final = "SOKETI_DEFAULT_APP_"
SOKETI_SETTINGS: Final = {
    "ID": "id",
    "KEY": "key",
    "SECRET": "secret",
    "ENABLED": "enabled",
    "ENABLE_CLIENT_MESSAGES": "enable_client_messages",
    "MAX_CONNS": "max_connections",
    "MAX_BACKEND_EVENTS_PER_SEC": "max_backend_events_per_sec",
    "MAX_CLIENT_EVENTS_PER_SEC": "max_client_events_per_sec",
    "MAX_READ_REQ_PER_SEC": "max_read_requests_per_sec",
}
DEFAULT_DATABASE: Final = "ressonance.db"
DEV_APP_NAME: Final = "development"
_APP_STRINGS: Final = ("id", "key", "secret", "name", "plan")


@dataclass(frozen=True, slots=True)
class AppSource:
    """The one place a node's apps come from (see the module docstring for the order).

    `url` is the apps URL ("" for none); `static` says static apps are configured, kept in
    a file store over `file` (the config file with `[[apps]]`, "" for none) and `fixed`
    (the environment's app); `state_dir` holds the embedded default.
    """

    url: str = ""
    static: bool = False
    file: str = ""
    fixed: tuple[AppRecord, ...] = ()
    state_dir: Path = Path()

    @property
    def registry_url(self) -> str:
        """The URL of the app registry: the apps URL, else the config file with the static
        apps (`file:...`), else the embedded SQLite default in the state directory. "" when
        the only app comes from `RESSONANCE_APP_*` variables (nothing to open by URL)."""
        if self.url:
            return self.url
        if self.file:
            return f"file:{self.file}"
        if self.static:
            return ""
        return default_registry_url(self.state_dir)


def default_registry_url(state_dir: Path) -> str:
    """The embedded default registry: a SQLite file in the state directory."""
    return f"sqlite:///{state_dir / DEFAULT_DATABASE}"


def state_directory(environ: Mapping[str, str]) -> Path:
    """The user's state directory: `$XDG_STATE_HOME/ressonance`, else ~/.local/state/ressonance."""
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ressonance"


# --- the environment's app -------------------------------------------------------------------


def environment_record(environ: Mapping[str, str]) -> AppRecord | None:
    """The app described by `RESSONANCE_APP_*` variables (or Soketi's `SOKETI_DEFAULT_APP_*`),
    or None when there is none."""
    names = sorted(k for k in environ if k.startswith(ENV_PREFIX))
    soketi = sorted(k for k in environ if k.startswith(SOKETI_PREFIX))
    if names and soketi:
        raise ConfigError(
            f"{soketi[0]}: the environment's app is described by both RESSONANCE_APP_* and "
            "SOKETI_DEFAULT_APP_* variables; keep one set"
        )
    if soketi:
        return _soketi_record(environ, soketi)
    if not names:
        return None
    table: dict[str, object] = {}
    for variable in names:
        setting = variable[len(ENV_PREFIX) :].lower()
        table[setting] = _env_value(setting, environ[variable], variable)
    return record_from_table(table, "environment RESSONANCE_APP")


def _soketi_record(environ: Mapping[str, str], names: list[str]) -> AppRecord:
    """Soketi's default app, read as ours, so a Soketi deployment's environment keeps working;
    an error names the Soketi variable."""
    table: dict[str, object] = {}
    for variable in names:
        setting = SOKETI_SETTINGS.get(variable[len(SOKETI_PREFIX) :])
        if setting is None:
            raise ConfigError(
                f"{variable}: not read by Ressonance; the SOKETI_DEFAULT_APP_* variables it "
                f"reads are {', '.join(SOKETI_PREFIX + s for s in SOKETI_SETTINGS)} "
                "(see docs/howto/migrate.md)"
            )
        table[setting] = _env_value(setting, environ[variable], variable)
    try:
        return record_from_table(table, "SOKETI_DEFAULT_APP")
    except ConfigError as exc:
        message = str(exc)
        for suffix, setting in SOKETI_SETTINGS.items():
            message = message.replace(
                f"SOKETI_DEFAULT_APP.{setting}:", SOKETI_PREFIX + suffix + ":"
            )
        raise ConfigError(message) from None


def app_from_environment(
    environ: Mapping[str, str], plans: Mapping[str, Plan] = BUILTIN_PLANS
) -> App | None:
    """The environment's app with its plan applied, or None when there is none."""
    record = environment_record(environ)
    return None if record is None else resolve_record(record, plans)


def _env_value(setting: str, raw: str, variable: str) -> object:
    if setting in (*BOOL_SETTINGS, *INT_SETTINGS, *CHOICE_SETTINGS, *LIST_SETTINGS, *OWN_SETTINGS):
        return text_value(setting, raw, variable)
    if setting in _APP_STRINGS:
        return raw
    raise ConfigError(f"{variable}: unknown app setting {setting!r}")


# --- the registry and the development app ------------------------------------------------------


async def open_app_registry(source: AppSource) -> AppRegistry:
    """The registry `source` names, opened (and migrated).

    For the embedded default, the state directory is created and, when the registry holds
    no app yet, a development app is added. A state directory that cannot be created (a
    read-only home) falls back to a database in memory: the server still starts, with a new
    development app each time, as before there was a registry.
    """
    if source.url:
        return await open_registry(source.url)
    if source.static:
        return FileAppRegistry(source.file or None, fixed=source.fixed)
    registry = await open_registry(_embedded_registry_url(source.state_dir))
    try:
        await ensure_development_app(registry, source.state_dir)
    except BaseException:
        await registry.close()
        raise
    return registry


def _embedded_registry_url(state_dir: Path) -> str:
    try:
        private_directory(state_dir)  # 0700: it holds the app store and its secrets
    except OSError as exc:
        log.warning("event=state_dir_unwritable path=%s error=%r", state_dir, str(exc))
        return "sqlite:///:memory:"
    return default_registry_url(state_dir)


async def ensure_development_app(registry: AppRegistry, state_dir: Path) -> AppRecord | None:
    """Add the development app to an empty registry; the app added, or None."""
    if await registry.records():
        return None
    record = development_app(state_dir)
    await registry.create(record)
    return record


def development_app(state_dir: Path) -> AppRecord:
    """Credentials for a new development app: random, or those of an earlier version's
    `dev-app.json` in the state directory, so upgrading keeps a developer's app working."""
    try:
        saved = json.loads((state_dir / "dev-app.json").read_text())
        return AppRecord(
            id=str(saved["id"]),
            key=str(saved["key"]),
            secret=str(saved["secret"]),
            name=DEV_APP_NAME,
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return AppRecord(
        id=str(100000 + secrets.randbelow(900000)),
        key=secrets.token_hex(10),
        secret=secrets.token_hex(16),
        name=DEV_APP_NAME,
    )
