"""The `[server]` keys: each one's kind, flag and `RESSONANCE_*` variable, and its checks.

`SERVER_KEYS` is the schema of the `[server]` table; the environment table of
docs/configuration.md lists the same keys and variables (a test holds them equal).

Rules:
1. A key is read from three places, and the first that sets it wins: its command-line flag
   (for the few that have one), its variable `RESSONANCE_<KEY>` (an empty one is unset), the
   `[server]` table. Set nowhere, it keeps the default of `Settings`.
2. A variable's text is read as the key's kind says (an integer, seconds, a comma-separated
   list), then checked like a TOML value; every error starts with where the value came from:
   the flag, the variable or `server.<key>`.
3. Every `RESSONANCE_*` variable means something: a key's, `RESSONANCE_CONFIG` (the file,
   read by the command line), `RESSONANCE_DEBUG` (`log_level = "debug"`), or one of an
   app's `RESSONANCE_APP_*` (apps/sourcing.py). Any other is an error naming the closest
   variable, as a misspelt app variable is.
4. The admin token is one setting given two ways: a variable for either
   (`RESSONANCE_ADMIN_TOKEN`, `RESSONANCE_ADMIN_TOKEN_FILE`) replaces both keys of the table.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

from ressonance.backbone.wire import VERSIONS as BACKBONE_WIRE_VERSIONS
from ressonance.protocol.app import UNLIMITED
from ressonance.protocol.errors import ConfigError
from ressonance.server.admission import PER_IP_RATE_MODES
from ressonance.server.proxies import parse_networks
from ressonance.server.webhook_networks import NetworkPolicy

ENV_PREFIX: Final = "RESSONANCE_"
APP_PREFIX: Final = "RESSONANCE_APP_"
CONFIG_VARIABLE: Final = "RESSONANCE_CONFIG"
DEBUG_VARIABLE: Final = "RESSONANCE_DEBUG"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
_NEVER: Final = 1e9  # seconds: past it (or inf, nan) a duration is a mistake
_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("0", "false", "no", "off")
_TOKEN_KEYS: Final = ("admin_token", "admin_token_file")


class Kind(Enum):
    """What a key's value is, which says how a variable's text is read and how it is checked."""

    TEXT = "text"
    PORT = "port"
    COUNT = "count"  # a positive integer
    LIMIT = "limit"  # a positive integer, or -1 for no limit
    SECONDS = "seconds"
    LOG_LEVEL = "log_level"
    WIRE_VERSION = "wire_version"
    ADDRESSES = "addresses"  # IP addresses and CIDR blocks
    NETWORKS = "networks"  # where webhooks may go: public, private, loopback or CIDR blocks
    PER_IP_RATE_WHEN = "per_ip_rate_when"


@dataclass(frozen=True, slots=True)
class ServerKey:
    """One `[server]` key."""

    name: str
    kind: Kind
    flag: str = ""  # the `serve` flag that sets it, if any

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def field(self) -> str:
        """Its name in `Settings` (the apps URL is `apps_url`: `apps` are the static apps)."""
        return "apps_url" if self.name == "apps" else self.name

    def check(self, value: object, where: str) -> object:
        return _CHECKS[self.kind](value, where)

    def read(self, text: str, where: str) -> object:
        """A variable's text as a value of this key's kind (checked afterwards)."""
        if self.kind in (Kind.PORT, Kind.COUNT, Kind.LIMIT):
            try:
                return int(text)
            except ValueError:
                raise ConfigError(f"{where}: must be an integer, not {text[:40]!r}") from None
        if self.kind is Kind.SECONDS:
            try:
                return float(text)
            except ValueError:
                raise ConfigError(
                    f"{where}: must be a number of seconds, not {text[:40]!r}"
                ) from None
        if self.kind in (Kind.ADDRESSES, Kind.NETWORKS):
            return [part.strip() for part in text.split(",") if part.strip()]
        return text


_K = Kind
# In the order of docs/configuration.md's tables.
SERVER_KEYS: Final = {
    key.name: key
    for key in (
        ServerKey("host", _K.TEXT, "--host"),
        ServerKey("port", _K.PORT, "--port"),
        ServerKey("log_level", _K.LOG_LEVEL, "--log-level"),
        ServerKey("max_ws_message_kb", _K.COUNT),
        ServerKey("max_http_body_kb", _K.COUNT),
        ServerKey("max_buffer_kb", _K.COUNT),
        ServerKey("max_buffer_messages", _K.COUNT),
        ServerKey("backbone", _K.TEXT, "--backbone"),
        ServerKey("state", _K.TEXT, "--state"),
        ServerKey("key_prefix", _K.TEXT),
        ServerKey("node_ttl", _K.SECONDS),
        ServerKey("backbone_wire_version", _K.WIRE_VERSION),
        ServerKey("drain_seconds", _K.SECONDS),
        ServerKey("workers", _K.COUNT, "--workers"),
        ServerKey("tls_cert", _K.TEXT, "--tls-cert"),
        ServerKey("tls_key", _K.TEXT, "--tls-key"),
        ServerKey("timer_interval", _K.SECONDS),
        ServerKey("max_connections_per_ip_per_sec", _K.LIMIT),
        ServerKey("per_ip_rate_when", _K.PER_IP_RATE_WHEN),
        ServerKey("trusted_proxies", _K.ADDRESSES),
        ServerKey("max_node_connections", _K.LIMIT),
        ServerKey("max_loop_lag_ms", _K.LIMIT),
        ServerKey("first_byte_timeout", _K.SECONDS),
        ServerKey("request_timeout", _K.SECONDS),
        ServerKey("min_request_bytes_per_sec", _K.LIMIT),
        ServerKey("keepalive_timeout", _K.SECONDS),
        ServerKey("upgrade_timeout", _K.SECONDS),
        ServerKey("max_request_head_kb", _K.COUNT),
        ServerKey("max_request_line_kb", _K.COUNT),
        ServerKey("max_pending_connections_per_ip", _K.LIMIT),
        ServerKey("reserved_descriptors", _K.COUNT),
        ServerKey("apps", _K.TEXT, "--apps"),
        ServerKey("apps_refresh_seconds", _K.SECONDS),
        ServerKey("admin_token", _K.TEXT),
        ServerKey("admin_token_file", _K.TEXT),
        ServerKey("webhook_retry_window", _K.SECONDS),
        ServerKey("webhook_retry_initial", _K.SECONDS),
        ServerKey("webhook_retry_max", _K.SECONDS),
        ServerKey("webhook_timeout", _K.SECONDS),
        ServerKey("webhook_batch_size", _K.COUNT),
        ServerKey("webhook_batch_wait", _K.SECONDS),
        ServerKey("webhook_concurrency", _K.COUNT),
        ServerKey("webhook_leave_delay", _K.SECONDS),
        ServerKey("webhook_allowed_networks", _K.NETWORKS),
    )
}
VARIABLES: Final = frozenset(
    {key.variable for key in SERVER_KEYS.values()} | {CONFIG_VARIABLE, DEBUG_VARIABLE}
)


@dataclass(frozen=True, slots=True)
class ServerValues:
    """The keys set somewhere, checked: values by `Settings` field, and where each was set."""

    values: dict[str, object]
    origins: dict[str, str]  # by key: "--flag", "RESSONANCE_KEY" or "server.key"

    def origin(self, name: str) -> str:
        return self.origins.get(name, f"server.{name}")


def read_server_keys(
    table: Mapping[str, object], environ: Mapping[str, str], flags: Mapping[str, object]
) -> ServerValues:
    """Every key's value from its flag, variable or `table` (rule 1), checked."""
    check_variables(environ)
    for name in table:
        if name not in SERVER_KEYS:
            raise ConfigError(f"server.{name}: unknown setting")
    if any(environ.get(SERVER_KEYS[name].variable) for name in _TOKEN_KEYS):
        table = {name: value for name, value in table.items() if name not in _TOKEN_KEYS}
    environ = {**environ, **_debug_level(environ)}
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for key in SERVER_KEYS.values():
        flag_value = flags.get(key.name)
        text = environ.get(key.variable, "")
        if flag_value is not None and flag_value != "":
            where, value = key.flag, flag_value
        elif text:
            where = key.variable
            value = key.read(text, where)
        elif key.name in table:
            where, value = f"server.{key.name}", table[key.name]
        else:
            continue
        values[key.field] = key.check(value, where)
        origins[key.name] = where
    return ServerValues(values, origins)


def check_variables(environ: Mapping[str, str]) -> None:
    """A `RESSONANCE_*` variable that means nothing is an error (rule 3)."""
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in VARIABLES or name.startswith(APP_PREFIX):
            continue
        close = difflib.get_close_matches(name, sorted(VARIABLES), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"{name}: unknown variable; {hint}each [server] key has one, RESSONANCE_ and the "
            "key in capitals (see the environment table in docs/configuration.md); unset it"
        )


def _debug_level(environ: Mapping[str, str]) -> dict[str, str]:
    """`RESSONANCE_DEBUG=1` as `RESSONANCE_LOG_LEVEL=debug` (Soketi's `SOKETI_DEBUG=1`)."""
    text = environ.get(DEBUG_VARIABLE, "").strip().lower()
    if text not in _TRUE + _FALSE + ("",):
        raise ConfigError(f"{DEBUG_VARIABLE}: must be 1 or 0 (or true or false), not {text[:20]!r}")
    if text not in _TRUE:
        return {}
    level_variable = SERVER_KEYS["log_level"].variable
    level = environ.get(level_variable, "").strip().lower()
    if level not in ("", "debug"):
        raise ConfigError(
            f"{DEBUG_VARIABLE}: turns on debug logs, but {level_variable} is {level!r}; "
            "set one of the two"
        )
    return {level_variable: "debug"}


# --- checks, by kind ------------------------------------------------------------------------


def positive_int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: must be a positive integer")
    return value


def port(value: object, where: str) -> int:
    # Checked here: past 65535 the socket layer raises OverflowError, not a config error.
    number = positive_int(value, where)
    if number > 65535:
        raise ConfigError(f"{where}: must be a port number from 1 to 65535")
    return number


def wire_version(value: object, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value not in BACKBONE_WIRE_VERSIONS or isinstance(value, bool):
        versions = " or ".join(str(v) for v in BACKBONE_WIRE_VERSIONS)
        raise ConfigError(f"{where}: must be {versions}")
    return int(str(value))


def string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a string")
    return value


def _limit(value: object, where: str) -> int:
    if value == UNLIMITED and not isinstance(value, bool):
        return UNLIMITED
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: must be a positive integer, or -1 for no limit")
    return value


def _seconds(value: object, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < _NEVER:
        raise ConfigError(f"{where}: must be a positive number of seconds")
    return float(value)


def _log_level(value: object, where: str) -> str:
    level = string(value, where).lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{where}: must be one of {', '.join(LOG_LEVELS)}")
    return level


def _per_ip_rate_when(value: object, where: str) -> str:
    mode = string(value, where)
    if mode not in PER_IP_RATE_MODES:
        raise ConfigError(f"{where}: must be one of {', '.join(PER_IP_RATE_MODES)}")
    return mode


def _trusted_proxies(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where}: must be a list of addresses or CIDRs, like ["10.0.0.0/8"]')
    try:
        parse_networks(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return tuple(value)


def _webhook_networks(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f'{where}: must be a list of "public", "private", "loopback" or CIDRs, like ["public"]'
        )
    try:
        NetworkPolicy.parse(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return tuple(value)


_CHECKS: Final[dict[Kind, Callable[[object, str], object]]] = {
    Kind.TEXT: string,
    Kind.PORT: port,
    Kind.COUNT: positive_int,
    Kind.LIMIT: _limit,
    Kind.SECONDS: _seconds,
    Kind.LOG_LEVEL: _log_level,
    Kind.WIRE_VERSION: wire_version,
    Kind.ADDRESSES: _trusted_proxies,
    Kind.NETWORKS: _webhook_networks,
    Kind.PER_IP_RATE_WHEN: _per_ip_rate_when,
}
