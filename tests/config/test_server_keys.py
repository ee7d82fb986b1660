"""Every `[server]` key from its `RESSONANCE_*` variable: flag > environment > file.

Each key is set through its variable with a value that is not its default and read back from
the settings a node starts with; the environment table of docs/configuration.md lists the
same variables; a variable that means nothing is an error.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ressonance.config import Settings, load_settings
from ressonance.config.server_keys import SERVER_KEYS, VARIABLES, Kind
from ressonance.protocol.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TOKEN = "admin-token-0123456789"


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate and its key."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "a.crt", directory / "a.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"),
            *("ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def load(tmp_path: Path, environ: dict[str, str], **flags: object) -> Settings:
    return load_settings(environ=environ, state_dir=tmp_path / "state", **flags)  # type: ignore[arg-type]


def error(tmp_path: Path, environ: dict[str, str], **flags: object) -> str:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, environ, **flags)
    return str(raised.value)


REDIS = {"RESSONANCE_BACKBONE": "redis://127.0.0.1:6399/0"}
# key -> (the variable's text, the value the settings hold, other variables it needs)
SAMPLES: dict[str, tuple[str, object, dict[str, str]]] = {
    "host": ("0.0.0.0", "0.0.0.0", {}),
    "port": ("6299", 6299, {}),
    "log_level": ("WARNING", "warning", {}),
    "max_ws_message_kb": ("64", 64, {}),
    "max_http_body_kb": ("128", 128, {}),
    "max_buffer_kb": ("512", 512, {}),
    "max_buffer_messages": ("100", 100, {}),
    "backbone": (
        "nats://127.0.0.1:4222",
        "nats://127.0.0.1:4222",
        {"RESSONANCE_STATE": "redis://r"},
    ),
    "state": ("redis://127.0.0.1:6399/1", "redis://127.0.0.1:6399/1", {}),
    "key_prefix": ("tenant-a", "tenant-a", {}),
    "node_ttl": ("4.5", 4.5, {}),
    "backbone_wire_version": ("1", 1, {}),
    "drain_seconds": ("30", 30.0, {}),
    "workers": ("4", 4, REDIS),
    "tls_cert": ("{cert}", "{cert}", {"RESSONANCE_TLS_KEY": "{key}"}),
    "tls_key": ("{key}", "{key}", {"RESSONANCE_TLS_CERT": "{cert}"}),
    "timer_interval": ("0.5", 0.5, {}),
    "max_connections_per_ip_per_sec": ("-1", -1, {}),
    "per_ip_rate_when": ("always", "always", {}),
    "trusted_proxies": (
        " 10.0.0.0/8, 127.0.0.1 ,",
        ("10.0.0.0/8", "127.0.0.1"),
        {},
    ),
    "max_node_connections": ("5000", 5000, {}),
    "max_loop_lag_ms": ("500", 500, {}),
    "first_byte_timeout": ("3", 3.0, {}),
    "request_timeout": ("4", 4.0, {}),
    "min_request_bytes_per_sec": ("-1", -1, {}),
    "keepalive_timeout": ("5.5", 5.5, {}),
    "upgrade_timeout": ("6", 6.0, {}),
    "max_request_head_kb": ("32", 32, {}),
    "max_request_line_kb": ("4", 4, {}),
    "max_pending_connections_per_ip": ("16", 16, {}),
    "reserved_descriptors": ("256", 256, {}),
    "apps": ("sqlite:///apps.db", "sqlite:///apps.db", {}),
    "apps_refresh_seconds": ("2", 2.0, {}),
    "admin_token": (TOKEN, TOKEN, {}),
    "admin_token_file": ("{token_file}", "{token_file}", {}),
    "webhook_retry_window": ("3600", 3600.0, {}),
    "webhook_retry_initial": ("0.5", 0.5, {}),
    "webhook_retry_max": ("60", 60.0, {}),
    "webhook_timeout": ("5", 5.0, {}),
    "webhook_batch_size": ("10", 10, {}),
    "webhook_batch_wait": ("0.1", 0.1, {}),
    "webhook_concurrency": ("2", 2, {}),
    "webhook_leave_delay": ("1.5", 1.5, {}),
    "webhook_allowed_networks": ("public, 10.0.0.0/8", ("public", "10.0.0.0/8"), {}),
}


def test_every_key_has_a_sample() -> None:
    assert list(SAMPLES) == list(SERVER_KEYS)


@pytest.mark.parametrize("name", list(SERVER_KEYS))
def test_every_key_is_read_from_its_variable(
    tmp_path: Path, pem: tuple[str, str], name: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    paths = {"cert": pem[0], "key": pem[1], "token_file": str(token_file)}
    text, expected, needs = SAMPLES[name]
    variable = SERVER_KEYS[name].variable
    environ = {k: v.format(**paths) for k, v in {**needs, variable: text}.items()}
    if isinstance(expected, str):
        expected = expected.format(**paths)

    settings = load(tmp_path, environ)

    assert variable == "RESSONANCE_" + name.upper()
    assert getattr(settings, SERVER_KEYS[name].field) == expected
    if name == "admin_token_file":
        assert settings.admin_token == TOKEN


NUMBERS = [
    name
    for name, key in SERVER_KEYS.items()
    if key.kind in (Kind.COUNT, Kind.LIMIT, Kind.SECONDS, Kind.PORT) and name != "workers"
]


@pytest.mark.parametrize("name", NUMBERS)
def test_the_variable_wins_over_the_file(tmp_path: Path, name: str) -> None:
    key = SERVER_KEYS[name]
    config = tmp_path / "server.toml"
    config.write_text(f"[server]\n{name} = 7\n")
    from_file = load_settings(config_file=str(config), environ={}, state_dir=tmp_path)
    from_env = load_settings(
        config_file=str(config), environ={key.variable: "8"}, state_dir=tmp_path
    )

    assert getattr(from_file, key.field) == 7
    assert getattr(from_env, key.field) == 8


def test_flags_win_over_variables(tmp_path: Path) -> None:
    environ = {
        "RESSONANCE_HOST": "0.0.0.0",
        "RESSONANCE_PORT": "6299",
        "RESSONANCE_LOG_LEVEL": "error",
        "RESSONANCE_APPS": "sqlite:///env.db",
    }
    settings = load(
        tmp_path, environ, host="::1", port=6300, log_level="debug", apps="sqlite:///flag.db"
    )

    assert (settings.host, settings.port, settings.log_level) == ("::1", 6300, "debug")
    assert settings.apps_url == "sqlite:///flag.db"
    assert load(tmp_path, environ).port == 6299


def test_an_empty_variable_is_unset(tmp_path: Path) -> None:
    settings = load(tmp_path, {"RESSONANCE_PORT": "", "RESSONANCE_TLS_CERT": ""})

    assert (settings.port, settings.tls) == (6001, False)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RESSONANCE_PORT": "abc"}, "RESSONANCE_PORT: must be an integer, not 'abc'"),
        ({"RESSONANCE_PORT": "70000"}, "RESSONANCE_PORT: must be a port number from 1 to 65535"),
        ({"RESSONANCE_WORKERS": "0"}, "RESSONANCE_WORKERS: must be a positive integer"),
        ({"RESSONANCE_LOG_LEVEL": "loud"}, "RESSONANCE_LOG_LEVEL: must be one of debug, info"),
        ({"RESSONANCE_NODE_TTL": "soon"}, "RESSONANCE_NODE_TTL: must be a number of seconds"),
        ({"RESSONANCE_TRUSTED_PROXIES": "10.0.0.0/33"}, "RESSONANCE_TRUSTED_PROXIES: "),
        ({"RESSONANCE_PER_IP_RATE_WHEN": "never"}, "RESSONANCE_PER_IP_RATE_WHEN: must be one"),
        ({"RESSONANCE_TLS_CERT": "/x.pem"}, "RESSONANCE_TLS_KEY: required with RESSONANCE_TLS_"),
        ({"RESSONANCE_ADMIN_TOKEN": "short"}, "RESSONANCE_ADMIN_TOKEN: must be 16 to 512"),
        ({"RESSONANCE_WORKERS": "2"}, "workers: several worker processes need a shared"),
    ],
)
def test_bad_variables_are_named(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    assert error(tmp_path, environ).startswith(message)


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("RESSONANCE_PROT", "did you mean RESSONANCE_PORT? "),
        (
            "RESSONANCE_MAX_CONECTIONS_PER_IP_PER_SEC",
            "did you mean RESSONANCE_MAX_CONNECTIONS_PER_IP_PER_SEC? ",
        ),
        ("RESSONANCE_MASTER_KEY", ""),
    ],
)
def test_an_unknown_variable_is_an_error(tmp_path: Path, variable: str, hint: str) -> None:
    message = error(tmp_path, {variable: "6299"})

    assert message.startswith(f"{variable}: unknown variable; {hint}")
    assert "RESSONANCE_ and the key in capitals" in message


def test_the_variables_that_are_not_keys_stay_valid(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text("[server]\nport = 6002\n")
    environ = {
        "RESSONANCE_CONFIG": str(config),  # read by the command line, not here
        "RESSONANCE_DEBUG": "0",
        "RESSONANCE_APP_ID": "1",
        "RESSONANCE_APP_KEY": "k",
        "RESSONANCE_APP_SECRET": "s",
        "RESSONANCE_ADMIN_TOKEN": TOKEN,
        "RESSONANCE": "not ours",
        "PATH": "/bin",
    }

    settings = load(tmp_path, environ)

    assert settings.admin_token == TOKEN
    assert [app.id for app in settings.apps] == ["1"]


@pytest.mark.parametrize("text", ["1", "true", "YES", "on"])
def test_ressonance_debug_turns_on_debug_logs(tmp_path: Path, text: str) -> None:
    assert load(tmp_path, {"RESSONANCE_DEBUG": text}).log_level == "debug"
    assert load(tmp_path, {"RESSONANCE_DEBUG": text}, log_level="info").log_level == "info"


def test_ressonance_debug_off_or_against_another_level(tmp_path: Path) -> None:
    assert load(tmp_path, {"RESSONANCE_DEBUG": "0"}).log_level == "info"
    assert error(tmp_path, {"RESSONANCE_DEBUG": "maybe"}).startswith(
        "RESSONANCE_DEBUG: must be 1 or 0"
    )
    both = {"RESSONANCE_DEBUG": "1", "RESSONANCE_LOG_LEVEL": "warning"}
    assert error(tmp_path, both).startswith(
        "RESSONANCE_DEBUG: turns on debug logs, but RESSONANCE_LOG_LEVEL is 'warning'"
    )


def test_a_token_variable_replaces_both_token_keys_of_the_file(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\nadmin_token = "{TOKEN}"\nadmin_token_file = "/nonexistent"\n')
    environ = {"RESSONANCE_ADMIN_TOKEN": TOKEN + "-env"}

    settings = load_settings(config_file=str(config), environ=environ, state_dir=tmp_path)

    assert settings.admin_token == TOKEN + "-env"


def test_the_documented_table_lists_every_variable() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    section = page.split("\n### Server settings\n", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `(RESSONANCE_[A-Z_]+)` \|", section, flags=re.MULTILINE)

    assert sorted(rows) == sorted(VARIABLES)
    assert len(rows) == len(set(rows))


def test_a_bad_webhook_network_variable_names_the_variable(tmp_path: Path) -> None:
    environ = {"RESSONANCE_WEBHOOK_ALLOWED_NETWORKS": "public,nowhere"}

    with pytest.raises(ConfigError, match="RESSONANCE_WEBHOOK_ALLOWED_NETWORKS: "):
        load(tmp_path, environ)
