"""Settings: from a TOML file, the environment and command-line flags, validated once at start.

Precedence: command-line flag > environment > config file > default. Every problem raises
`ConfigError` naming the key and what is wrong. The connection limits (deadlines, head sizes,
connections per address, reserved descriptors: `_CONNECTION_KEYS`) are also read from
`RESSONANCE_<KEY>` variables, checked as their TOML values are. This module only loads and
checks; where apps come from and how their registry is opened is apps/sourcing.py
(`Settings.app_source` names the source). Giving both an apps URL and static apps is an error.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Final

from ressonance.apps.base import AppRecord, resolve_record
from ressonance.apps.file import record_from_table, unique_by_id
from ressonance.apps.plans import BUILTIN_PLANS, Plan
from ressonance.apps.sourcing import AppSource, environment_record, state_directory
from ressonance.backbone.wire import (
    VERSION as BACKBONE_WIRE_VERSION,
    VERSIONS as BACKBONE_WIRE_VERSIONS,
)
from ressonance.protocol.app import UNLIMITED, App
from ressonance.protocol.errors import ConfigError
from ressonance.server.admission import AdmissionLimits
from ressonance.server.limits import ConnectionLimits
from ressonance.server.proxies import parse_networks
from ressonance.server.tls import TlsError, server_context
from ressonance.state import REDIS_SCHEMES, SCHEMES as STATE_SCHEMES

MAX_CONFIG_BYTES: Final = 1 << 20
_PLAN_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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
    backbone_wire_version: int = BACKBONE_WIRE_VERSION
    drain_seconds: float = 10.0
    workers: int = 1
    tls_cert: str = ""
    tls_key: str = ""
    max_connections_per_ip_per_sec: int = 60
    max_node_connections: int = UNLIMITED
    max_loop_lag_ms: int = 2000
    trusted_proxies: tuple[str, ...] = ()
    # Connection limits (issue "Hold the line under hostile traffic"; see server.limits).
    first_byte_timeout: float = 10.0
    request_timeout: float = 10.0
    min_request_bytes_per_sec: int = 100
    keepalive_timeout: float = 75.0
    upgrade_timeout: float = 10.0
    max_request_head_kb: int = 16
    max_request_line_kb: int = 8
    max_pending_connections_per_ip: int = 1024
    reserved_descriptors: int = 128
    dev_app: bool = False
    # Where apps live: "" is the static apps, or the embedded default when there are none.
    apps_url: str = ""
    apps_refresh_seconds: float = 1.0
    # The operator's [plans.NAME] tables (the built-in `free` plan is always there).
    plans: tuple[Plan, ...] = ()
    # The static apps as records: the config file holding them, and the environment's app.
    apps_file: str = ""
    env_apps: tuple[AppRecord, ...] = ()
    state_dir: str = field(default="", repr=False)
    # The admin API's bearer token ("" = the admin API is off); never in a repr.
    admin_token: str = field(default="", repr=False)
    admin_token_file: str = ""

    @property
    def plan_map(self) -> dict[str, Plan]:
        """Every plan by name: the built-in ones, replaced or extended by the operator's."""
        return {**BUILTIN_PLANS, **{plan.name: plan for plan in self.plans}}

    @property
    def app_source(self) -> AppSource:
        """Where the apps come from, for apps.sourcing to open."""
        return AppSource(
            url=self.apps_url,
            static=bool(self.apps),
            file=self.apps_file,
            fixed=self.env_apps,
            state_dir=Path(self.state_dir),
        )

    @property
    def registry_url(self) -> str:
        """The URL of the app registry ("" when the only app is the environment's)."""
        return self.app_source.registry_url

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

    @property
    def admission(self) -> AdmissionLimits:
        """The limits on new WebSockets (abuse protection)."""
        return AdmissionLimits(
            max_connections_per_ip_per_sec=self.max_connections_per_ip_per_sec,
            max_node_connections=self.max_node_connections,
            max_loop_lag_ms=self.max_loop_lag_ms,
            trusted_proxies=self.trusted_proxies,
        )

    @property
    def connection_limits(self) -> ConnectionLimits:
        """What a connection may cost before it is a session (hostile traffic)."""
        return ConnectionLimits(
            first_byte_timeout=self.first_byte_timeout,
            request_timeout=self.request_timeout,
            min_request_bytes_per_sec=self.min_request_bytes_per_sec,
            keepalive_timeout=self.keepalive_timeout,
            upgrade_timeout=self.upgrade_timeout,
            max_request_head_bytes=self.max_request_head_kb * 1024,
            max_request_line_bytes=self.max_request_line_kb * 1024,
            max_pending_connections_per_ip=self.max_pending_connections_per_ip,
            reserved_descriptors=self.reserved_descriptors,
            trusted_proxies=self.trusted_proxies,
        )


BACKBONE_SCHEMES: Final = ("memory://", "redis://", "rediss://", "nats://", "tls://")
_SERVER_INTS: Final = (
    "max_ws_message_kb",
    "max_http_body_kb",
    "max_buffer_kb",
    "max_buffer_messages",
    "workers",
    "max_request_head_kb",
    "max_request_line_kb",
    "reserved_descriptors",
)
_SERVER_SECONDS: Final = (
    "timer_interval",
    "node_ttl",
    "drain_seconds",
    "apps_refresh_seconds",
    "first_byte_timeout",
    "request_timeout",
    "keepalive_timeout",
    "upgrade_timeout",
)
# Server limits that take -1 (UNLIMITED) for "no limit".
_SERVER_LIMITS: Final = (
    "max_connections_per_ip_per_sec",
    "max_node_connections",
    "max_loop_lag_ms",
    "min_request_bytes_per_sec",
    "max_pending_connections_per_ip",
)
# [server] keys also read from RESSONANCE_<KEY> (the environment wins over the file).
_CONNECTION_KEYS: Final = (
    "first_byte_timeout",
    "request_timeout",
    "min_request_bytes_per_sec",
    "keepalive_timeout",
    "upgrade_timeout",
    "max_request_head_kb",
    "max_request_line_kb",
    "max_pending_connections_per_ip",
    "reserved_descriptors",
)
# Settings fields that are not [server] keys: filled from other sections or derived.
_NOT_SERVER_KEYS: Final = (
    "apps",
    "dev_app",
    "apps_url",
    "plans",
    "apps_file",
    "env_apps",
    "state_dir",
)
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
_NEVER: Final = 1e9  # seconds: past it (or inf, nan) a duration is a mistake


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
    apps: str | None = None,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> Settings:
    """Build the settings of one node, or raise ConfigError."""
    environ = os.environ if environ is None else environ
    # One variable `serve` and `ressonance apps` both read, so they find the same app store.
    config_file = config_file or environ.get("RESSONANCE_CONFIG") or None
    document = _read_toml(config_file) if config_file else {}
    unknown = set(document) - {"server", "apps", "plans"}
    if unknown:
        raise ConfigError(
            f"{sorted(unknown)[0]}: unknown section (expected [server], [[apps]], [plans.NAME])"
        )
    server = _table(document.get("server", {}), "server")
    settings = _server_settings({**server, **_connection_environment(environ)})
    plans = _plans(_table(document.get("plans", {}), "plans"))
    records = [record_from_table(raw, f"apps[{i}]") for i, raw in enumerate(_apps(document))]
    apps_file = str(Path(config_file).resolve()) if config_file and records else ""
    env_record = environment_record(environ)
    if env_record is not None:
        records.append(env_record)
    unique_by_id(records)
    apps_url = apps or environ.get("RESSONANCE_APPS") or settings.apps_url
    if apps_url and records:
        raise ConfigError(_BOTH_APP_SOURCES)
    settings = replace(
        settings,
        host=host or settings.host,
        port=_port(port, "--port") if port is not None else settings.port,
        backbone=backbone or environ.get("RESSONANCE_BACKBONE") or settings.backbone,
        state=state or environ.get("RESSONANCE_STATE") or settings.state,
        backbone_wire_version=_wire_version(
            environ["RESSONANCE_BACKBONE_WIRE_VERSION"], "RESSONANCE_BACKBONE_WIRE_VERSION"
        )
        if environ.get("RESSONANCE_BACKBONE_WIRE_VERSION")
        else settings.backbone_wire_version,
        workers=_positive_int(workers, "--workers") if workers is not None else settings.workers,
        tls_cert=tls_cert or settings.tls_cert,
        tls_key=tls_key or settings.tls_key,
        apps_url=apps_url,
        plans=plans,
        apps_file=apps_file,
        env_apps=(env_record,) if env_record is not None else (),
        state_dir=str(state_dir or state_directory(environ)),
        dev_app=not apps_url and not records,
    )
    settings = replace(settings, apps=_resolved(records, settings.plan_map, env_record))
    _check_cluster(settings)
    _check_tls(settings, cert_flag=bool(tls_cert), key_flag=bool(tls_key))
    return replace(settings, admin_token=admin_token(settings, environ))


MIN_ADMIN_TOKEN_LENGTH: Final = 16
MAX_ADMIN_TOKEN_LENGTH: Final = 512
_TOKEN_HINT: Final = (
    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


def admin_token(settings: Settings, environ: Mapping[str, str]) -> str:
    """The admin API's token: RESSONANCE_ADMIN_TOKEN, else the token file, else the table."""
    if settings.admin_token and settings.admin_token_file:
        raise ConfigError("server.admin_token: set admin_token or admin_token_file, not both")
    if environ.get("RESSONANCE_ADMIN_TOKEN"):
        return _check_token(environ["RESSONANCE_ADMIN_TOKEN"], "RESSONANCE_ADMIN_TOKEN")
    if settings.admin_token_file:
        where = "server.admin_token_file"
        try:
            with open(settings.admin_token_file, "rb") as file:
                raw = file.read(MAX_ADMIN_TOKEN_LENGTH + 2)
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot read {settings.admin_token_file} ({exc.strerror})"
            ) from None
        return _check_token(raw.decode(errors="replace").strip(), where)
    if settings.admin_token:
        return _check_token(settings.admin_token, "server.admin_token")
    return ""


def _check_token(token: str, where: str) -> str:
    if not MIN_ADMIN_TOKEN_LENGTH <= len(token) <= MAX_ADMIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{where}: must be {MIN_ADMIN_TOKEN_LENGTH} to {MAX_ADMIN_TOKEN_LENGTH} characters; "
            + _TOKEN_HINT
        )
    if not all("!" <= char <= "~" for char in token):
        raise ConfigError(f"{where}: printable ASCII without spaces only; {_TOKEN_HINT}")
    return token


_BOTH_APP_SOURCES: Final = (
    "apps: an apps URL (--apps, RESSONANCE_APPS or [server] apps) and static apps ([[apps]] "
    "tables or RESSONANCE_APP_* variables) are both set; use one: move the static apps into "
    "the registry (`ressonance apps create`), or drop the apps URL"
)


def _plans(table: Mapping[str, object]) -> tuple[Plan, ...]:
    """The `[plans.NAME]` tables, each checked: known settings with values of their type."""
    plans = []
    for name, settings in table.items():
        if not _PLAN_NAME.match(name):
            raise ConfigError(
                f"plans.{name[:40]}: a plan name is 1-64 lowercase letters, digits, - or _"
            )
        plans.append(Plan(name, dict(_table(settings, f"plans.{name}"))))
    return tuple(plans)


def _resolved(
    records: list[AppRecord], plans: Mapping[str, Plan], env_record: AppRecord | None
) -> tuple[App, ...]:
    """The static apps with their plans applied; an unknown plan is an error at start."""
    apps = []
    for index, record in enumerate(records):
        where = "RESSONANCE_APP" if record is env_record else f"apps[{index}]"
        try:
            apps.append(resolve_record(record, plans))
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None
    return tuple(apps)


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
    if not settings.state_url.startswith(STATE_SCHEMES):
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
    known = {f.name for f in fields(Settings)} - set(_NOT_SERVER_KEYS)
    values: dict[str, object] = {}
    for name, value in table.items():
        where = f"server.{name}"
        if name == "apps":  # the apps URL
            values["apps_url"] = _string(value, where)
            continue
        if name not in known:
            raise ConfigError(f"{where}: unknown setting")
        values[name] = _server_value(name, value, where)
    return Settings(**values)  # type: ignore[arg-type]


def _connection_environment(environ: Mapping[str, str]) -> dict[str, object]:
    """The `_CONNECTION_KEYS` set in the environment, as numbers (checked with the rest)."""
    values: dict[str, object] = {}
    for name in _CONNECTION_KEYS:
        variable = f"RESSONANCE_{name.upper()}"
        raw = environ.get(variable)
        if raw is None:
            continue
        try:
            value = float(raw) if name in _SERVER_SECONDS else int(raw)
        except ValueError:
            kind = "a number of seconds" if name in _SERVER_SECONDS else "an integer"
            raise ConfigError(f"{variable}: must be {kind}, not {raw[:40]!r}") from None
        values[name] = _server_value(name, value, variable)
    return values


def _server_value(name: str, value: object, where: str) -> object:
    if name == "port":
        return _port(value, where)
    if name in _SERVER_INTS:
        return _positive_int(value, where)
    if name in _SERVER_LIMITS:
        return _limit(value, where)
    if name == "backbone_wire_version":
        return _wire_version(value, where)
    if name == "trusted_proxies":
        return _trusted_proxies(value, where)
    if name == "log_level":
        level = _string(value, where).lower()
        if level not in LOG_LEVELS:
            raise ConfigError(f"{where}: must be one of {', '.join(LOG_LEVELS)}")
        return level
    if name in _SERVER_SECONDS:
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < _NEVER:
            raise ConfigError(f"{where}: must be a positive number of seconds")
        return float(value)
    return _string(value, where)


def _wire_version(value: object, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value not in BACKBONE_WIRE_VERSIONS or isinstance(value, bool):
        versions = " or ".join(str(v) for v in BACKBONE_WIRE_VERSIONS)
        raise ConfigError(f"{where}: must be {versions}")
    return int(str(value))


def _positive_int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: must be a positive integer")
    return value


def _limit(value: object, where: str) -> int:
    if value == UNLIMITED and not isinstance(value, bool):
        return UNLIMITED
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: must be a positive integer, or -1 for no limit")
    return value


def _trusted_proxies(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where}: must be a list of addresses or CIDRs, like ["10.0.0.0/8"]')
    try:
        parse_networks(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return tuple(value)


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
