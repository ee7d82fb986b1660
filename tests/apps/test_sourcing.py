"""Where apps come from (apps/sourcing.py): the environment's app, the state directory, and
the embedded default registry with its development app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ressonance.apps.base import AppRecord
from ressonance.apps.sourcing import (
    AppSource,
    app_from_environment,
    development_app,
    open_app_registry,
    state_directory,
)
from ressonance.protocol.errors import ConfigError

ENV_APP = {
    "RESSONANCE_APP_ID": "200002",
    "RESSONANCE_APP_KEY": "env-key",
    "RESSONANCE_APP_SECRET": "env-secret",
}


# --- the environment ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["false", "0", "no", "off", "False", " OFF "])
def test_false_booleans_from_the_environment(value: str) -> None:
    app = app_from_environment({**ENV_APP, "RESSONANCE_APP_ENABLED": value})

    assert app is not None
    assert app.enabled is False


def test_the_environments_app_takes_webhooks_as_a_json_array() -> None:
    hooks = [{"url": "http://127.0.0.1:9000/hook", "event_types": ["channel_occupied"]}]
    app = app_from_environment({**ENV_APP, "RESSONANCE_APP_WEBHOOKS": json.dumps(hooks)})

    assert app is not None
    assert [endpoint.as_json() for endpoint in app.webhooks] == hooks


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{", "RESSONANCE_APP_WEBHOOKS: must be a JSON array of endpoints"),
        ('[{"url": "http://a/"}]', r"RESSONANCE_APP.webhooks\[0\].event_types: required"),
    ],
)
def test_bad_webhooks_from_the_environment_name_the_variable(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        app_from_environment({**ENV_APP, "RESSONANCE_APP_WEBHOOKS": value})


@pytest.mark.parametrize(
    "value",
    ['["chat-*", "private-orders-*"]', "chat-*,private-orders-*", " chat-*, private-orders-* "],
)
def test_history_channels_from_the_environment_as_json_or_a_comma_list(value: str) -> None:
    environ = {
        **ENV_APP,
        "RESSONANCE_APP_HISTORY_CHANNELS": value,
        "RESSONANCE_APP_HISTORY_TTL": "60",
    }

    app = app_from_environment(environ)

    assert app is not None
    assert app.history_channels == ("chat-*", "private-orders-*")
    assert app.history_ttl == 60


def test_no_variables_no_app() -> None:
    assert app_from_environment({"PATH": "/bin", "RESSONANCE_OTHER": "x"}) is None


# --- Soketi's default-app variables, read as aliases -----------------------------------------

SOKETI_APP = {
    "SOKETI_DEFAULT_APP_ID": "200002",
    "SOKETI_DEFAULT_APP_KEY": "soketi-key",
    "SOKETI_DEFAULT_APP_SECRET": "soketi-secret",
}


def test_soketis_default_app_variables_describe_the_environments_app() -> None:
    app = app_from_environment(
        {
            **SOKETI_APP,
            "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "true",
            "SOKETI_DEFAULT_APP_ENABLED": "false",
            "SOKETI_DEFAULT_APP_MAX_CONNS": "-1",
            "SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC": "50",
            "SOKETI_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC": "5",
            "SOKETI_DEFAULT_APP_MAX_READ_REQ_PER_SEC": "20",
            "SOKETI_PORT": "6001",  # a server option: not an app variable
        }
    )

    assert app is not None
    assert (app.id, app.key, app.secret) == ("200002", "soketi-key", "soketi-secret")
    assert (app.enable_client_messages, app.enabled, app.max_connections) == (True, False, -1)
    assert (app.max_backend_events_per_sec, app.max_client_events_per_sec) == (50, 5)
    assert app.max_read_requests_per_sec == 20


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"SOKETI_DEFAULT_APP_ID": "app-id"},  # Soketi's own default id
            "SOKETI_DEFAULT_APP_ID: must be digits only (the Pusher SDKs reject others)",
        ),
        (
            {"SOKETI_DEFAULT_APP_MAX_CONNS": "0"},
            "SOKETI_DEFAULT_APP_MAX_CONNS: must be a positive integer, or -1 for no limit",
        ),
        (
            {"SOKETI_DEFAULT_APP_ENABLED": "maybe"},
            "SOKETI_DEFAULT_APP_ENABLED: must be true or false, not 'maybe'",
        ),
        (
            {"SOKETI_DEFAULT_APP_WEBHOOKS": "[]"},
            "SOKETI_DEFAULT_APP_WEBHOOKS: not read by Ressonance; the SOKETI_DEFAULT_APP_* "
            "variables it reads are SOKETI_DEFAULT_APP_ID, SOKETI_DEFAULT_APP_KEY,",
        ),
        (
            {"RESSONANCE_APP_NAME": "both"},
            "SOKETI_DEFAULT_APP_ID: the environment's app is described by both RESSONANCE_APP_* "
            "and SOKETI_DEFAULT_APP_* variables; keep one set",
        ),
    ],
)
def test_a_bad_soketi_variable_is_named(extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        app_from_environment({**SOKETI_APP, **extra})

    assert str(raised.value).startswith(message)


def test_a_soketi_app_needs_its_secret() -> None:
    with pytest.raises(ConfigError, match=r"^SOKETI_DEFAULT_APP_SECRET: required$"):
        app_from_environment({"SOKETI_DEFAULT_APP_ID": "1", "SOKETI_DEFAULT_APP_KEY": "k"})


# --- where apps come from ---------------------------------------------------------------------


def test_the_registry_url_of_each_source(tmp_path: Path) -> None:
    record = AppRecord(id="1", key="k", secret="s")

    assert AppSource(url="sqlite:////srv/apps.db", state_dir=tmp_path).registry_url == (
        "sqlite:////srv/apps.db"
    )
    assert AppSource(static=True, file="/etc/r.toml").registry_url == "file:/etc/r.toml"
    assert AppSource(static=True, fixed=(record,)).registry_url == ""  # nothing to open by URL
    assert AppSource(state_dir=tmp_path).registry_url == f"sqlite:///{tmp_path}/ressonance.db"


async def test_static_apps_are_a_file_store_with_the_environments_app() -> None:
    record = AppRecord(id="1", key="k", secret="s")

    registry = await open_app_registry(AppSource(static=True, fixed=(record,)))
    try:
        assert await registry.records() == [record]
    finally:
        await registry.close()


def test_the_state_directory_follows_xdg_state_home(tmp_path: Path) -> None:
    assert state_directory({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "ressonance"
    assert state_directory({}) == Path.home() / ".local" / "state" / "ressonance"


# --- the development app --------------------------------------------------------------------


async def registry_records(source: AppSource) -> list[AppRecord]:
    registry = await open_app_registry(source)
    try:
        return await registry.records()
    finally:
        await registry.close()


def default_source(tmp_path: Path) -> AppSource:
    """The embedded default, in a state directory under tmp_path."""
    return AppSource(state_dir=tmp_path / "state")


async def test_a_development_app_is_created_in_the_default_registry(tmp_path: Path) -> None:
    [app] = await registry_records(default_source(tmp_path))

    assert app.name == "development"
    assert app.id.isdigit()
    assert len(app.id) == 6
    assert len(app.key) == 20
    assert len(app.secret) == 32
    assert (tmp_path / "state" / "ressonance.db").is_file()


async def test_the_development_app_is_reused(tmp_path: Path) -> None:
    first = await registry_records(default_source(tmp_path))
    again = await registry_records(default_source(tmp_path))

    assert again == first


async def test_an_earlier_versions_development_app_keeps_its_credentials(tmp_path: Path) -> None:
    saved = {"id": "123456", "key": "old-key", "secret": "old-secret"}
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "dev-app.json").write_text(json.dumps(saved))

    [app] = await registry_records(default_source(tmp_path))

    assert (app.id, app.key, app.secret, app.name) == (
        "123456",
        "old-key",
        "old-secret",
        "development",
    )


def test_a_damaged_legacy_file_gives_new_credentials(tmp_path: Path) -> None:
    (tmp_path / "dev-app.json").write_text("{not json")

    app = development_app(tmp_path)

    assert app.name == "development"
    assert development_app(tmp_path).key != app.key


async def test_an_unwritable_state_directory_still_gives_an_app(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    source = AppSource(state_dir=blocked / "state")

    first = await registry_records(source)
    second = await registry_records(source)

    assert [r.name for r in first] == [r.name for r in second] == ["development"]
    assert first[0].key != second[0].key  # nothing could be saved, so new credentials each start


async def test_the_development_app_is_only_added_to_an_empty_registry(tmp_path: Path) -> None:
    source = default_source(tmp_path)
    registry = await open_app_registry(source)
    [dev] = await registry.records()
    await registry.delete(dev.id)
    await registry.create(AppRecord(id="7", key="mine", secret="s"))
    await registry.close()

    assert [r.key for r in await registry_records(source)] == ["mine"]
