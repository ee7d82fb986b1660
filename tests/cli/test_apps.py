"""`ressonance apps ...` as a person and a script meet it: output, secrets, exit statuses.

Each test runs `cli.main([...])` against one registry that lives across the calls, as a
file or database would.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from ressonance import cli
from ressonance.apps.admin import AppAdmin
from ressonance.apps.base import AppRecord
from ressonance.apps.memory import MemoryAppRegistry
from ressonance.apps.sqlite import SqliteAppRegistry
from ressonance.cli import apps as apps_command, serve as serve_command
from ressonance.config import Settings
from ressonance.server.admin_api import PREFIX, AdminApi, AdminRequest
from ressonance.server.http_api import ApiResponse
from ressonance.state.memory import MemoryUsageStore
from ressonance.state.redis import connect
from ressonance.state.redis_usage import RedisUsageStore
from ressonance.state.sqlite_webhooks import SqliteWebhookQueue
from tests import services

Capture = pytest.CaptureFixture[str]
JSON_OUTPUT = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS  # how `--json` prints


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("RESSONANCE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


FIXTURE_STORE = "sqlite:///fixture.db"  # what the command names; it opens `registry` instead


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> MemoryAppRegistry:
    """The registry every `apps` call of the test opens."""
    shared = MemoryAppRegistry()
    monkeypatch.setenv("RESSONANCE_APPS", FIXTURE_STORE)

    async def open_registry(settings: Settings) -> MemoryAppRegistry:
        return shared

    monkeypatch.setattr(apps_command, "open_registry", open_registry)
    return shared


def run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    status = cli.main(["apps", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys: Capture, *argv: str) -> Any:
    """The command's JSON; it names its store on stderr, where a script's pipe does not go."""
    status, out, err = run(capsys, *argv, "--json")
    assert status == 0, err
    assert re.fullmatch(r"ressonance: (app|usage) store: \S.*\n", err), err
    return json.loads(out)


def text_and_store(out: str) -> tuple[str, str]:
    """A text answer, and the store its last line names."""
    text, _, last = out.rstrip("\n").rpartition("\n")
    assert last.startswith(("App store: ", "Usage store: ")), out
    return text + "\n", last.split(": ", 1)[1]


def test_create_prints_the_credentials_and_the_secret_once(
    registry: MemoryAppRegistry, capsys: Capture
) -> None:
    status, out, err = run(capsys, "create", "--name", "Shop", "--plan", "free")

    assert (status, err) == (0, "")
    [record] = registry._records.values()
    assert out.startswith(f"Created app {record.id} (Shop):\n")
    assert f"  app_id:   {record.id}\n" in out
    assert f"  key:      {record.key}\n" in out
    assert f"  secret:   {record.secret}\n" in out
    assert "  plan:     free\n" in out
    assert "The secret is shown only now" in out

    for verb in (["list"], ["show", record.id], ["disable", record.id], ["enable", record.id]):
        status, shown, _ = run(capsys, *verb)
        assert status == 0
        assert record.secret not in shown
        assert "****" + record.secret[-4:] in shown


def test_create_json_is_the_admin_api_body_with_the_secret(
    registry: MemoryAppRegistry, capsys: Capture
) -> None:
    body = run_json(
        capsys,
        "create",
        "--id",
        "4242",
        "--key",
        "shop-key",
        "--set",
        "max_connections=500",
        "--set",
        "enable_client_messages=true",
        "--set",
        "allowed_origins=https://a.example,https://b.example",
        "--disabled",
    )

    record = registry._records["4242"]
    assert body == {
        "id": "4242",
        "key": "shop-key",
        "secret": record.secret,
        "secret_hint": "****" + record.secret[-4:],
        "name": "",
        "plan": "",
        "enabled": False,
        "settings": {
            "max_connections": 500,
            "enable_client_messages": True,
            "allowed_origins": ["https://a.example", "https://b.example"],
        },
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])


def test_list_is_an_aligned_table(registry: MemoryAppRegistry, capsys: Capture) -> None:
    run_json(capsys, "create", "--id", "1", "--key", "short", "--name", "A")
    run_json(capsys, "create", "--id", "1000000", "--plan", "free")

    status, out, _ = run(capsys, "list")

    lines = text_and_store(out)[0].splitlines()
    assert status == 0
    assert re.match(r"ID +KEY +NAME +PLAN +ENABLED +SECRET +CREATED$", lines[0])
    assert lines[1].startswith("1        short  ")
    assert lines[2].startswith("1000000  ")
    for column in ("KEY", "NAME", "PLAN", "ENABLED", "SECRET", "CREATED"):
        start = lines[0].index(column)  # every value of the column starts under its header
        assert all(line[start - 2 : start] == "  " and line[start] != " " for line in lines)
    assert [app["id"] for app in run_json(capsys, "list")["apps"]] == ["1", "1000000"]


def test_list_without_apps_says_how_to_create_one(
    registry: MemoryAppRegistry, capsys: Capture
) -> None:
    assert run(capsys, "list") == (
        0,
        "No apps. Create one with: ressonance apps create --name NAME\nApp store: sqlite:///fixture.db\n",
        "",
    )
    assert run_json(capsys, "list") == {"apps": []}


def test_show_has_own_and_effective_settings(registry: MemoryAppRegistry, capsys: Capture) -> None:
    run_json(capsys, "create", "--id", "7", "--plan", "free", "--set", "watchlist=on")

    status, out, _ = run(capsys, "show", "7")
    body = run_json(capsys, "show", "7")

    assert status == 0
    assert "Own settings (over the plan's):\n  watchlist:  true\n" in out
    assert re.search(r"\n  max_connections: +100\n", out)  # from the free plan
    assert body["effective_settings"]["max_connections"] == 100
    assert body["settings"] == {"watchlist": True}


def test_update_sets_unsets_and_changes_plan(registry: MemoryAppRegistry, capsys: Capture) -> None:
    run_json(capsys, "create", "--id", "7", "--plan", "free", "--set", "watchlist=on")

    body = run_json(
        capsys, "update", "7", "--name", "Renamed", "--no-plan", "--set", "max_connections=-1"
    )
    assert (body["name"], body["plan"]) == ("Renamed", "")
    assert body["settings"] == {"watchlist": True, "max_connections": -1}
    body = run_json(capsys, "update", "7", "--unset", "watchlist", "--plan", "free")
    assert (body["plan"], body["settings"]) == ("free", {"max_connections": -1})


def test_disable_enable_delete(registry: MemoryAppRegistry, capsys: Capture) -> None:
    run_json(capsys, "create", "--id", "7")

    status, out, _ = run(capsys, "disable", "7")
    assert status == 0
    assert "enabled:  no (connections get 4003, API calls 403)" in out
    assert registry._records["7"].enabled is False
    assert run_json(capsys, "enable", "7")["enabled"] is True

    assert run(capsys, "delete", "7") == (
        0,
        "Deleted app 7.\nApp store: sqlite:///fixture.db\n",
        "",
    )
    assert registry._records == {}
    assert run(capsys, "delete", "7")[0] == 1


def test_rotate_secret_prints_the_new_secret_once(
    registry: MemoryAppRegistry, capsys: Capture
) -> None:
    old = run_json(capsys, "create", "--id", "7")["secret"]

    status, out, _ = run(capsys, "rotate-secret", "7")

    new = registry._records["7"].secret
    assert status == 0
    assert new != old
    assert f"  secret:   {new}\n" in out
    assert "The old secret no longer works." in out
    assert run_json(capsys, "rotate-secret", "7")["secret"] == registry._records["7"].secret


@pytest.mark.parametrize(
    ("argv", "status", "error"),
    [
        (["show", "9"], 1, "ressonance: no app with id '9' (app store: sqlite:///fixture.db)\n"),
        (
            ["update", "9", "--name", "x"],
            1,
            "ressonance: no app with id '9' (app store: sqlite:///fixture.db)",
        ),
        (["disable", "9"], 1, "ressonance: no app with id '9' (app store: sqlite:///fixture.db)\n"),
        (["enable", "9"], 1, "ressonance: no app with id '9' (app store: sqlite:///fixture.db)\n"),
        (
            ["rotate-secret", "9"],
            1,
            "ressonance: no app with id '9' (app store: sqlite:///fixture.db)\n",
        ),
        (["delete", "9"], 1, "ressonance: no app with id '9' (app store: sqlite:///fixture.db)\n"),
        (["create", "--id", "1"], 1, "ressonance: an app with id '1' or this key exists ("),
        (["create", "--id", "x1"], 2, "ressonance: id: 1 to 20 digits (the Pusher SDKs reject"),
        (["create", "--plan", "gold"], 2, "ressonance: plan: no plan named 'gold'\n"),
        (["create", "--set", "x"], 2, "ressonance: --set: expected NAME=VALUE, not 'x'\n"),
        (["create", "--set", "=1"], 2, "ressonance: --set: expected NAME=VALUE, not '=1'\n"),
        (["create", "--set", "colour=red"], 2, "ressonance: --set colour: unknown app setting\n"),
        (
            ["create", "--set", "max_connections=0"],
            2,
            "ressonance: --set max_connections: must be a positive integer, or -1 for no limit\n",
        ),
        (["update", "1"], 2, "ressonance: update: nothing to change; give --name, --plan,"),
        (["update", "1", "--unset", "colour"], 2, "ressonance: --unset colour: unknown app"),
    ],
)
def test_errors_exit_1_when_not_found_or_taken_and_2_on_bad_input(
    registry: MemoryAppRegistry, capsys: Capture, argv: list[str], status: int, error: str
) -> None:
    run_json(capsys, "create", "--id", "1")
    before = dict(registry._records)

    got, out, err = run(capsys, *argv)

    assert (got, out) == (status, "")
    assert err.startswith(error)
    assert registry._records == before


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["show"],
        ["update"],
        ["create", "--days", "3"],
        ["update", "1", "--plan", "a", "--no-plan"],
    ],
)
def test_malformed_arguments_exit_2(capsys: Capture, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["apps", *argv])
    assert exited.value.code == 2
    assert "usage: ressonance" in capsys.readouterr().err


def test_a_bad_config_file_exits_2(tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[nope]\n")
    assert run(capsys, "list", "--config", str(bad)) == (
        2,
        "",
        "ressonance: configuration error: nope: unknown section "
        "(expected [server], [[apps]], [plans.NAME])\n",
    )


def test_an_unreachable_store_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture, tmp_path: Path
) -> None:
    class Down(MemoryAppRegistry):
        async def records(self) -> list[Any]:
            raise ConnectionRefusedError(111, "Connection refused")

    async def open_registry(settings: Settings) -> MemoryAppRegistry:
        return Down()

    monkeypatch.setattr(apps_command, "open_registry", open_registry)
    status, out, err = run(capsys, "list")
    assert (status, out) == (1, "")
    assert err == (
        "ressonance: cannot reach the app store: [Errno 111] Connection refused "
        f"(app store: sqlite:///{tmp_path}/state/ressonance/ressonance.db)\n"
    )


# --- usage -----------------------------------------------------------------------------------


def test_usage_with_memory_state_points_at_the_admin_api(capsys: Capture) -> None:
    status, out, err = run(capsys, "usage", "42", "--days", "3")
    assert (status, out) == (1, "")
    assert "usage is counted in the running node's memory (state memory://)" in err
    assert '"http://127.0.0.1:6001/admin/v1/apps/42/usage?days=3"' in err


async def _with_redis(
    url: str, prefix: str, work: Callable[[RedisUsageStore], Awaitable[None]]
) -> None:
    redis = connect(url)
    try:
        await work(RedisUsageStore(redis, prefix))
    finally:
        await redis.aclose()


def test_usage_from_the_shared_state(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture, redis_url: str, tmp_path: Path
) -> None:
    async def write(store: RedisUsageStore) -> None:
        await store.add_messages("42", "2023-11-14", 1234567)
        await store.add_messages("42", "2023-11-13", 3)
        await store.record_connections("42", "2023-11-14", 12)
        await store.add_messages("43", "2023-11-14", 99)  # another app

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RESSONANCE_STATE", redis_url)
    config = tmp_path / "ressonance.toml"
    config.write_text(f'[server]\nkey_prefix = "{prefix}"\n')
    asyncio.run(_with_redis(redis_url, prefix, write))
    monkeypatch.setattr(apps_command.time, "time", lambda: 1_700_000_000.0)  # 2023-11-14

    status, out, _ = run(capsys, "usage", "42", "--days", "2", "--config", str(config))
    body = run_json(capsys, "usage", "42", "--days", "2", "--config", str(config))

    assert status == 0
    assert out == (
        "DAY (UTC)    MESSAGES  PEAK CONNECTIONS\n"
        "2023-11-13          3                 0\n"
        "2023-11-14  1,234,567                12\n"
        "Total: 1,234,570 messages\n"
        f"Usage store: {redis_url}\n"
    )
    assert body == {
        "app_id": "42",
        "days": [
            {"day": "2023-11-13", "messages": 3, "peak_connections": 0},
            {"day": "2023-11-14", "messages": 1234567, "peak_connections": 12},
        ],
        "total_messages": 1234570,
    }


def test_usage_from_an_unreachable_redis_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setenv("RESSONANCE_STATE", f"redis://127.0.0.1:{services.free_port()}/0")
    status, out, err = run(capsys, "usage", "42")
    assert (status, out) == (1, "")
    assert err.startswith("ressonance: cannot read usage from redis://127.0.0.1:")


def test_usage_never_prints_the_state_password(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    port = services.free_port()
    monkeypatch.setenv("RESSONANCE_STATE", f"redis://app:hunter2@127.0.0.1:{port}/0")
    status, _, err = run(capsys, "usage", "42")
    assert status == 1
    assert "hunter2" not in err
    assert f"redis://app:***@127.0.0.1:{port}/0" in err


async def _usage_answers(store: MemoryUsageStore, now: float) -> tuple[str, ApiResponse]:
    """What `ressonance apps usage 1 --days 2 --json` prints and what the admin API answers."""

    @asynccontextmanager
    async def shared(_: Settings) -> AsyncIterator[MemoryUsageStore]:
        yield store

    registry = MemoryAppRegistry()
    await registry.create(AppRecord("1", "k", "s" * 32))
    token = "t0ken-for-tests-0123456789"
    api = AdminApi(
        AppAdmin(registry, {}, lambda: now),
        store,
        SqliteWebhookQueue(None, node_id="n"),
        token=token,
    )
    path = f"{PREFIX}/apps/1/usage"
    answer = await api.handle(AdminRequest.at("GET", path, {"days": "2"}, f"Bearer {token}", b""))
    args = cli.build_parser().parse_args(["apps", "usage", "1", "--days", "2", "--json"])
    printed = io.StringIO()
    # The command runs its own event loop: run it in a thread, away from this test's loop.
    await asyncio.to_thread(apps_command.run, args, usage_factory=shared, out=printed)
    return printed.getvalue(), answer


async def test_the_command_prints_the_admin_apis_usage_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = 1_700_000_000.0  # 2023-11-14
    monkeypatch.setattr(apps_command.time, "time", lambda: now)
    store = MemoryUsageStore()
    await store.add_messages("1", "2023-11-14", 1234567)
    await store.add_messages("1", "2023-11-13", 3)
    await store.record_connections("1", "2023-11-14", 12)

    printed, answer = await _usage_answers(store, now)

    assert answer.status == 200
    assert answer.body["total_messages"] == 1234570
    assert printed == orjson.dumps(answer.body, option=JSON_OUTPUT).decode() + "\n"


@pytest.mark.parametrize("days", ["0", "41"])
def test_usage_days_are_bounded(capsys: Capture, days: str) -> None:
    assert run(capsys, "usage", "42", "--days", days) == (
        2,
        "",
        "ressonance: --days: must be from 1 to 40\n",
    )


def test_the_factories_get_the_settings_serve_would_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capture
) -> None:
    seen: list[Settings] = []
    config = tmp_path / "ressonance.toml"
    config.write_text('[server]\nport = 7001\nkey_prefix = "mine"\n')

    async def factory(settings: Settings) -> MemoryAppRegistry:
        seen.append(settings)
        return MemoryAppRegistry()

    monkeypatch.setattr(apps_command, "open_registry", factory)
    assert run(capsys, "list", "--config", str(config))[0] == 0
    assert (seen[0].port, seen[0].key_prefix) == (7001, "mine")


# --- against the stores `serve` uses ---------------------------------------------------------


def test_a_sqlite_store_keeps_what_the_command_does(tmp_path: Path, capsys: Capture) -> None:
    url = f"sqlite:///{tmp_path / 'apps.db'}"

    created = run_json(capsys, "create", "--apps", url, "--name", "Shop", "--plan", "free")
    run_json(capsys, "update", created["id"], "--apps", url, "--set", "max_connections=5")
    listed = run_json(capsys, "list", "--apps", url)

    async def stored() -> Any:
        registry = await SqliteAppRegistry.open(tmp_path / "apps.db")
        try:
            return await registry.record(created["id"])
        finally:
            await registry.close()

    record = asyncio.run(stored())
    assert record.secret == created["secret"]
    assert (record.name, record.plan, dict(record.settings)) == (
        "Shop",
        "free",
        {"max_connections": 5},
    )
    assert [app["id"] for app in listed["apps"]] == [created["id"]]
    assert created["secret"] not in json.dumps(listed)
    assert run(capsys, "delete", created["id"], "--apps", url)[0] == 0
    assert run_json(capsys, "list", "--apps", url) == {"apps": []}


def test_without_any_apps_setting_the_embedded_store_and_its_development_app(
    capsys: Capture,
) -> None:
    listed = run_json(capsys, "list")
    assert [app["name"] for app in listed["apps"]] == ["development"]
    created = run_json(capsys, "create", "--name", "second")
    names = [app["name"] for app in run_json(capsys, "list")["apps"]]
    assert sorted(names) == ["development", "second"]
    assert created["secret"]


def test_static_apps_are_read_only(tmp_path: Path, capsys: Capture) -> None:
    config = tmp_path / "ressonance.toml"
    config.write_text('[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n')

    status, out, err = run(capsys, "disable", "1", "--config", str(config))

    assert (status, out) == (1, "")
    assert err == (
        f"ressonance: the static app store is read-only: edit {config.resolve()}, or use a "
        "sqlite:/// or postgresql:// apps URL to manage apps at runtime "
        f"(app store: file:{config.resolve()})\n"
    )
    listed = run_json(capsys, "list", "--config", str(config))
    assert [(app["id"], app["secret_hint"]) for app in listed["apps"]] == [("1", "****")]


def test_serve_and_the_command_find_one_store_through_ressonance_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capture
) -> None:
    store = tmp_path / "fleet.db"
    config = tmp_path / "ressonance.toml"
    config.write_text(f'[server]\napps = "sqlite:///{store}"\n')
    monkeypatch.setenv("RESSONANCE_CONFIG", str(config))
    served: list[Settings] = []
    monkeypatch.setattr(serve_command, "run_server", lambda settings: served.append(settings) or 0)
    monkeypatch.setattr(serve_command.logging, "basicConfig", lambda **kwargs: None)

    status, out, err = run(capsys, "create", "--id", "31", "--name", "Shop")
    assert cli.main(["serve"]) == 0

    assert (status, err) == (0, "")
    assert text_and_store(out)[1] == f"sqlite:///{store}"
    assert served[0].registry_url == f"sqlite:///{store}"
    assert [app.id for app in asyncio.run(serve_command.load_apps(served[0]))] == ["31"]


def test_every_answer_names_the_store_without_its_password(
    registry: MemoryAppRegistry, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setenv("RESSONANCE_APPS", "postgresql://ops:hunter2@db.internal:5432/apps")
    shown = "postgresql://ops:***@db.internal:5432/apps"

    created = run_json(capsys, "create", "--id", "5")
    answers = [run(capsys, *verb) for verb in (["list"], ["show", "5"], ["disable", "5"])]
    answers.append(run(capsys, "rotate-secret", "5"))
    answers.append(run(capsys, "delete", "5"))
    missing = run(capsys, "show", "5")

    assert created["id"] == "5"
    for status, out, err in answers:
        assert (status, err, text_and_store(out)[1]) == (0, "", shown)
    assert missing == (1, "", f"ressonance: no app with id '5' (app store: {shown})\n")
    assert "hunter2" not in capsys.readouterr().err
    _, _, err = run(capsys, "list", "--json")
    assert err == f"ressonance: app store: {shown}\n"
