"""Settings: from a TOML file, the environment and command-line flags, validated once at start.

Precedence: command-line flag > environment > config file > default. Apps come from the
config file's `[[apps]]` tables plus one app from `RESSONANCE_APP_*` variables; with none, a
development app is created (and kept in the user's state directory, so its credentials
survive restarts). Every problem raises `ConfigError` naming the key and what is wrong.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Final

from ressonance.protocol import plans
from ressonance.protocol.app import (
    BOOL_SETTINGS,
    CHOICE_SETTINGS,
    INT_SETTINGS,
    UNLIMITED,
    UNLIMITED_SETTINGS,
    App,
)
from ressonance.protocol.errors import ConfigError
from ressonance.server.tls import TlsError, server_context

ENV_PREFIX: Final = "RESSONANCE_APP_"
MAX_CONFIG_BYTES: Final = 1 << 20
_APP_STRINGS: Final = ("id", "key", "secret", "name", "plan")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a node needs to start."""

    host: str = "127.0.0.1"
    port: int = 6001
    apps: tuple[App, ...] = ()
    max_ws_message_kb: int = 256
    max_http_body_kb: int = 256
    max_buffer_kb: int = 1024
    max_buffer_messages: int = 4096
    timer_interval: float = 1.0
    log_level: str = "info"
    backbone: str = "memory://"
    state: str = ""
    key_prefix: str = "ressonance"
    node_ttl: float = 10.0
    drain_seconds: float = 10.0
    workers: int = 1
    tls_cert: str = ""
    tls_key: str = ""
    dev_app: bool = False

    @property
    def tls(self) -> bool:
        """Whether the port serves https:// and wss:// (both files are set)."""
        return bool(self.tls_cert)

    @property
    def state_url(self) -> str:
        """Where shared state lives: `state`, else the backbone when it is Redis."""
        if self.state:
            return self.state
        return self.backbone if self.backbone.startswith(REDIS_SCHEMES) else "memory://"


REDIS_SCHEMES: Final = ("redis://", "rediss://")
BACKBONE_SCHEMES: Final = ("memory://", *REDIS_SCHEMES, "nats://", "tls://")
_SERVER_INTS: Final = (
    "max_ws_message_kb",
    "max_http_body_kb",
    "max_buffer_kb",
    "max_buffer_messages",
    "workers",
)
_SERVER_SECONDS: Final = ("timer_interval", "node_ttl", "drain_seconds")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def load_settings(
    *,
    config_file: str | None = None,
    host: str | None = None,
    port: int | None = None,
    backbone: str | None = None,
    state: str | None = None,
    workers: int | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> Settings:
    """Build the settings of one node, or raise ConfigError."""
    environ = os.environ if environ is None else environ
    document = _read_toml(config_file) if config_file else {}
    unknown = set(document) - {"server", "apps"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown section (expected [server], [[apps]])")
    settings = _server_settings(_table(document.get("server", {}), "server"))
    apps = [_app(_table(raw, f"apps[{i}]"), f"apps[{i}]") for i, raw in enumerate(_apps(document))]
    env_app = app_from_environment(environ)
    if env_app is not None:
        apps.append(env_app)
    _check_unique(apps)
    dev = not apps
    if dev:
        apps.append(development_app(state_dir or _state_dir(environ)))
    settings = replace(
        settings,
        host=host or settings.host,
        port=_port(port, "--port") if port is not None else settings.port,
        backbone=backbone or environ.get("RESSONANCE_BACKBONE") or settings.backbone,
        state=state or environ.get("RESSONANCE_STATE") or settings.state,
        workers=_positive_int(workers, "--workers") if workers is not None else settings.workers,
        tls_cert=tls_cert or settings.tls_cert,
        tls_key=tls_key or settings.tls_key,
        apps=tuple(apps),
        dev_app=dev,
    )
    _check_cluster(settings)
    _check_tls(settings, cert_flag=bool(tls_cert), key_flag=bool(tls_key))
    return settings


def _check_tls(settings: Settings, *, cert_flag: bool, key_flag: bool) -> None:
    """Both TLS files or neither; readable, PEM, and the key matching the certificate."""
    # A setting is named as it was given (a flag or a [server] key); a missing one like its pair.
    cert_where = "--tls-cert" if cert_flag else "server.tls_cert"
    key_where = "--tls-key" if key_flag else "server.tls_key"
    if settings.tls_cert and not settings.tls_key:
        missing = "--tls-key" if cert_flag else "server.tls_key"
        raise ConfigError(f"{missing}: required with {cert_where} (the certificate's private key)")
    if settings.tls_key and not settings.tls_cert:
        missing = "--tls-cert" if key_flag else "server.tls_cert"
        raise ConfigError(f"{missing}: required with {key_where} (the certificate chain)")
    if not settings.tls_cert:
        return
    try:
        server_context(settings.tls_cert, settings.tls_key)
    except TlsError as exc:
        where = cert_where if exc.setting == "cert" else key_where
        raise ConfigError(f"{where}: {exc.message}") from None


def _check_cluster(settings: Settings) -> None:
    """The backbone and state URLs, and what they allow (--workers needs a shared backbone)."""
    if not settings.backbone.startswith(BACKBONE_SCHEMES):
        raise ConfigError(
            f"backbone: {settings.backbone[:60]!r} is not a memory://, redis:// or nats:// URL"
        )
    if not settings.state_url.startswith(("memory://", *REDIS_SCHEMES)):
        raise ConfigError(f"state: {settings.state_url[:60]!r} is not a memory:// or redis:// URL")
    shared = not settings.backbone.startswith("memory://")
    if shared and settings.state_url.startswith("memory://"):
        raise ConfigError(
            'state: a shared backbone needs shared state; set state = "redis://..." '
            "(--state or RESSONANCE_STATE)"
        )
    if settings.workers > 1 and not shared:
        raise ConfigError(
            "workers: several worker processes need a shared backbone "
            "(--backbone redis://... or nats://...), not memory://"
        )


def _read_toml(path: str) -> dict[str, object]:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: config file is larger than 1 MB")
        return tomllib.loads(file.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _table(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table")
    return value


def _apps(document: Mapping[str, object]) -> list[object]:
    apps = document.get("apps", [])
    if not isinstance(apps, list):
        raise ConfigError("apps: expected an array of tables ([[apps]])")
    return apps


def _server_settings(table: dict[str, object]) -> Settings:
    known = {f.name for f in fields(Settings)} - {"apps", "dev_app"}
    values: dict[str, object] = {}
    for name, value in table.items():
        where = f"server.{name}"
        if name not in known:
            raise ConfigError(f"{where}: unknown setting")
        if name == "port":
            values[name] = _port(value, where)
        elif name in _SERVER_INTS:
            values[name] = _positive_int(value, where)
        elif name == "log_level":
            level = _string(value, where).lower()
            if level not in LOG_LEVELS:
                raise ConfigError(f"{where}: must be one of {', '.join(LOG_LEVELS)}")
            values[name] = level
        elif name in _SERVER_SECONDS:
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{where}: must be a positive number of seconds")
            values[name] = float(value)
        else:
            values[name] = _string(value, where)
    return Settings(**values)  # type: ignore[arg-type]


def _app(table: Mapping[str, object], where: str) -> App:
    values: dict[str, object] = {}
    for name, value in table.items():
        values[name] = _app_value(name, value, f"{where}.{name}")
    for required in ("id", "key", "secret"):
        if required not in values:
            raise ConfigError(f"{where}.{required}: required")
    # The app's plan gives its limits; the app's own settings override them.
    identity = {k: values.pop(k) for k in (*_APP_STRINGS, "enabled") if k in values}
    try:
        return plans.resolve(**identity, overrides=values)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def _app_value(name: str, value: object, where: str) -> object:
    if name in _APP_STRINGS:
        return _app_string(name, value, where)
    if name in BOOL_SETTINGS:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false")
        return value
    if name in CHOICE_SETTINGS:
        return _choice(value, CHOICE_SETTINGS[name], where)
    if name in INT_SETTINGS:
        if name in UNLIMITED_SETTINGS and value == UNLIMITED:
            return value
        return _positive_int(value, where)
    if name == "allowed_origins":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f'{where}: must be a list of origins, like ["*.example.com"]')
        return tuple(value)
    raise ConfigError(f"{where}: unknown setting")


def _app_string(name: str, value: object, where: str) -> str:
    text = _string(value, where)
    if name == "id" and not text.isdigit():
        raise ConfigError(f"{where}: must be digits only (the Pusher SDKs reject others)")
    if name != "name" and not text:
        raise ConfigError(f"{where}: must not be empty")
    return text


def _choice(value: object, choices: tuple[str, ...], where: str) -> str:
    text = _string(value, where)
    if text not in choices:
        raise ConfigError(f"{where}: must be one of {', '.join(choices)}, not {text[:20]!r}")
    return text


def _positive_int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: must be a positive integer")
    return value


def _port(value: object, where: str) -> int:
    # Checked here: past 65535 the socket layer raises OverflowError, not a config error.
    port = _positive_int(value, where)
    if port > 65535:
        raise ConfigError(f"{where}: must be a port number from 1 to 65535")
    return port


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a string")
    return value


def app_from_environment(environ: Mapping[str, str]) -> App | None:
    """The app described by `RESSONANCE_APP_*` variables, or None when there is none."""
    names = sorted(k for k in environ if k.startswith(ENV_PREFIX))
    if not names:
        return None
    table: dict[str, object] = {}
    for variable in names:
        setting = variable[len(ENV_PREFIX) :].lower()
        table[setting] = _env_value(setting, environ[variable], variable)
    return _app(table, "environment RESSONANCE_APP")


def _env_value(setting: str, raw: str, variable: str) -> object:
    if setting in BOOL_SETTINGS:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{variable}: must be true or false, not {raw[:20]!r}")
    if setting in INT_SETTINGS:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{variable}: must be an integer, not {raw[:20]!r}") from None
    if setting == "allowed_origins":
        return [part.strip() for part in raw.split(",") if part.strip()]
    if setting in _APP_STRINGS or setting in CHOICE_SETTINGS:
        return raw
    raise ConfigError(f"{variable}: unknown app setting {setting!r}")


def _check_unique(apps: list[App]) -> None:
    for attribute in ("id", "key"):
        seen: set[str] = set()
        for app in apps:
            value = getattr(app, attribute)
            if value in seen:
                raise ConfigError(f"apps: two apps share the {attribute} {value!r}")
            seen.add(value)


def _state_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ressonance"


def development_app(state_dir: Path) -> App:
    """The development app: created once with random credentials, reused afterwards."""
    path = state_dir / "dev-app.json"
    try:
        saved = json.loads(path.read_text())
        return App(id=saved["id"], key=saved["key"], secret=saved["secret"], name="development")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    app = App(
        id=str(100000 + secrets.randbelow(900000)),
        key=secrets.token_hex(10),
        secret=secrets.token_hex(16),
        name="development",
    )
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"id": app.id, "key": app.key, "secret": app.secret}))
        path.chmod(0o600)
    except OSError:
        pass  # a read-only home: the app still works, with new credentials next start
    return app
