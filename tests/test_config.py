"""Settings from a TOML file, RESSONANCE_APP_* variables and flags (docs/configuration.md).

Every problem is a ConfigError whose message starts with where it is (the TOML path, the
variable or the file) and says what is wrong.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ressonance.apps.base import AppRecord
from ressonance.apps.sourcing import AppSource, open_app_registry
from ressonance.config import MAX_CONFIG_BYTES, Settings, load_settings
from ressonance.protocol.app import App
from ressonance.protocol.errors import ConfigError
from ressonance.server.webhook_settings import WebhookSettings

APP_TOML = """
[[apps]]
id = "100001"
key = "shop-key"
secret = "shop-secret"
"""

ENV_APP = {
    "RESSONANCE_APP_ID": "200002",
    "RESSONANCE_APP_KEY": "env-key",
    "RESSONANCE_APP_SECRET": "env-secret",
}


WriteConfig = Callable[[str], str]


@pytest.fixture
def config(tmp_path: Path) -> WriteConfig:
    """`config(text)`: the path of a config file holding `text`."""

    def write(text: str) -> str:
        path = tmp_path / "ressonance.toml"
        path.write_text(text)
        return str(path)

    return write


def load(tmp_path: Path, config_file: str | None = None, **kwargs: object) -> Settings:
    """Settings with an empty environment and the state directory under tmp_path."""
    kwargs.setdefault("environ", {})
    return load_settings(
        config_file=config_file,
        state_dir=tmp_path / "state",
        **kwargs,  # type: ignore[arg-type]
    )


def config_error(tmp_path: Path, config_file: str | None = None, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, config_file, **kwargs)
    return str(raised.value)


# --- the file -------------------------------------------------------------------------------


def test_a_complete_file_is_read(tmp_path: Path, config: WriteConfig) -> None:
    path = config(
        """
        [server]
        host = "0.0.0.0"
        port = 6002
        log_level = "DEBUG"
        max_ws_message_kb = 64
        max_http_body_kb = 128
        max_buffer_kb = 512
        max_buffer_messages = 1000
        timer_interval = 2

        [[apps]]
        id = "100001"
        key = "shop-key"
        secret = "shop-secret"
        name = "shop"
        enable_client_messages = true
        enable_user_authentication = true
        user_authentication_timeout = 15
        subscription_count = true
        watchlist = true
        allowed_origins = ["https://shop.example.com", "*.example.com"]
        activity_timeout = 60
        cache_ttl = 300
        max_connections = 5000
        max_presence_members_per_channel = 50
        max_presence_member_size_in_kb = 2
        max_channel_name_length = 164
        max_event_channels_at_once = 20
        max_event_name_length = 100
        max_event_payload_in_kb = 20
        max_event_batch_size = 5
        max_client_events_per_sec = 5
        max_watchlist_size = 10
        slow_client_policy = "drop_oldest"

        [[apps]]
        id = "100002"
        key = "blog-key"
        secret = "blog-secret"
        enabled = false
        max_connections = -1
        """
    )

    settings = load(tmp_path, path)

    assert settings == Settings(
        host="0.0.0.0",
        port=6002,
        log_level="debug",
        max_ws_message_kb=64,
        max_http_body_kb=128,
        max_buffer_kb=512,
        max_buffer_messages=1000,
        timer_interval=2.0,
        dev_app=False,
        apps_file=str(Path(path).resolve()),
        state_dir=str(tmp_path / "state"),
        apps=(
            App(
                id="100001",
                key="shop-key",
                secret="shop-secret",
                name="shop",
                enable_client_messages=True,
                enable_user_authentication=True,
                user_authentication_timeout=15,
                subscription_count=True,
                watchlist=True,
                allowed_origins=("https://shop.example.com", "*.example.com"),
                activity_timeout=60,
                cache_ttl=300,
                max_connections=5000,
                max_presence_members_per_channel=50,
                max_presence_member_size_in_kb=2,
                max_channel_name_length=164,
                max_event_channels_at_once=20,
                max_event_name_length=100,
                max_event_payload_in_kb=20,
                max_event_batch_size=5,
                max_client_events_per_sec=5,
                max_watchlist_size=10,
                slow_client_policy="drop_oldest",
            ),
            App(id="100002", key="blog-key", secret="blog-secret", enabled=False),
        ),
    )


def test_without_a_file_the_defaults_apply(tmp_path: Path) -> None:
    settings = load(tmp_path, environ=ENV_APP)

    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 6001, "info")
    assert settings.timer_interval == 1.0
    assert settings.max_buffer_kb == 1024
    assert settings.max_buffer_messages == 4096
    assert all(app.slow_client_policy == "close" for app in settings.apps)


def test_an_empty_file_gives_the_defaults_and_the_dev_app(
    tmp_path: Path, config: WriteConfig
) -> None:
    settings = load(tmp_path, config(""))

    assert settings.port == 6001
    assert settings.dev_app
    assert settings.apps == ()  # the development app lives in the default registry
    assert settings.registry_url == f"sqlite:///{tmp_path}/state/ressonance.db"


# --- the environment ------------------------------------------------------------------------


def test_an_app_from_the_environment(tmp_path: Path) -> None:
    environ = {
        **ENV_APP,
        "RESSONANCE_APP_NAME": "from env",
        "RESSONANCE_APP_ENABLE_CLIENT_MESSAGES": "TRUE",
        "RESSONANCE_APP_WATCHLIST": "yes",
        "RESSONANCE_APP_SUBSCRIPTION_COUNT": "on",
        "RESSONANCE_APP_ENABLED": "1",
        "RESSONANCE_APP_ENABLE_USER_AUTHENTICATION": "off",
        "RESSONANCE_APP_MAX_CONNECTIONS": "-1",
        "RESSONANCE_APP_ACTIVITY_TIMEOUT": "30",
        "RESSONANCE_APP_ALLOWED_ORIGINS": " https://a.example.com , *.b.example.com,, ",
        "RESSONANCE_APP_SLOW_CLIENT_POLICY": "drop_oldest",
        "UNRELATED": "ignored",
    }

    settings = load(tmp_path, environ=environ)

    assert settings.apps == (
        App(
            id="200002",
            key="env-key",
            secret="env-secret",
            name="from env",
            enable_client_messages=True,
            watchlist=True,
            subscription_count=True,
            enabled=True,
            enable_user_authentication=False,
            max_connections=-1,
            activity_timeout=30,
            allowed_origins=("https://a.example.com", "*.b.example.com"),
            slow_client_policy="drop_oldest",
        ),
    )
    assert not settings.dev_app


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RESSONANCE_APP_ENABLED", "maybe", "RESSONANCE_APP_ENABLED: must be true or false"),
        ("RESSONANCE_APP_CACHE_TTL", "soon", "RESSONANCE_APP_CACHE_TTL: must be an integer"),
        ("RESSONANCE_APP_CACHE_TTL", "0", "RESSONANCE_APP.cache_ttl: must be a positive integer"),
        ("RESSONANCE_APP_COLOUR", "red", "RESSONANCE_APP_COLOUR: unknown app setting 'colour'"),
        ("RESSONANCE_APP_ID", "abc", "RESSONANCE_APP.id: must be digits only"),
        ("RESSONANCE_APP_KEY", "", "RESSONANCE_APP.key: must not be empty"),
        (
            "RESSONANCE_APP_SLOW_CLIENT_POLICY",
            "drop_newest",
            "RESSONANCE_APP.slow_client_policy: must be one of close, drop_oldest, "
            "not 'drop_newest'",
        ),
    ],
)
def test_bad_variables_are_named(tmp_path: Path, variable: str, value: str, message: str) -> None:
    assert message in config_error(tmp_path, environ={**ENV_APP, variable: value})


@pytest.mark.parametrize(
    "missing", ["RESSONANCE_APP_ID", "RESSONANCE_APP_KEY", "RESSONANCE_APP_SECRET"]
)
def test_an_environment_app_needs_id_key_and_secret(tmp_path: Path, missing: str) -> None:
    environ = {k: v for k, v in ENV_APP.items() if k != missing}

    message = config_error(tmp_path, environ=environ)

    assert message == f"environment RESSONANCE_APP.{missing.rsplit('_', 1)[1].lower()}: required"


# --- precedence -----------------------------------------------------------------------------


def test_flags_win_over_the_file(tmp_path: Path, config: WriteConfig) -> None:
    path = config('[server]\nhost = "0.0.0.0"\nport = 7000\n' + APP_TOML)

    assert (load(tmp_path, path).host, load(tmp_path, path).port) == ("0.0.0.0", 7000)
    flagged = load(tmp_path, path, host="::1", port=7001)
    assert (flagged.host, flagged.port) == ("::1", 7001)


def test_the_file_and_the_environment_apps_add_up(tmp_path: Path, config: WriteConfig) -> None:
    settings = load(tmp_path, config(APP_TOML), environ=ENV_APP)

    assert [app.id for app in settings.apps] == ["100001", "200002"]
    assert not settings.dev_app


def test_the_environment_cannot_reuse_a_file_apps_id(tmp_path: Path, config: WriteConfig) -> None:
    environ = {**ENV_APP, "RESSONANCE_APP_ID": "100001"}

    message = config_error(tmp_path, config(APP_TOML), environ=environ)

    assert message == "apps: two apps share the id '100001'"


def test_the_process_environment_is_read_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV_APP.items():
        monkeypatch.setenv(name, value)

    settings = load_settings(state_dir=tmp_path)

    assert [app.key for app in settings.apps] == ["env-key"]


# --- the development app --------------------------------------------------------------------


async def registry_records(settings: Settings) -> list[AppRecord]:
    registry = await open_app_registry(settings.app_source)
    try:
        return await registry.records()
    finally:
        await registry.close()


async def test_without_apps_the_source_is_the_default_registry_in_the_state_directory(
    tmp_path: Path,
) -> None:
    settings = load(tmp_path)

    assert settings.dev_app
    assert settings.app_source == AppSource(state_dir=tmp_path / "state")
    [app] = await registry_records(settings)
    assert app.name == "development"


async def test_the_state_directory_follows_xdg_state_home(tmp_path: Path) -> None:
    settings = load_settings(environ={"XDG_STATE_HOME": str(tmp_path)})

    assert settings.registry_url == f"sqlite:///{tmp_path}/ressonance/ressonance.db"
    [app] = await registry_records(settings)
    assert app.name == "development"
    assert (tmp_path / "ressonance" / "ressonance.db").is_file()


def test_an_app_on_a_plan_takes_its_limits_and_overrides_some(
    tmp_path: Path, config: WriteConfig
) -> None:
    on_plan = APP_TOML + 'plan = "free"\nmax_messages_per_day = 500\n'
    other = '[[apps]]\nid = "2"\nkey = "k2"\nsecret = "s"\nplan = "free"\n'

    first, second = load(tmp_path, config(on_plan + other)).apps

    assert (first.plan, first.max_connections, first.max_messages_per_day) == ("free", 100, 500)
    assert (second.max_connections, second.max_messages_per_day) == (100, 200_000)


def test_an_environment_app_may_name_a_plan(tmp_path: Path) -> None:
    environ = {
        "RESSONANCE_APP_ID": "1",
        "RESSONANCE_APP_KEY": "k",
        "RESSONANCE_APP_SECRET": "s",
        "RESSONANCE_APP_PLAN": "free",
        "RESSONANCE_APP_MAX_CONNECTIONS": "3",
    }

    (app,) = load(tmp_path, environ=environ).apps

    assert (app.plan, app.max_connections, app.max_messages_per_day) == ("free", 3, 200_000)


def test_no_development_app_when_one_is_configured(tmp_path: Path, config: WriteConfig) -> None:
    load(tmp_path, config(APP_TOML))

    assert not (tmp_path / "state").exists()


# --- errors in the file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[database]\nurl = 'x'",
            "database: unknown section (expected [server], [[apps]], [plans.NAME])",
        ),
        ("[server]\nprot = 6001", "server.prot: unknown setting"),
        ('[server]\nport = "6001"', "server.port: must be a positive integer"),
        ("[server]\nport = 0", "server.port: must be a positive integer"),
        ("[server]\nport = 65536", "server.port: must be a port number from 1 to 65535"),
        ("[server]\nport = true", "server.port: must be a positive integer"),
        ("[server]\nmax_buffer_kb = -1", "server.max_buffer_kb: must be a positive integer"),
        (
            "[server]\nmax_buffer_messages = 0",
            "server.max_buffer_messages: must be a positive integer",
        ),
        ("[server]\nhost = 1", "server.host: must be a string"),
        ("[server]\nlog_level = 'loud'", "server.log_level: must be one of debug, info, warning"),
        ("[server]\ntimer_interval = 0", "server.timer_interval: must be a positive number"),
        ("[server]\ntimer_interval = '1s'", "server.timer_interval: must be a positive number"),
        ("server = 1", "server: expected a table"),
        ("apps = 1", "apps: expected an array of tables ([[apps]])"),
        ("apps = [1]", "apps[0]: expected a table"),
        (APP_TOML + "max_conections = 10", "apps[0].max_conections: unknown setting"),
        (APP_TOML + "enabled = 'yes'", "apps[0].enabled: must be true or false"),
        (APP_TOML + "cache_ttl = 1.5", "apps[0].cache_ttl: must be a positive integer"),
        (APP_TOML + "max_connections = -2", "apps[0].max_connections: must be a positive integer"),
        (APP_TOML + "max_connections = 0", "apps[0].max_connections: must be a positive integer"),
        (APP_TOML + "allowed_origins = '*'", "apps[0].allowed_origins: must be a list of origins"),
        (APP_TOML + "allowed_origins = ['']", "apps[0].allowed_origins: must be a list of origins"),
        (APP_TOML + "name = 7", "apps[0].name: must be a string"),
        (APP_TOML + "webhooks = 'https://a/'", "apps[0].webhooks: must be a list of endpoints"),
        (
            APP_TOML + "webhooks = [{url = 'gopher://a/', event_types = ['cache_miss']}]",
            "apps[0].webhooks[0].url: must be an http:// or https:// URL",
        ),
        (APP_TOML + "plan = 'gold'", "apps[0].plan: no plan named 'gold'"),
        (
            APP_TOML + "slow_client_policy = 'coalesce'",
            "apps[0].slow_client_policy: must be one of close, drop_oldest, not 'coalesce'",
        ),
        (APP_TOML + "slow_client_policy = 1", "apps[0].slow_client_policy: must be a string"),
        (
            '[[apps]]\nid = 100001\nkey = "k"\nsecret = "s"',
            'apps[0].id: must be a string (quote it: id = "100001")',
        ),
        ('[[apps]]\nid = "abc"\nkey = "k"\nsecret = "s"', "apps[0].id: must be digits only"),
        ('[[apps]]\nid = ""\nkey = "k"\nsecret = "s"', "apps[0].id: must be digits only"),
        ('[[apps]]\nid = "1"\nkey = ""\nsecret = "s"', "apps[0].key: must not be empty"),
        ('[[apps]]\nid = "1"\nkey = "k"', "apps[0].secret: required"),
        ('[[apps]]\nkey = "k"\nsecret = "s"', "apps[0].id: required"),
        (
            APP_TOML + '[[apps]]\nid = "2"\nkey = "k"\nsecret = "s"\nactivity_timeout = 0',
            "apps[1].activity_timeout: must be a positive integer",
        ),
    ],
)
def test_bad_values_are_named(tmp_path: Path, config: WriteConfig, text: str, message: str) -> None:
    assert config_error(tmp_path, config(text)).startswith(message)


@pytest.mark.parametrize("attribute", ["id", "key"])
def test_two_apps_may_not_share_an_id_or_a_key(
    tmp_path: Path, config: WriteConfig, attribute: str
) -> None:
    second = {"id": "2", "key": "k2", "secret": "s", attribute: "1" if attribute == "id" else "k"}
    text = '[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n[[apps]]\n' + "".join(
        f'{name} = "{value}"\n' for name, value in second.items()
    )

    message = config_error(tmp_path, config(text))

    expected = "'1'" if attribute == "id" else "'k'"
    assert message == f"apps: two apps share the {attribute} {expected}"


def test_a_key_written_twice_in_a_table_is_not_valid_toml(
    tmp_path: Path, config: WriteConfig
) -> None:
    path = config(APP_TOML + 'key = "again"\n')

    message = config_error(tmp_path, path)

    assert message.startswith(f"{path}: not valid TOML (")
    assert "line 6" in message


def test_bad_toml_names_the_file(tmp_path: Path, config: WriteConfig) -> None:
    path = config("[server\nport = 1")

    assert config_error(tmp_path, path).startswith(f"{path}: not valid TOML (")


def test_a_file_that_is_not_utf8_is_not_valid_toml(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[[apps]]\nname = "caf\xe9"\n')

    assert config_error(tmp_path, str(path)).startswith(f"{path}: not valid TOML (")


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"

    message = config_error(tmp_path, str(path))

    assert message == f"{path}: cannot read config file (No such file or directory)"


def test_a_directory_is_not_a_readable_file(tmp_path: Path) -> None:
    message = config_error(tmp_path, str(tmp_path))

    assert message.startswith(f"{tmp_path}: cannot read config file (")


def test_a_file_over_one_megabyte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")

    assert config_error(tmp_path, str(path)) == f"{path}: config file is larger than 1 MB"


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_a_port_flag_out_of_range_is_refused(tmp_path: Path, port: int) -> None:
    message = config_error(tmp_path, environ=ENV_APP, port=port)

    assert message.startswith("--port: must be")


def test_the_highest_port_is_accepted(tmp_path: Path) -> None:
    assert load(tmp_path, environ=ENV_APP, port=65535).port == 65535


# --- cluster settings -----------------------------------------------------------------------


def test_a_redis_backbone_is_also_the_state(tmp_path: Path) -> None:
    settings = load(tmp_path, backbone="redis://cache:6379/0")

    assert (settings.backbone, settings.state_url) == (
        "redis://cache:6379/0",
        "redis://cache:6379/0",
    )


def test_the_environment_sets_backbone_and_state_and_flags_win(
    tmp_path: Path, config: WriteConfig
) -> None:
    path = config('[server]\nbackbone = "redis://file:1/0"\nnode_ttl = 3\ndrain_seconds = 2.5\n')
    environ = {"RESSONANCE_BACKBONE": "nats://env:4222", "RESSONANCE_STATE": "redis://env:1/0"}

    from_env = load(tmp_path, path, environ=environ)
    from_flag = load(tmp_path, path, environ=environ, backbone="nats://flag:4222", workers=3)

    assert (from_env.backbone, from_env.state_url) == ("nats://env:4222", "redis://env:1/0")
    assert (from_env.node_ttl, from_env.drain_seconds) == (3.0, 2.5)
    assert (from_flag.backbone, from_flag.workers) == ("nats://flag:4222", 3)


def test_the_backbone_wire_version_is_2_unless_an_upgrade_asks_for_1(
    tmp_path: Path, config: WriteConfig
) -> None:
    path = config("[server]\nbackbone_wire_version = 1\n")

    assert load(tmp_path, None).backbone_wire_version == 2
    assert load(tmp_path, path).backbone_wire_version == 1
    environ = {"RESSONANCE_BACKBONE_WIRE_VERSION": "2"}
    assert load(tmp_path, path, environ=environ).backbone_wire_version == 2


@pytest.mark.parametrize("value", ["3", "0", "two", "true"])
def test_a_wire_version_the_backbone_cannot_write_is_refused(tmp_path: Path, value: str) -> None:
    environ = {"RESSONANCE_BACKBONE_WIRE_VERSION": value}
    with pytest.raises(ConfigError, match="RESSONANCE_BACKBONE_WIRE_VERSION: must be 1 or 2"):
        load(tmp_path, None, environ=environ)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"backbone": "kafka://x"},
            "backbone: 'kafka://x' is not a memory://, redis:// or nats://",
        ),
        ({"backbone": "redis://r", "state": "nats://n"}, "state: 'nats://n' is not a memory://"),
        ({"backbone": "nats://n"}, "state: a shared backbone needs shared state"),
        ({"workers": 2}, "workers: several worker processes need a shared backbone"),
        ({"workers": 0}, "--workers: must be a positive integer"),
    ],
)
def test_bad_cluster_settings_are_named(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    assert config_error(tmp_path, **kwargs).startswith(message)


# --- TLS ------------------------------------------------------------------------------------


OPENSSL_REQ = [
    *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
    *("-nodes", "-days", "1", "-subj", "/CN=localhost"),
]
ENCRYPT_KEY = ["openssl", "pkey", "-aes256", "-passout", "pass:secret"]


def _pem(tmp_path: Path, name: str) -> tuple[str, str]:
    """A self-signed certificate and its key, written by the openssl command."""
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run(
        [*OPENSSL_REQ, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    directory = tmp_path_factory.mktemp("tls")
    return {"a": _pem(directory, "a"), "b": _pem(directory, "b")}


def test_tls_files_from_the_file_and_the_flags(
    tmp_path: Path, config: WriteConfig, pems: dict[str, tuple[str, str]]
) -> None:
    (cert_a, key_a), (cert_b, key_b) = pems["a"], pems["b"]
    assert not load(tmp_path).tls
    settings = load(tmp_path, config(f'[server]\ntls_cert = "{cert_a}"\ntls_key = "{key_a}"\n'))
    assert (settings.tls, settings.tls_cert, settings.tls_key) == (True, cert_a, key_a)
    flags = load(tmp_path, config(f'[server]\ntls_cert = "{cert_a}"\ntls_key = "{key_a}"\n'),
                 tls_cert=cert_b, tls_key=key_b)  # fmt: skip
    assert (flags.tls_cert, flags.tls_key) == (cert_b, key_b)


def test_tls_errors_name_the_setting(
    tmp_path: Path, config: WriteConfig, pems: dict[str, tuple[str, str]]
) -> None:
    (cert_a, key_a), (_, key_b) = pems["a"], pems["b"]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM at all\n")
    missing = str(tmp_path / "missing.pem")

    def from_file(cert: str, key: str) -> str:
        return config_error(tmp_path, config(f'[server]\ntls_cert = "{cert}"\ntls_key = "{key}"'))

    assert config_error(tmp_path, tls_cert=cert_a).startswith("--tls-key: required with --tls-cert")
    assert config_error(tmp_path, tls_key=key_a).startswith("--tls-cert: required with --tls-key")
    assert config_error(tmp_path, config(f'[server]\ntls_key = "{key_a}"')).startswith(
        "server.tls_cert: required with server.tls_key"
    )
    assert from_file(missing, key_a) == (
        f"server.tls_cert: cannot read {missing} (No such file or directory)"
    )
    assert from_file(cert_a, missing).startswith(f"server.tls_key: cannot read {missing}")
    assert from_file(str(garbage), key_a) == f"server.tls_cert: {garbage} holds no PEM certificate"
    assert from_file(cert_a, str(garbage)).startswith(
        f"server.tls_key: {garbage} holds no usable PEM private key"
    )
    assert from_file(cert_a, key_b) == (
        f"server.tls_key: {key_b} does not match the certificate in {cert_a}"
    )
    assert config_error(tmp_path, tls_cert=cert_a, tls_key=key_b).startswith("--tls-key: ")
    assert config_error(tmp_path, config("[server]\ntls_cert = 1")).startswith(
        "server.tls_cert: must be a string"
    )


def test_an_unreadable_tls_key_is_named(tmp_path: Path, pems: dict[str, tuple[str, str]]) -> None:
    cert, key = pems["a"]
    locked = tmp_path / "locked.key"
    locked.write_bytes(Path(key).read_bytes())
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root: file permissions do not apply")
        message = config_error(tmp_path, tls_cert=cert, tls_key=str(locked))
    finally:
        locked.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert message == f"--tls-key: cannot read {locked} (Permission denied)"


def test_an_encrypted_tls_key_is_refused_without_prompting(
    tmp_path: Path, pems: dict[str, tuple[str, str]]
) -> None:
    cert, key = pems["a"]
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        [*ENCRYPT_KEY, "-in", key, "-out", str(encrypted)],
        check=True,
        capture_output=True,
    )
    message = config_error(tmp_path, tls_cert=cert, tls_key=str(encrypted))
    assert message == f"--tls-key: {encrypted} is encrypted with a passphrase (not supported)"


# --- the admin token -------------------------------------------------------------------------

TOKEN = "admin-token-0123456789"


def test_no_admin_token_by_default(tmp_path: Path) -> None:
    assert load(tmp_path).admin_token == ""


def test_the_admin_token_from_the_table_the_file_and_the_environment(
    tmp_path: Path, config: WriteConfig
) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text(TOKEN + "-file\n")  # the trailing newline of `echo > file` is dropped

    in_table = load(tmp_path, config(f'[server]\nadmin_token = "{TOKEN}"\n'))
    in_file = load(tmp_path, config(f'[server]\nadmin_token_file = "{token_file}"\n'))
    from_env = load(tmp_path, config_file=None, environ={"RESSONANCE_ADMIN_TOKEN": TOKEN + "-env"})
    env_wins = load(
        tmp_path,
        config(f'[server]\nadmin_token_file = "{token_file}"\n'),
        environ={"RESSONANCE_ADMIN_TOKEN": TOKEN + "-env"},
    )

    assert in_table.admin_token == TOKEN
    assert in_file.admin_token == TOKEN + "-file"
    assert from_env.admin_token == TOKEN + "-env"
    assert env_wins.admin_token == TOKEN + "-env"


def test_the_admin_token_is_never_in_the_settings_repr(tmp_path: Path, config: WriteConfig) -> None:
    settings = load(tmp_path, config(f'[server]\nadmin_token = "{TOKEN}"\n'))
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("table", "environ", "message"),
    [
        ('admin_token = "short"', {}, "server.admin_token: must be 16 to 512 characters; generate"),
        ("", {"RESSONANCE_ADMIN_TOKEN": "short"}, "RESSONANCE_ADMIN_TOKEN: must be 16 to 512"),
        (f'admin_token = "{"x" * 513}"', {}, "server.admin_token: must be 16 to 512 characters"),
        ('admin_token = "has a space in it ok"', {}, "server.admin_token: printable ASCII"),
        ('admin_token = "nön-ascii-token-0123"', {}, "server.admin_token: printable ASCII"),
        (
            f'admin_token = "{TOKEN}"\nadmin_token_file = "/x"',
            {},
            "server.admin_token: set admin_token or admin_token_file, not both",
        ),
        ('admin_token_file = "/nonexistent/token"', {}, "server.admin_token_file: cannot read"),
    ],
)
def test_a_bad_admin_token_is_named(
    tmp_path: Path, config: WriteConfig, table: str, environ: dict[str, str], message: str
) -> None:
    path = config(f"[server]\n{table}\n")
    assert config_error(tmp_path, path, environ=environ).startswith(message)


def test_a_too_long_token_file_is_refused(tmp_path: Path, config: WriteConfig) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text("x" * 10_000)
    path = config(f'[server]\nadmin_token_file = "{token_file}"\n')
    assert config_error(tmp_path, path).startswith("server.admin_token_file: must be 16 to 512")


# --- abuse protection (issue "Apps, plans and protection" §4) --------------------------------


def test_abuse_protection_settings_and_their_defaults(tmp_path: Path, config: WriteConfig) -> None:
    defaults = load(tmp_path, environ=ENV_APP).admission
    assert defaults.max_connections_per_ip_per_sec == 60
    assert defaults.max_node_connections == -1
    assert defaults.max_loop_lag_ms == 2000
    assert defaults.trusted_proxies == ()

    settings = load(
        tmp_path,
        config(
            "[server]\nmax_connections_per_ip_per_sec = -1\nmax_node_connections = 50000\n"
            'max_loop_lag_ms = 500\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]\n'
            + APP_TOML
            + "max_channels_per_connection = 10\nmax_subscriptions_per_sec = 5\n"
            "max_inbound_messages_per_sec = 20\nmax_connections_per_sec = 100\n"
        ),
    )

    admission = settings.admission
    assert admission.max_connections_per_ip_per_sec == -1
    assert admission.max_node_connections == 50000
    assert admission.max_loop_lag_ms == 500
    assert admission.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "fd00::/8")
    [app] = settings.apps
    assert (app.max_channels_per_connection, app.max_subscriptions_per_sec) == (10, 5)
    assert (app.max_inbound_messages_per_sec, app.max_connections_per_sec) == (20, 100)


def test_webhook_settings_and_their_defaults(tmp_path: Path, config: WriteConfig) -> None:
    defaults = load(tmp_path, environ=ENV_APP).webhooks
    assert defaults == WebhookSettings()
    assert defaults.retry_window == 86_400.0
    assert defaults.allowed_networks == ("public", "private", "loopback")

    settings = load(
        tmp_path,
        config(
            "[server]\nnode_ttl = 4\nwebhook_retry_window = 600\nwebhook_retry_initial = 0.5\n"
            "webhook_retry_max = 30\nwebhook_timeout = 2.5\nwebhook_batch_size = 1\n"
            "webhook_batch_wait = 0.2\nwebhook_concurrency = 8\nwebhook_leave_delay = 1\n"
            'webhook_allowed_networks = ["public", "10.0.0.0/8"]\n' + APP_TOML
        ),
    ).webhooks

    assert settings == WebhookSettings(
        retry_window=600.0,
        retry_initial=0.5,
        retry_max=30.0,
        timeout=2.5,
        batch_size=1,
        batch_wait=0.2,
        concurrency=8,
        leave_delay=1.0,
        allowed_networks=("public", "10.0.0.0/8"),
        lease_ttl=4.0,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("webhook_retry_window = 0", "server.webhook_retry_window: must be a positive number"),
        ("webhook_batch_size = 0", "server.webhook_batch_size: must be a positive integer"),
        (
            'webhook_allowed_networks = "public"',
            'server.webhook_allowed_networks: must be a list of "public", "private", "loopback"',
        ),
        (
            'webhook_allowed_networks = ["everywhere"]',
            "server.webhook_allowed_networks: 'everywhere' is neither public, private, loopback",
        ),
    ],
)
def test_bad_webhook_settings_are_named(
    tmp_path: Path, config: WriteConfig, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, config("[server]\n" + text + "\n" + APP_TOML))


# --- where apps come from ---------------------------------------------------------------------


def test_the_apps_url_comes_from_the_flag_the_environment_or_the_file(
    tmp_path: Path, config: WriteConfig
) -> None:
    path = config('[server]\napps = "sqlite:///from-file.db"\napps_refresh_seconds = 0.5')
    env = {"RESSONANCE_APPS": "postgresql://db/apps"}

    from_file = load(tmp_path, path)
    assert (from_file.apps_url, from_file.apps_refresh_seconds) == ("sqlite:///from-file.db", 0.5)
    assert load(tmp_path, path, environ=env).apps_url == "postgresql://db/apps"
    flagged = load(tmp_path, path, environ=env, apps="sqlite:////srv/apps.db")
    assert flagged.registry_url == "sqlite:////srv/apps.db"
    assert not flagged.dev_app
    assert flagged.apps == ()


def test_the_config_file_comes_from_the_flag_or_ressonance_config(
    tmp_path: Path, config: WriteConfig
) -> None:
    path = config('[server]\napps = "sqlite:///from-file.db"')
    other = tmp_path / "other.toml"
    other.write_text("[server]\nport = 7002\n")

    from_env = load(tmp_path, environ={"RESSONANCE_CONFIG": path})
    flagged = load(tmp_path, str(other), environ={"RESSONANCE_CONFIG": path})

    assert from_env.registry_url == "sqlite:///from-file.db"
    assert (flagged.port, flagged.apps_url) == (7002, "")
    assert "cannot read config file" in config_error(
        tmp_path, environ={"RESSONANCE_CONFIG": str(tmp_path / "missing.toml")}
    )


def test_static_apps_are_the_file_store_of_the_config_file(
    tmp_path: Path, config: WriteConfig
) -> None:
    path = config(APP_TOML)

    settings = load(tmp_path, path, environ=ENV_APP)

    assert settings.registry_url == f"file:{Path(path).resolve()}"
    assert [r.key for r in settings.env_apps] == ["env-key"]
    assert load(tmp_path, environ=ENV_APP).registry_url == ""  # nothing to open by URL


@pytest.mark.parametrize(
    ("text", "environ", "apps"),
    [
        (APP_TOML, {}, "sqlite:///apps.db"),
        ("", ENV_APP, "sqlite:///apps.db"),
        (APP_TOML, {"RESSONANCE_APPS": "sqlite:///apps.db"}, None),
        (APP_TOML + '[server]\napps = "apps.toml"\n', {}, None),
    ],
)
def test_an_apps_url_and_static_apps_together_are_refused(
    tmp_path: Path, config: WriteConfig, text: str, environ: dict[str, str], apps: str | None
) -> None:
    message = config_error(tmp_path, config(text), environ=environ, apps=apps)

    assert message.startswith("apps: an apps URL")
    assert "use one" in message


def test_plans_tables_are_read_and_applied_to_static_apps(
    tmp_path: Path, config: WriteConfig
) -> None:
    path = config(
        """
        [plans.pro]
        max_connections = 5000
        max_messages_per_day = -1
        enable_client_messages = true

        [plans.free]
        max_connections = 20

        [[apps]]
        id = "1"
        key = "k"
        secret = "s"
        plan = "pro"
        max_connections = 10
        """
    )

    settings = load(tmp_path, path)

    assert settings.plan_map["free"].settings == {"max_connections": 20}  # redefined
    [app] = settings.apps
    assert (app.plan, app.max_connections, app.enable_client_messages) == ("pro", 10, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[server]\nmax_connections_per_ip_per_sec = 0",
            "server.max_connections_per_ip_per_sec: must be a positive integer, or -1 for no limit",
        ),
        (
            "[server]\nmax_node_connections = -2",
            "server.max_node_connections: must be a positive integer, or -1 for no limit",
        ),
        (
            "[server]\nmax_loop_lag_ms = true",
            "server.max_loop_lag_ms: must be a positive integer, or -1 for no limit",
        ),
        (
            '[server]\ntrusted_proxies = "10.0.0.0/8"',
            'server.trusted_proxies: must be a list of addresses or CIDRs, like ["10.0.0.0/8"]',
        ),
        (
            '[server]\ntrusted_proxies = ["10.0.0.0/8", "proxy.local"]',
            "server.trusted_proxies: 'proxy.local' is not an IP address or CIDR block",
        ),
        (
            APP_TOML + "max_channels_per_connection = 0",
            "apps[0].max_channels_per_connection: must be a positive integer",
        ),
        (
            APP_TOML + "max_inbound_messages_per_sec = -1",
            "apps[0].max_inbound_messages_per_sec: must be a positive integer",
        ),
    ],
)
def test_bad_abuse_protection_settings_are_named(
    tmp_path: Path, config: WriteConfig, text: str, message: str
) -> None:
    assert config_error(tmp_path, config(text)) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[plans.pro]\nmax_connections = 0", "plans.pro.max_connections: must be a positive"),
        ("[plans.pro]\nmax_connections = -2", "plans.pro.max_connections: must be a positive"),
        ("[plans.pro]\ncache_ttl = -1", "plans.pro.cache_ttl: must be a positive integer"),
        ("[plans.pro]\nwatchlist = 1", "plans.pro.watchlist: must be true or false"),
        ("[plans.pro]\nsecret = 's'", "plans.pro.secret: not a setting a plan can set"),
        ("[plans.pro]\ncolour = 'red'", "plans.pro.colour: not a setting a plan can set"),
        ("[plans]\npro = 3", "plans.pro: expected a table"),
        ("[plans.Gold]\nmax_connections = 1", "plans.Gold: a plan name is 1-64 lowercase"),
        (APP_TOML + 'plan = "gold"', "apps[0].plan: no plan named 'gold'"),
        ("[server]\napps = 3", "server.apps: must be a string"),
        ("[server]\napps_refresh_seconds = 0", "server.apps_refresh_seconds: must be a positive"),
    ],
)
def test_bad_plans_and_app_sources_are_named(
    tmp_path: Path, config: WriteConfig, text: str, message: str
) -> None:
    assert config_error(tmp_path, config(text)).startswith(message)


# --- connection limits (issue "Hold the line under hostile traffic") ---------------------------


def test_connection_limits_and_their_defaults(tmp_path: Path, config: WriteConfig) -> None:
    defaults = load(tmp_path).connection_limits
    assert (defaults.first_byte_timeout, defaults.request_timeout) == (10.0, 10.0)
    assert (defaults.keepalive_timeout, defaults.upgrade_timeout) == (75.0, 10.0)
    assert defaults.min_request_bytes_per_sec == 100
    assert (defaults.max_request_head_bytes, defaults.max_request_line_bytes) == (16384, 8192)
    assert defaults.max_pending_connections_per_ip == 1024
    assert defaults.reserved_descriptors == 128

    settings = load(
        tmp_path,
        config(
            "[server]\nfirst_byte_timeout = 2\nrequest_timeout = 3.5\nkeepalive_timeout = 30\n"
            "upgrade_timeout = 4\nmin_request_bytes_per_sec = -1\nmax_request_head_kb = 32\n"
            "max_request_line_kb = 4\nmax_pending_connections_per_ip = -1\n"
            'reserved_descriptors = 64\ntrusted_proxies = ["10.0.0.0/8"]\n'
        ),
    )
    limits = settings.connection_limits
    assert (limits.first_byte_timeout, limits.request_timeout) == (2.0, 3.5)
    assert (limits.keepalive_timeout, limits.upgrade_timeout) == (30.0, 4.0)
    assert limits.min_request_bytes_per_sec == -1
    assert not limits.rate_checked
    assert (limits.max_request_head_bytes, limits.max_request_line_bytes) == (32768, 4096)
    assert limits.head.max_head_bytes == 32768
    assert not limits.per_address_limited
    assert limits.reserved_descriptors == 64
    assert limits.trusted_proxies == ("10.0.0.0/8",)


def test_connection_limits_from_the_environment_win_over_the_file(
    tmp_path: Path, config: WriteConfig
) -> None:
    path = config("[server]\nkeepalive_timeout = 30\nmax_pending_connections_per_ip = 10\n")
    environ = {
        "RESSONANCE_KEEPALIVE_TIMEOUT": "5.5",
        "RESSONANCE_FIRST_BYTE_TIMEOUT": "3",
        "RESSONANCE_MAX_PENDING_CONNECTIONS_PER_IP": "-1",
        "RESSONANCE_RESERVED_DESCRIPTORS": "256",
    }
    limits = load(tmp_path, path, environ=environ).connection_limits
    assert (limits.keepalive_timeout, limits.first_byte_timeout) == (5.5, 3.0)
    assert limits.max_pending_connections_per_ip == -1
    assert limits.reserved_descriptors == 256


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RESSONANCE_REQUEST_TIMEOUT", "soon", "RESSONANCE_REQUEST_TIMEOUT: must be a number of"),
        ("RESSONANCE_REQUEST_TIMEOUT", "0", "RESSONANCE_REQUEST_TIMEOUT: must be a positive"),
        ("RESSONANCE_UPGRADE_TIMEOUT", "inf", "RESSONANCE_UPGRADE_TIMEOUT: must be a positive"),
        ("RESSONANCE_MAX_REQUEST_HEAD_KB", "1.5", "RESSONANCE_MAX_REQUEST_HEAD_KB: must be an"),
        ("RESSONANCE_MAX_REQUEST_LINE_KB", "0", "RESSONANCE_MAX_REQUEST_LINE_KB: must be a pos"),
        ("RESSONANCE_MIN_REQUEST_BYTES_PER_SEC", "-2", "RESSONANCE_MIN_REQUEST_BYTES_PER_SEC:"),
    ],
)
def test_bad_connection_limits_in_the_environment_are_named(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    assert config_error(tmp_path, environ={variable: value}).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("first_byte_timeout = 0", "server.first_byte_timeout: must be a positive number"),
        ("keepalive_timeout = nan", "server.keepalive_timeout: must be a positive number"),
        ("request_timeout = true", "server.request_timeout: must be a positive number"),
        ("max_request_head_kb = -1", "server.max_request_head_kb: must be a positive integer"),
        ("reserved_descriptors = 0", "server.reserved_descriptors: must be a positive integer"),
        ("max_pending_connections_per_ip = 0", "server.max_pending_connections_per_ip: must"),
    ],
)
def test_bad_connection_limits_in_the_file_are_named(
    tmp_path: Path, config: WriteConfig, text: str, message: str
) -> None:
    assert config_error(tmp_path, config("[server]\n" + text)).startswith(message)
