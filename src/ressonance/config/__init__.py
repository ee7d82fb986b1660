"""Settings: from a TOML file, the environment and command-line flags, validated once at start.

Precedence: command-line flag > environment > config file > default. Every problem raises
`ConfigError` naming the key (or the flag or variable) and what is wrong. Every `[server]`
key is also read from `RESSONANCE_<KEY>`; the keys, their kinds, flags and variables are
`server_keys.SERVER_KEYS`, and an unknown `RESSONANCE_*` variable is an error. This module
only loads and checks; where apps come from and how their registry is opened is
apps/sourcing.py (`Settings.app_source` names the source). Giving both an apps URL and static
apps is an error.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from ressonance.apps.base import AppRecord, resolve_record
from ressonance.apps.file import record_from_table, unique_by_id
from ressonance.apps.plans import BUILTIN_PLANS, Plan
from ressonance.apps.sourcing import AppSource, environment_record, state_directory
from ressonance.backbone.wire import VERSION as BACKBONE_WIRE_VERSION
from ressonance.config.server_keys import (
    LOG_LEVELS as LOG_LEVELS,
    ServerValues,
    read_server_keys,
)
from ressonance.protocol.app import UNLIMITED, App
from ressonance.protocol.errors import ConfigError
from ressonance.server.admission import UNDER_PRESSURE, AdmissionLimits
from ressonance.server.limits import ConnectionLimits
from ressonance.server.tls import TlsError, server_context
from ressonance.server.webhook_networks import DEFAULT_ALLOWED
from ressonance.server.webhook_settings import WebhookSettings
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
    per_ip_rate_when: str = UNDER_PRESSURE
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
    # Webhook delivery (server/webhook_settings.py).
    webhook_retry_window: float = 86_400.0
    webhook_retry_initial: float = 1.0
    webhook_retry_max: float = 600.0
    webhook_timeout: float = 10.0
    webhook_batch_size: int = 50
    webhook_batch_wait: float = 0.05
    webhook_concurrency: int = 4
    webhook_leave_delay: float = 3.0
    webhook_allowed_networks: tuple[str, ...] = DEFAULT_ALLOWED

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
    def webhooks(self) -> WebhookSettings:
        """How webhooks are delivered (a lane's lease lasts as long as the node's)."""
        return WebhookSettings(
            retry_window=self.webhook_retry_window,
            retry_initial=self.webhook_retry_initial,
            retry_max=self.webhook_retry_max,
            timeout=self.webhook_timeout,
            batch_size=self.webhook_batch_size,
            batch_wait=self.webhook_batch_wait,
            concurrency=self.webhook_concurrency,
            leave_delay=self.webhook_leave_delay,
            allowed_networks=self.webhook_allowed_networks,
            lease_ttl=self.node_ttl,
        )

    @property
    def admission(self) -> AdmissionLimits:
        """The limits on new WebSockets (abuse protection)."""
        return AdmissionLimits(
            max_connections_per_ip_per_sec=self.max_connections_per_ip_per_sec,
            max_node_connections=self.max_node_connections,
            max_loop_lag_ms=self.max_loop_lag_ms,
            trusted_proxies=self.trusted_proxies,
            per_ip_rate_when=self.per_ip_rate_when,
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
    log_level: str | None = None,
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
    flags = {
        "host": host,
        "port": port,
        "backbone": backbone,
        "state": state,
        "workers": workers,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "apps": apps,
        "log_level": log_level,
    }
    server = read_server_keys(_table(document.get("server", {}), "server"), environ, flags)
    settings = Settings(**server.values)  # type: ignore[arg-type]
    plans = _plans(_table(document.get("plans", {}), "plans"))
    records = [record_from_table(raw, f"apps[{i}]") for i, raw in enumerate(_apps(document))]
    apps_file = str(Path(config_file).resolve()) if config_file and records else ""
    env_record = environment_record(environ)
    if env_record is not None:
        records.append(env_record)
    unique_by_id(records)
    if settings.apps_url and records:
        raise ConfigError(_BOTH_APP_SOURCES)
    settings = replace(
        settings,
        plans=plans,
        apps_file=apps_file,
        env_apps=(env_record,) if env_record is not None else (),
        state_dir=str(state_dir or state_directory(environ)),
        dev_app=not settings.apps_url and not records,
    )
    settings = replace(settings, apps=_resolved(records, settings.plan_map, env_record))
    _check_cluster(settings)
    _check_tls(settings, server)
    return replace(settings, admin_token=admin_token(settings, server))


MIN_ADMIN_TOKEN_LENGTH: Final = 16
MAX_ADMIN_TOKEN_LENGTH: Final = 512
_TOKEN_HINT: Final = (
    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


def admin_token(settings: Settings, server: ServerValues) -> str:
    """The admin API's token: the token file's, else the token (a variable for either wins
    over both keys of the table: `server_keys` rule 4)."""
    if settings.admin_token and settings.admin_token_file:
        where = server.origin("admin_token")
        raise ConfigError(f"{where}: set admin_token or admin_token_file, not both")
    if settings.admin_token_file:
        where = server.origin("admin_token_file")
        try:
            with open(settings.admin_token_file, "rb") as file:
                raw = file.read(MAX_ADMIN_TOKEN_LENGTH + 2)
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot read {settings.admin_token_file} ({exc.strerror})"
            ) from None
        return _check_token(raw.decode(errors="replace").strip(), where)
    if settings.admin_token:
        return _check_token(settings.admin_token, server.origin("admin_token"))
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


def _check_tls(settings: Settings, server: ServerValues) -> None:
    """Both TLS files or neither; readable, PEM, and the key matching the certificate."""
    # A setting is named as it was given (a flag, a variable or a [server] key); a missing one
    # like its pair.
    cert_where, key_where = server.origin("tls_cert"), server.origin("tls_key")
    if settings.tls_cert and not settings.tls_key:
        raise ConfigError(
            f"{_pair_of(cert_where)}: required with {cert_where} (the certificate's private key)"
        )
    if settings.tls_key and not settings.tls_cert:
        raise ConfigError(
            f"{_pair_of(key_where)}: required with {key_where} (the certificate chain)"
        )
    if not settings.tls_cert:
        return
    try:
        server_context(settings.tls_cert, settings.tls_key)
    except TlsError as exc:
        where = cert_where if exc.setting == "cert" else key_where
        raise ConfigError(f"{where}: {exc.message}") from None


def _pair_of(where: str) -> str:
    """The TLS setting that goes with `where`, named the same way (flag, variable or key)."""
    for cert, key in (
        ("--tls-cert", "--tls-key"),
        ("TLS_CERT", "TLS_KEY"),
        ("tls_cert", "tls_key"),
    ):
        if cert in where:
            return where.replace(cert, key)
        if key in where:
            return where.replace(key, cert)
    return where  # pragma: no cover - every origin names one of them


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
