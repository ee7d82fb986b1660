"""The `ressonance` command as a person meets it: exit statuses, stderr lines and the banner.

Nothing here opens a port: `serve` is replaced where the command would start listening.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ressonance import __version__, cli
from ressonance.apps.base import AppRecord
from ressonance.cli import serve as serve_command
from ressonance.config import Settings
from ressonance.protocol.app import App
from ressonance.server.session import OutputLimits

DEV = App(id="123456", key="0123456789abcdef0123", secret="s" * 32, name="development")
DEV_RECORD = AppRecord(id=DEV.id, key=DEV.key, secret=DEV.secret, name=DEV.name)
ENV_APP = {
    "RESSONANCE_APP_ID": "200002",
    "RESSONANCE_APP_KEY": "env-key",
    "RESSONANCE_APP_SECRET": "env-secret",
}


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RESSONANCE_APP_* from the machine; the dev app's state under tmp_path."""
    for name in list(os.environ):
        if name.startswith("RESSONANCE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Settings `run_server` was called with, instead of serving."""
    calls: list[Settings] = []

    def run_server(settings: Settings) -> int:
        calls.append(settings)
        return 0

    monkeypatch.setattr(serve_command, "run_server", run_server)
    monkeypatch.setattr(serve_command.logging, "basicConfig", lambda **kwargs: None)
    return calls


# --- main -----------------------------------------------------------------------------------


def test_a_bad_config_file_exits_2_with_the_problem_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], started: list[Settings]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[apps]]\nid = "abc"\nkey = "k"\nsecret = "s"\n')

    status = cli.main(["serve", "--config", str(bad)])

    out, err = capsys.readouterr()
    assert status == 2
    assert err == (
        "ressonance: configuration error: apps[0].id: must be digits only "
        "(the Pusher SDKs reject others)\n"
    )
    assert out == ""
    assert started == []


def test_a_missing_config_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], started: list[Settings]
) -> None:
    missing = tmp_path / "missing.toml"

    assert cli.main(["serve", "--config", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"ressonance: configuration error: {missing}: cannot read config file "
        "(No such file or directory)\n"
    )
    assert started == []


def test_a_bad_environment_variable_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], started: list[Settings]
) -> None:
    monkeypatch.setenv("RESSONANCE_APP_ENABLED", "maybe")

    assert cli.main(["serve"]) == 2
    assert "RESSONANCE_APP_ENABLED: must be true or false" in capsys.readouterr().err
    assert started == []


def test_a_port_out_of_range_exits_2(
    capsys: pytest.CaptureFixture[str], started: list[Settings]
) -> None:
    assert cli.main(["serve", "--port", "70000"]) == 2
    assert capsys.readouterr().err == (
        "ressonance: configuration error: --port: must be a port number from 1 to 65535\n"
    )
    assert started == []


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["serve", "--port", "abc"], "--port"),
        (["serve", "--log-level", "loud"], "--log-level"),
        (["start"], "invalid choice"),
        ([], "required"),
    ],
)
def test_malformed_arguments_exit_2_with_a_usage_line(
    capsys: pytest.CaptureFixture[str], started: list[Settings], argv: list[str], problem: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ressonance")
    assert problem in err
    assert started == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out == f"ressonance {__version__}\n"


def test_serve_runs_with_the_settings_of_flags_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Settings]
) -> None:
    config = tmp_path / "ressonance.toml"
    config.write_text('[server]\nport = 7000\nlog_level = "warning"\nmax_buffer_kb = 64\n')
    for name, value in ENV_APP.items():
        monkeypatch.setenv(name, value)

    assert cli.main(["serve", "--config", str(config), "--host", "0.0.0.0"]) == 0

    [settings] = started
    assert (settings.host, settings.port, settings.max_buffer_kb) == ("0.0.0.0", 7000, 64)
    assert [app.key for app in settings.apps] == ["env-key"]


@pytest.mark.parametrize(
    ("argv", "environ", "level"),
    [
        (["serve"], {}, logging.INFO),
        (["serve", "--log-level", "debug"], {}, logging.DEBUG),
        (["serve", "--log-level", "ERROR"], {}, logging.ERROR),
        (["serve", "--debug"], {}, logging.DEBUG),
        (["serve"], {"RESSONANCE_DEBUG": "1"}, logging.DEBUG),
        (["serve"], {"RESSONANCE_LOG_LEVEL": "warning"}, logging.WARNING),
        (["serve", "--log-level", "info"], {"RESSONANCE_DEBUG": "1"}, logging.INFO),
    ],
)
def test_the_log_level_comes_from_the_flag_the_environment_or_the_file(
    monkeypatch: pytest.MonkeyPatch,
    started: list[Settings],
    argv: list[str],
    environ: dict[str, str],
    level: int,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(logging.getLogger("ressonance"), "level", logging.NOTSET)
    others: list[int] = []
    monkeypatch.setattr(
        serve_command.logging, "basicConfig", lambda **kwargs: others.append(kwargs["level"])
    )

    assert cli.main(argv) == 0
    assert logging.getLogger("ressonance").level == level
    assert others == [max(level, logging.WARNING)]  # other libraries: warnings and errors


def test_debug_and_log_level_are_one_or_the_other(
    capsys: pytest.CaptureFixture[str], started: list[Settings]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--debug", "--log-level", "info"])

    assert "not allowed with argument" in capsys.readouterr().err
    assert started == []


# --- run_server -----------------------------------------------------------------------------


Serve = Callable[..., Any]


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> Callable[[Serve], list[dict[str, Any]]]:
    """Replace `serve` by `fake` (no port is opened); returns the calls it got."""

    def use(fake: Serve) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []

        async def serve(node: object, **kwargs: Any) -> None:
            calls.append({"node": node, **kwargs})
            await fake(**kwargs)

        monkeypatch.setattr(serve_command, "serve", serve)
        monkeypatch.setattr("uvloop.install", lambda: None)
        return calls

    return use


def test_run_server_prints_the_banner_once_listening(
    capsys: pytest.CaptureFixture[str], serving: Callable[[Serve], list[dict[str, Any]]]
) -> None:
    async def ready(on_ready: Callable[[], None], **_: Any) -> None:
        on_ready()

    calls = serving(ready)
    settings = Settings(
        port=7000,
        apps=(DEV,),
        env_apps=(DEV_RECORD,),
        max_buffer_kb=8,
        max_buffer_messages=9,
        max_ws_message_kb=2,
        max_http_body_kb=3,
    )

    assert serve_command.run_server(settings) == 0

    assert capsys.readouterr().out == serve_command.banner(settings, [DEV]) + "\n"
    [call] = calls
    assert (call["host"], call["port"], call["timer_interval"]) == ("127.0.0.1", 7000, 1.0)
    assert call["node"].output_limits == OutputLimits(max_bytes=8 * 1024, max_messages=9)
    assert call["limits"].max_ws_message_bytes == 2 * 1024
    assert call["limits"].max_http_body_bytes == 3 * 1024


def test_run_server_exits_1_when_the_port_is_taken(
    capsys: pytest.CaptureFixture[str], serving: Callable[[Serve], list[dict[str, Any]]]
) -> None:
    async def taken(**_: Any) -> None:
        raise OSError(98, "Address already in use")

    serving(taken)

    assert serve_command.run_server(Settings(apps=(DEV,))) == 1
    assert capsys.readouterr().err == (
        "ressonance: cannot listen on 127.0.0.1:6001: the port is in use (another Ressonance, "
        "or another program: `ss -ltnp 'sport = :6001'` names it); stop it, or choose another "
        "port with --port (or RESSONANCE_PORT)\n"
    )


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        (OSError(errno.EACCES, "Permission denied"), "choose a port from 1024 with --port"),
        (OSError(errno.EADDRNOTAVAIL, "Cannot assign"), "this machine has no address 10.9.9.9"),
        (OSError(errno.EMFILE, "Too many open files"), ": Too many open files"),
    ],
)
def test_other_listen_problems_say_what_to_do(error: OSError, advice: str) -> None:
    settings = Settings(host="10.9.9.9", port=80)

    message = serve_command.listen_problem(settings, error)

    assert message.startswith("cannot listen on 10.9.9.9:80: ")
    assert advice in message


# --- banner ---------------------------------------------------------------------------------


def test_the_banner_of_the_development_app_shows_how_to_connect() -> None:
    settings = Settings(host="127.0.0.1", port=6001, apps=(DEV,), dev_app=True)

    text = serve_command.banner(settings)

    assert text.startswith(f"Ressonance {__version__} listening on http://127.0.0.1:6001\n")
    for line in [
        f"    123456 key={DEV.key} (development)",
        "No app configured: using the development app.",
        "  app_id: 123456",
        f"  key:    {DEV.key}",
        f"  secret: {DEV.secret}",
        # pusher-js
        f"  new Pusher('{DEV.key}', {{ wsHost: '127.0.0.1', wsPort: 6001, forceTLS: false,",
        "    enabledTransports: ['ws', 'wss'], cluster: '' });",
        # Laravel .env
        "  BROADCAST_CONNECTION=pusher",
        "  PUSHER_APP_ID=123456",
        f"  PUSHER_APP_KEY={DEV.key}",
        f"  PUSHER_APP_SECRET={DEV.secret}",
        "  PUSHER_HOST=127.0.0.1",
        "  PUSHER_PORT=6001",
        "  PUSHER_SCHEME=http",
    ]:
        assert line in text.splitlines(), line


def test_the_banner_uses_the_address_the_server_listens_on() -> None:
    text = serve_command.banner(Settings(host="10.1.2.3", port=7000, apps=(DEV,), dev_app=True))

    assert "wsHost: '10.1.2.3', wsPort: 7000" in text
    assert "  PUSHER_PORT=7000" in text.splitlines()


def test_the_banner_of_a_tls_port_says_https_and_wss() -> None:
    settings = Settings(port=7000, apps=(DEV,), dev_app=True, tls_cert="c.pem", tls_key="k.pem")

    text = serve_command.banner(settings)

    assert text.startswith(f"Ressonance {__version__} listening on https://127.0.0.1:7000\n")
    assert "wsHost: '127.0.0.1', wssPort: 7000, forceTLS: true," in text
    assert "  PUSHER_SCHEME=https" in text.splitlines()


def test_a_missing_tls_key_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], started: list[Settings]
) -> None:
    status = cli.main(["serve", "--tls-cert", str(tmp_path / "cert.pem")])

    assert status == 2
    assert capsys.readouterr().err == (
        "ressonance: configuration error: --tls-key: required with --tls-cert"
        " (the certificate's private key)\n"
    )
    assert started == []


def test_the_banner_offers_a_dialable_address_when_bound_to_all() -> None:
    text = serve_command.banner(Settings(host="0.0.0.0", port=7000, apps=(DEV,), dev_app=True))

    assert "wsHost: '127.0.0.1', wsPort: 7000" in text
    assert "  PUSHER_HOST=127.0.0.1" in text.splitlines()
    assert '  VITE_PUSHER_APP_KEY="${PUSHER_APP_KEY}"' in text.splitlines()


def test_the_banner_of_configured_apps_never_shows_a_secret() -> None:
    shop = App(id="100001", key="shop-key", secret="shop-secret")
    blog = App(id="100002", key="blog-key", secret="blog-secret", enabled=False)
    settings = Settings(apps=(shop, blog), apps_file="/etc/ressonance/ressonance.toml")

    text = serve_command.banner(settings)

    assert text.splitlines() == [
        f"Ressonance {__version__} listening on http://127.0.0.1:6001",
        "  apps:      2 apps from [[apps]] of /etc/ressonance/ressonance.toml",
        "    100001 key=shop-key",
        "    100002 key=blog-key (disabled)",
        "  HTTP API:  http://127.0.0.1:6001/apps/{app_id}/events (signed with the app's secret)",
        "  health:    http://127.0.0.1:6001/healthz, readiness http://127.0.0.1:6001/readyz",
        "  metrics:   http://127.0.0.1:6001/metrics",
        "  admin API: off (set RESSONANCE_ADMIN_TOKEN to turn it on)",
        "  logs:      info on stderr (--debug: every connection and request)",
        "  stop:      Ctrl+C or SIGTERM (clients move on over 10 s)",
    ]
    assert "secret" not in text.replace("the app's secret", "")


def test_an_embedded_store_with_several_apps_is_not_called_unconfigured() -> None:
    shop = App(id="100001", key="shop-key", secret="shop-secret")
    settings = Settings(dev_app=True, state_dir="/home/you/.local/state/ressonance")

    text = serve_command.banner(settings, [DEV, shop])

    assert "  apps:      2 apps in sqlite:////home/you/.local/state/ressonance/ressonance.db " \
        "(the embedded store)" in text.splitlines()  # fmt: skip
    assert f"    123456 key={DEV.key} (development)" in text.splitlines()
    assert "No app configured" not in text
    assert DEV.secret not in text


def test_apps_from_a_store_url_and_the_environment_are_named_without_a_password() -> None:
    from_url = Settings(apps_url="postgresql://ressonance:hunter2@db/apps")
    from_env = Settings(apps=(DEV,), env_apps=(DEV_RECORD,))

    assert "  apps:      1 app in postgresql://ressonance:***@db/apps" in (
        serve_command.banner(from_url, [DEV]).splitlines()
    )
    assert "  apps:      1 app from RESSONANCE_APP_* variables" in (
        serve_command.banner(from_env).splitlines()
    )
    assert "  apps:      none yet, in sqlite:///ressonance.db (the embedded store): add one " \
        "with `ressonance apps create`, or [[apps]] in --config" in (
        serve_command.banner(Settings(dev_app=True), []).splitlines()
    )  # fmt: skip


def test_the_banner_lists_at_most_ten_apps() -> None:
    many = [App(id=str(100000 + n), key=f"key-{n}", secret="s") for n in range(25)]

    lines = serve_command.banner(Settings(apps_url="sqlite:///apps.db"), many).splitlines()

    assert "  apps:      25 apps in sqlite:///apps.db" in lines
    assert "    100009 key=key-9" in lines
    assert "    100010 key=key-10" not in lines
    assert "    ... and 15 more: `ressonance apps list`" in lines


def test_the_banner_says_when_the_admin_api_is_on_and_how_to_stop() -> None:
    settings = Settings(
        apps=(DEV,), admin_token="t" * 20, host="::", port=7000, drain_seconds=30, log_level="debug"
    )

    lines = serve_command.banner(settings).splitlines()

    assert lines[0] == f"Ressonance {__version__} listening on http://[::]:7000"
    assert (
        "  admin API: on, http://127.0.0.1:7000/admin/v1/apps (Authorization: Bearer <token>)"
        in lines
    )
    assert "t" * 20 not in "\n".join(lines)
    assert "  logs:      debug on stderr" in lines
    assert "  stop:      Ctrl+C or SIGTERM (clients move on over 30 s)" in lines
