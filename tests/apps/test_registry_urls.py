"""open_registry(url): the store a URL names, and clear errors for URLs it cannot open."""

from __future__ import annotations

from pathlib import Path

import pytest

from ressonance.apps import open_registry, sqlite_path
from ressonance.apps.file import FileAppRegistry
from ressonance.apps.sqlite import SqliteAppRegistry
from ressonance.protocol.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///ressonance.db", "ressonance.db"),
        ("sqlite:///data/apps.db", "data/apps.db"),
        ("sqlite:////var/lib/ressonance/apps.db", "/var/lib/ressonance/apps.db"),
        ("SQLITE:///a%20b.db", "a b.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls_name_a_relative_or_absolute_file(url: str, path: str) -> None:
    assert sqlite_path(url) == path


async def test_a_sqlite_url_opens_and_creates_the_database(tmp_path: Path) -> None:
    registry = await open_registry(f"sqlite:///{tmp_path / 'apps.db'}")

    assert isinstance(registry, SqliteAppRegistry)
    assert await registry.records() == []
    await registry.close()
    assert (tmp_path / "apps.db").is_file()


@pytest.mark.parametrize("form", ["{path}", "file:{path}", "file://{path}"])
async def test_a_toml_path_or_file_url_opens_the_static_store(tmp_path: Path, form: str) -> None:
    path = tmp_path / "apps.toml"
    path.write_text('[[apps]]\nid = "1"\nkey = "k"\nsecret = "s"\n')

    registry = await open_registry(form.format(path=path))

    assert isinstance(registry, FileAppRegistry)
    assert [r.key for r in await registry.records()] == ["k"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/apps", "apps: 'mysql://db/apps' is not an app store URL"),
        ("apps.json", "is not an app store URL"),
        ("", "is not an app store URL"),
        ("sqlite://apps.db", "three slashes and a path"),
        ("sqlite:///", "no database file after sqlite:///"),
        ("sqlite:///apps.db?mode=ro", "take no query"),
        (
            "sqlite:////no/such/dir/apps.db",
            "cannot open the SQLite database '/no/such/dir/apps.db'",
        ),
        ("missing.toml", "'missing.toml': no such apps file"),
        ("file://remote-host/apps.toml", "only local files"),
        ("postgresql://u:hunter2@127.0.0.1:1/db", r"cannot open the PostgreSQL app store"),
    ],
)
async def test_bad_urls_are_named_in_the_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        await open_registry(url)

    assert "hunter2" not in str(raised.value)
